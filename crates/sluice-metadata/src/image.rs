//! The metadata image: the cluster's metadata as ordered maps, built by replaying
//! [`MetadataRecord`]s in log order. Every broker reads topology (brokers, topics, partitions,
//! leaders, ISR) from here and keeps no copy of its own.
//!
//! Images are values: a change replays records into a clone and the new image is published
//! whole, so readers holding the old one are never disturbed. Topics sit behind `Arc`, so a clone
//! costs one pointer per topic, not one per partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{
    BrokerRegistrationChangeRecord, ConfigRecord, Endpoint, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, RegisterBrokerRecord, TopicRecord, NO_LEADER,
};

/// A record that does not fit the image it is replayed into (a broken log or a bug).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("metadata record does not apply: {0}")]
pub struct ReplayError(pub String);

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// `node.id`.
    pub id: i32,
    /// The process run that registered.
    pub incarnation_id: Uuid,
    /// Offset of the registration record.
    pub epoch: i64,
    /// Client listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// A fenced broker leads nothing and is left out of new assignments.
    pub fenced: bool,
    /// The broker asked to shut down; its leaderships are moving away.
    pub in_controlled_shutdown: bool,
    /// Log directory ids.
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistration {
    /// The endpoint of listener `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// One partition's replicas, leader and ISR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Replica broker ids, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas being removed by a reassignment.
    pub removing_replicas: Vec<i32>,
    /// Replicas being added by a reassignment.
    pub adding_replicas: Vec<i32>,
    /// Leader, or [`NO_LEADER`].
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966).
    pub eligible_leader_replicas: Vec<i32>,
    /// Last known ELR (KIP-966).
    pub last_known_elr: Vec<i32>,
}

impl PartitionImage {
    fn from_record(r: &PartitionRecord) -> PartitionImage {
        PartitionImage {
            replicas: r.replicas.clone(),
            isr: r.isr.clone(),
            removing_replicas: r.removing_replicas.clone(),
            adding_replicas: r.adding_replicas.clone(),
            leader: r.leader,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            eligible_leader_replicas: r.eligible_leader_replicas.clone(),
            last_known_elr: r.last_known_elr.clone(),
        }
    }

    fn to_record(&self, topic_id: Uuid, partition_id: i32) -> PartitionRecord {
        PartitionRecord {
            partition_id,
            topic_id,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            removing_replicas: self.removing_replicas.clone(),
            adding_replicas: self.adding_replicas.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            eligible_leader_replicas: self.eligible_leader_replicas.clone(),
            last_known_elr: self.last_known_elr.clone(),
        }
    }

    fn apply(&mut self, change: &PartitionChangeRecord) {
        if let Some(isr) = &change.isr {
            self.isr = isr.clone();
        }
        if let Some(leader) = change.leader {
            self.leader = leader;
            self.leader_epoch += 1;
        }
        if let Some(replicas) = &change.replicas {
            self.replicas = replicas.clone();
        }
        if let Some(r) = &change.removing_replicas {
            self.removing_replicas = r.clone();
        }
        if let Some(r) = &change.adding_replicas {
            self.adding_replicas = r.clone();
        }
        if let Some(r) = &change.eligible_leader_replicas {
            self.eligible_leader_replicas = r.clone();
        }
        if let Some(r) = &change.last_known_elr {
            self.last_known_elr = r.clone();
        }
        self.partition_epoch += 1;
    }

    /// Replicas not on a live (registered, unfenced) broker.
    pub fn offline_replicas(&self, image: &MetadataImage) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|id| !image.broker_is_live(*id))
            .collect()
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Partitions by index, 0..n.
    pub partitions: Vec<PartitionImage>,
}

impl TopicImage {
    /// Partition `index`.
    pub fn partition(&self, index: i32) -> Option<&PartitionImage> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// Whether this is one of Kafka's internal topics.
    pub fn is_internal(&self) -> bool {
        is_internal_topic(&self.name)
    }
}

/// Whether `name` is one of Kafka's internal topics.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// Config overrides of one resource, by name.
pub type ConfigMap = BTreeMap<String, String>;

/// The whole metadata image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id.
    topic_names: BTreeMap<Uuid, String>,
    /// Config overrides by (resource type, resource name).
    configs: BTreeMap<(i8, String), ConfigMap>,
    /// First producer id not yet handed out in a block.
    pub next_producer_id: i64,
    /// Finalized feature levels.
    pub features: BTreeMap<String, i16>,
    /// Offset of the last record replayed into this image, -1 for none.
    pub offset: i64,
}

impl MetadataImage {
    /// An image with nothing in it.
    pub fn empty() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..Default::default()
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(&id).and_then(|n| self.topics.get(n))
    }

    /// Whether partition `index` of topic `topic` exists (wherever it is hosted).
    pub fn has_partition(&self, topic: &str, index: i32) -> bool {
        self.topic(topic)
            .is_some_and(|t| t.partition(index).is_some())
    }

    /// Every topic, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topics.values()
    }

    /// Number of topics.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// A resource's config overrides (empty when it has none).
    pub fn configs(&self, resource_type: i8, name: &str) -> ConfigMap {
        self.config_overrides(resource_type, name)
            .cloned()
            .unwrap_or_default()
    }

    /// A resource's config overrides, borrowed; `None` when it has none.
    pub fn config_overrides(&self, resource_type: i8, name: &str) -> Option<&ConfigMap> {
        self.configs.get(&(resource_type, name.to_string()))
    }

    /// Whether broker `id` is registered and not fenced.
    pub fn broker_is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Registered, unfenced brokers, in id order.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies one record at log offset `offset`.
    pub fn replay(&mut self, record: &MetadataRecord, offset: i64) -> Result<(), ReplayError> {
        match record {
            MetadataRecord::RegisterBroker(r) => self.register_broker(r),
            MetadataRecord::BrokerRegistrationChange(r) => self.change_broker(r),
            MetadataRecord::UnregisterBroker(r) => {
                if self.brokers.get(&r.broker_id).map(|b| b.epoch) == Some(r.broker_epoch) {
                    self.brokers.remove(&r.broker_id);
                }
            }
            MetadataRecord::Topic(r) => self.add_topic(r)?,
            MetadataRecord::Partition(r) => self.put_partition(r)?,
            MetadataRecord::PartitionChange(r) => self.change_partition(r)?,
            MetadataRecord::RemoveTopic(r) => {
                let name = self.topic_names.remove(&r.topic_id).ok_or_else(|| {
                    ReplayError(format!("RemoveTopic of unknown topic id {}", r.topic_id))
                })?;
                self.topics.remove(&name);
                self.configs.remove(&(crate::records::RESOURCE_TOPIC, name));
            }
            MetadataRecord::Config(r) => self.put_config(r),
            MetadataRecord::ProducerIds(r) => {
                if r.next_producer_id < self.next_producer_id {
                    return Err(ReplayError(format!(
                        "producer ids would move back from {} to {}",
                        self.next_producer_id, r.next_producer_id
                    )));
                }
                self.next_producer_id = r.next_producer_id;
            }
            MetadataRecord::FeatureLevel(r) => {
                if r.feature_level == 0 {
                    self.features.remove(&r.name);
                } else {
                    self.features.insert(r.name.clone(), r.feature_level);
                }
            }
        }
        self.offset = offset;
        Ok(())
    }

    fn register_broker(&mut self, r: &RegisterBrokerRecord) {
        self.brokers.insert(
            r.broker_id,
            BrokerRegistration {
                id: r.broker_id,
                incarnation_id: r.incarnation_id,
                epoch: r.broker_epoch,
                endpoints: r.endpoints.clone(),
                rack: r.rack.clone(),
                fenced: r.fenced,
                in_controlled_shutdown: false,
                log_dirs: r.log_dirs.clone(),
            },
        );
    }

    fn change_broker(&mut self, r: &BrokerRegistrationChangeRecord) {
        let Some(b) = self.brokers.get_mut(&r.broker_id) else {
            return;
        };
        if b.epoch != r.broker_epoch {
            return;
        }
        if let Some(fenced) = r.fenced {
            b.fenced = fenced;
        }
        if let Some(s) = r.in_controlled_shutdown {
            b.in_controlled_shutdown = s;
        }
    }

    fn add_topic(&mut self, r: &TopicRecord) -> Result<(), ReplayError> {
        if self.topics.contains_key(&r.name) || self.topic_names.contains_key(&r.topic_id) {
            return Err(ReplayError(format!("topic {} exists already", r.name)));
        }
        self.topic_names.insert(r.topic_id, r.name.clone());
        self.topics.insert(
            r.name.clone(),
            Arc::new(TopicImage {
                name: r.name.clone(),
                id: r.topic_id,
                partitions: Vec::new(),
            }),
        );
        Ok(())
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, ReplayError> {
        let name = self
            .topic_names
            .get(&id)
            .ok_or_else(|| ReplayError(format!("unknown topic id {id}")))?;
        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| ReplayError(format!("topic id {id} has no topic")))?;
        Ok(Arc::make_mut(topic))
    }

    fn put_partition(&mut self, r: &PartitionRecord) -> Result<(), ReplayError> {
        check_partition(r)?;
        let topic = self.topic_mut(r.topic_id)?;
        let index = usize::try_from(r.partition_id)
            .map_err(|_| ReplayError(format!("negative partition {}", r.partition_id)))?;
        let partition = PartitionImage::from_record(r);
        match index.cmp(&topic.partitions.len()) {
            std::cmp::Ordering::Less => topic.partitions[index] = partition,
            std::cmp::Ordering::Equal => topic.partitions.push(partition),
            std::cmp::Ordering::Greater => {
                return Err(ReplayError(format!(
                    "partition {} of {} skips {}",
                    r.partition_id,
                    topic.name,
                    topic.partitions.len()
                )))
            }
        }
        Ok(())
    }

    fn change_partition(&mut self, r: &PartitionChangeRecord) -> Result<(), ReplayError> {
        let topic = self.topic_mut(r.topic_id)?;
        let name = topic.name.clone();
        let partition = usize::try_from(r.partition_id)
            .ok()
            .and_then(|i| topic.partitions.get_mut(i))
            .ok_or_else(|| ReplayError(format!("unknown partition {name}-{}", r.partition_id)))?;
        let mut changed = partition.clone();
        changed.apply(r);
        check_partition(&changed.to_record(r.topic_id, r.partition_id))?;
        *partition = changed;
        Ok(())
    }

    fn put_config(&mut self, r: &ConfigRecord) {
        let key = (r.resource_type, r.resource_name.clone());
        match &r.value {
            Some(v) => {
                self.configs
                    .entry(key)
                    .or_default()
                    .insert(r.name.clone(), v.clone());
            }
            None => {
                if let Some(map) = self.configs.get_mut(&key) {
                    map.remove(&r.name);
                    if map.is_empty() {
                        self.configs.remove(&key);
                    }
                }
            }
        }
    }

    /// The records that rebuild this image from nothing (a snapshot's contents).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel(
                crate::records::FeatureLevelRecord {
                    name: name.clone(),
                    feature_level: *level,
                },
            ));
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
                fenced: b.fenced,
                log_dirs: b.log_dirs.clone(),
            }));
            if b.in_controlled_shutdown {
                out.push(MetadataRecord::BrokerRegistrationChange(
                    BrokerRegistrationChangeRecord {
                        broker_id: b.id,
                        broker_epoch: b.epoch,
                        fenced: None,
                        in_controlled_shutdown: Some(true),
                    },
                ));
            }
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: t.name.clone(),
                topic_id: t.id,
            }));
            for (i, p) in t.partitions.iter().enumerate() {
                out.push(MetadataRecord::Partition(p.to_record(t.id, i as i32)));
            }
        }
        for ((resource_type, resource_name), map) in &self.configs {
            for (name, value) in map {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        if self.next_producer_id > 0 {
            out.push(MetadataRecord::ProducerIds(
                crate::records::ProducerIdsRecord {
                    broker_id: -1,
                    broker_epoch: -1,
                    next_producer_id: self.next_producer_id,
                },
            ));
        }
        out
    }
}

/// The invariants of one partition: replicas distinct and non-empty, ISR ⊆ replicas, the leader
/// in the ISR (or none).
fn check_partition(r: &PartitionRecord) -> Result<(), ReplayError> {
    let bad = |why: &str| {
        Err(ReplayError(format!(
            "partition {} of topic {}: {why}",
            r.partition_id, r.topic_id
        )))
    };
    if r.replicas.is_empty() {
        return bad("no replicas");
    }
    let mut sorted = r.replicas.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != r.replicas.len() {
        return bad("duplicate replicas");
    }
    if r.isr.iter().any(|id| !r.replicas.contains(id)) {
        return bad("ISR is not a subset of the replicas");
    }
    if r.leader != NO_LEADER && !r.isr.contains(&r.leader) {
        return bad("the leader is not in the ISR");
    }
    if r.leader_epoch < 0 || r.partition_epoch < 0 {
        return bad("negative epoch");
    }
    Ok(())
}
