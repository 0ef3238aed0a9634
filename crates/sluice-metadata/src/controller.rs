//! The controller's state machine: checks a request against the current image and turns it into
//! the records that carry it out. Nothing here writes anything; the caller appends the records to
//! the metadata log and replays them into the image, so a request either happens whole or not
//! at all.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::image::{MetadataImage, PartitionImage};
use crate::records::{
    BrokerRegistrationChangeRecord, ConfigRecord, Endpoint, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord, RemoveTopicRecord, TopicRecord,
    NO_LEADER, RESOURCE_TOPIC,
};

/// Producer ids handed to a broker per request, as Kafka's controller does.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Most partitions one topic may have (bounds memory and file handles per broker).
pub const PARTITIONS_MAX: i32 = 10_000;

/// Why the controller refused a request; the broker maps each kind to Kafka's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("{0}")]
    TopicAlreadyExists(String),
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("{0}")]
    UnknownTopic(String),
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// BROKER_ID_NOT_REGISTERED / STALE_BROKER_EPOCH.
    #[error("{0}")]
    StaleBroker(String),
}

/// How the replicas of new partitions are chosen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Placement {
    /// The controller places `replication_factor` replicas per partition.
    Auto {
        /// Number of partitions.
        partitions: i32,
        /// Replicas per partition.
        replication_factor: i16,
    },
    /// The request names each partition's replicas (`--replica-assignment`).
    Manual(Vec<Vec<i32>>),
}

impl Placement {
    /// `replication_factor` replicas for each of `partitions` partitions, placed by the
    /// controller.
    pub fn auto(partitions: i32, replication_factor: i16) -> Placement {
        Placement::Auto {
            partitions,
            replication_factor,
        }
    }
}

/// Where the rack-aware placement starts: Kafka picks both at random per request, so that
/// leaders spread over the brokers; tests fix them.
#[derive(Debug, Clone, Copy)]
pub struct PlacementStart {
    /// Index (in the rack-alternating broker list) of the first partition's leader.
    pub start_index: usize,
    /// Shift between the first replica and the following ones.
    pub shift: usize,
}

impl PlacementStart {
    /// Random starting points, as Kafka's `AdminUtils` takes them.
    pub fn random() -> PlacementStart {
        let r = Uuid::new_v4().as_u128();
        PlacementStart {
            start_index: (r & 0xffff_ffff) as usize,
            shift: ((r >> 32) & 0xffff_ffff) as usize,
        }
    }
}

/// The records that create topic `name`.
pub fn create_topic(
    image: &MetadataImage,
    name: &str,
    topic_id: Uuid,
    placement: &Placement,
    start: PlacementStart,
    configs: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic(name).is_some() {
        return Err(ControllerError::TopicAlreadyExists(format!(
            "Topic '{name}' already exists."
        )));
    }
    let assignment = assign(image, placement, 0, start)?;
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: name.to_string(),
        topic_id,
    })];
    records.extend(partition_records(image, topic_id, 0, assignment));
    for (k, v) in configs {
        records.push(MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: name.to_string(),
            name: k.clone(),
            value: Some(v.clone()),
        }));
    }
    Ok(records)
}

/// The records that raise topic `name` to `total` partitions, placed like its others (same
/// replication factor) unless `manual` names the new partitions' replicas.
pub fn create_partitions(
    image: &MetadataImage,
    name: &str,
    total: i32,
    manual: Option<Vec<Vec<i32>>>,
    start: PlacementStart,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| ControllerError::UnknownTopic(format!("Topic '{name}' does not exist.")))?;
    let current = topic.partitions.len() as i32;
    if total <= current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic currently has {current} partitions, which is higher than the requested {total}."
        )));
    }
    if total > PARTITIONS_MAX {
        return Err(ControllerError::InvalidPartitions(format!(
            "Number of partitions must be at most {PARTITIONS_MAX}."
        )));
    }
    let placement = match manual {
        Some(m) => {
            if m.len() as i32 != total - current {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Increasing the number of partitions by {} but {} assignments provided.",
                    total - current,
                    m.len()
                )));
            }
            Placement::Manual(m)
        }
        None => Placement::auto(
            total - current,
            topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16,
        ),
    };
    let assignment = assign(image, &placement, current, start)?;
    Ok(partition_records(image, topic.id, current, assignment).collect())
}

/// The records that delete topic `name`.
pub fn delete_topic(image: &MetadataImage, name: &str) -> Result<MetadataRecord, ControllerError> {
    let topic = image.topic(name).ok_or_else(|| {
        ControllerError::UnknownTopic("This server does not host this topic-partition.".into())
    })?;
    Ok(MetadataRecord::RemoveTopic(RemoveTopicRecord {
        topic_id: topic.id,
    }))
}

/// The records that replace topic `name`'s config overrides with `overrides`.
pub fn replace_topic_configs(
    image: &MetadataImage,
    name: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if image.topic(name).is_none() {
        return Err(ControllerError::UnknownTopic(format!(
            "Topic '{name}' does not exist."
        )));
    }
    let old = image.configs(RESOURCE_TOPIC, name);
    let record = |k: &String, v: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: RESOURCE_TOPIC,
            resource_name: name.to_string(),
            name: k.clone(),
            value: v.cloned(),
        })
    };
    let removed = old
        .keys()
        .filter(|k| !overrides.contains_key(*k))
        .map(|k| record(k, None));
    let set = overrides
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| record(k, Some(v)));
    Ok(removed.chain(set).collect())
}

/// The record that hands the next block of producer ids to `broker_id`, and the block.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> (MetadataRecord, std::ops::Range<i64>) {
    let start = image.next_producer_id;
    let end = start + PRODUCER_ID_BLOCK_SIZE;
    let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
        broker_id,
        broker_epoch,
        next_producer_id: end,
    });
    (record, start..end)
}

/// What a broker says of itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// `node.id`.
    pub broker_id: i32,
    /// This process run.
    pub incarnation_id: Uuid,
    /// Client listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Log directory ids.
    pub log_dirs: Vec<Uuid>,
}

/// The record that registers a broker, whose epoch is the record's log offset `offset`. A
/// broker starts fenced; its first heartbeat that has caught up with the metadata unfences it.
pub fn register_broker(registration: &Registration, offset: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: registration.broker_id,
        incarnation_id: registration.incarnation_id,
        broker_epoch: offset,
        endpoints: registration.endpoints.clone(),
        rack: registration.rack.clone(),
        fenced: true,
        log_dirs: registration.log_dirs.clone(),
    })
}

/// Broker `broker_id`'s registration, if `broker_epoch` is its current one: a request naming an
/// older registration (a previous run of the process) is refused as stale.
fn current_registration(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<&crate::image::BrokerRegistration, ControllerError> {
    let broker = image.brokers.get(&broker_id).ok_or_else(|| {
        ControllerError::StaleBroker(format!("broker {broker_id} is not registered"))
    })?;
    if broker.epoch != broker_epoch {
        return Err(ControllerError::StaleBroker(format!(
            "broker {broker_id} epoch {broker_epoch} is stale (registered as {})",
            broker.epoch
        )));
    }
    Ok(broker)
}

/// The records that unfence broker `broker_id` and elect it leader of the partitions that have
/// none and list it as a replica (their ISR holds only it then, or it was the last one in).
pub fn unfence_broker(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = current_registration(image, broker_id, broker_epoch)?;
    let mut records = Vec::new();
    if broker.fenced {
        records.push(MetadataRecord::BrokerRegistrationChange(
            BrokerRegistrationChangeRecord {
                broker_id,
                broker_epoch,
                fenced: Some(false),
                in_controlled_shutdown: None,
            },
        ));
    }
    for topic in image.topics() {
        for (i, p) in topic.partitions.iter().enumerate() {
            if p.leader == NO_LEADER && p.isr.contains(&broker_id) {
                records.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
                    partition_id: i as i32,
                    topic_id: topic.id,
                    leader: Some(broker_id),
                    ..Default::default()
                }));
            }
        }
    }
    Ok(records)
}

/// The records that fence broker `broker_id` (its session expired, or it shuts down under
/// control): the broker is marked fenced, leaves the ISR of every partition where others remain,
/// and each partition it led gets the next in-sync replica on a live broker as leader (a new
/// leader epoch), or no leader when it was the last one in sync, as Kafka's controller does.
/// Nothing to do for a broker fenced already, or a stale registration.
pub fn fence_broker(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
    controlled: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = current_registration(image, broker_id, broker_epoch)?;
    let mut records = Vec::new();
    if !broker.fenced || (controlled && !broker.in_controlled_shutdown) {
        records.push(MetadataRecord::BrokerRegistrationChange(
            BrokerRegistrationChangeRecord {
                broker_id,
                broker_epoch,
                fenced: Some(true),
                in_controlled_shutdown: controlled.then_some(true),
            },
        ));
    }
    for topic in image.topics() {
        for (i, p) in topic.partitions.iter().enumerate() {
            if let Some(change) = without_broker(image, topic.id, i as i32, p, broker_id) {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
    }
    Ok(records)
}

/// The change that takes `broker_id` out of partition `p`'s leadership and ISR, if it is in
/// either.
fn without_broker(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    p: &PartitionImage,
    broker_id: i32,
) -> Option<PartitionChangeRecord> {
    if !p.isr.contains(&broker_id) && p.leader != broker_id {
        return None;
    }
    let others: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|id| *id != broker_id)
        .collect();
    let mut change = PartitionChangeRecord {
        partition_id,
        topic_id,
        ..Default::default()
    };
    if !others.is_empty() {
        change.isr = Some(others.clone());
    }
    if p.leader == broker_id {
        let next = others
            .iter()
            .copied()
            .find(|id| image.broker_is_live(*id) && *id != broker_id);
        change.leader = Some(next.unwrap_or(NO_LEADER));
    }
    (!is_noop(&change, p)).then_some(change)
}

/// Partition records for `assignment`, numbered from `first`: the leader is the first replica
/// on a live broker, the ISR every replica on a live broker.
fn partition_records<'a>(
    image: &'a MetadataImage,
    topic_id: Uuid,
    first: i32,
    assignment: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> + 'a {
    assignment
        .into_iter()
        .enumerate()
        .map(move |(i, replicas)| {
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|id| image.broker_is_live(*id))
                .collect();
            let leader = isr.first().copied().unwrap_or(NO_LEADER);
            MetadataRecord::Partition(PartitionRecord {
                partition_id: first + i as i32,
                topic_id,
                replicas,
                isr,
                removing_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                eligible_leader_replicas: Vec::new(),
                last_known_elr: Vec::new(),
            })
        })
}

/// Replica lists for new partitions numbered from `first`.
fn assign(
    image: &MetadataImage,
    placement: &Placement,
    first: i32,
    start: PlacementStart,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    match placement {
        Placement::Auto {
            partitions,
            replication_factor,
        } => {
            if !(1..=PARTITIONS_MAX).contains(&(first + partitions)) || *partitions < 1 {
                return Err(ControllerError::InvalidPartitions(format!(
                    "Number of partitions must be between 1 and {PARTITIONS_MAX}."
                )));
            }
            if *replication_factor < 1 {
                return Err(ControllerError::InvalidReplicationFactor(
                    "Replication factor must be larger than 0.".into(),
                ));
            }
            let brokers: Vec<(i32, Option<&str>)> = image
                .live_brokers()
                .filter(|b| !b.in_controlled_shutdown)
                .map(|b| (b.id, b.rack.as_deref()))
                .collect();
            let rf = *replication_factor as usize;
            if rf > brokers.len() {
                return Err(ControllerError::InvalidReplicationFactor(format!(
                    "Unable to replicate the partition {rf} time(s): The target replication \
                     factor of {rf} cannot be reached because only {} broker(s) are registered.",
                    brokers.len()
                )));
            }
            Ok(place(
                &brokers,
                *partitions as usize,
                rf,
                first as usize,
                start,
            ))
        }
        Placement::Manual(lists) => check_manual(image, lists, first),
    }
}

fn check_manual(
    image: &MetadataImage,
    lists: &[Vec<i32>],
    first: i32,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let bad = |why: String| Err(ControllerError::InvalidReplicaAssignment(why));
    if lists.is_empty() || first + lists.len() as i32 > PARTITIONS_MAX {
        return Err(ControllerError::InvalidPartitions(format!(
            "Number of partitions must be between 1 and {PARTITIONS_MAX}."
        )));
    }
    let rf = lists[0].len();
    for (i, replicas) in lists.iter().enumerate() {
        let index = first + i as i32;
        if replicas.is_empty() {
            return bad(format!(
                "The manual partition assignment includes a partition ({index}) with no replicas."
            ));
        }
        if replicas.len() != rf {
            return bad(format!(
                "The manual partition assignment includes the partition {index} with {} \
                 replica(s), but this is not consistent with previous partitions, which have \
                 {rf} replica(s).",
                replicas.len()
            ));
        }
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return bad(format!("The manual partition assignment includes the partition {index} with duplicate replicas."));
        }
        if let Some(id) = replicas.iter().find(|id| !image.brokers.contains_key(id)) {
            return bad(format!(
                "The manual partition assignment includes broker {id}, but no broker with that \
                 ID is registered."
            ));
        }
        if !replicas.iter().any(|id| image.broker_is_live(*id)) {
            return bad(format!(
                "All brokers specified in the manual partition assignment for partition {index} \
                 are fenced or in controlled shutdown."
            ));
        }
    }
    Ok(lists.to_vec())
}

/// Kafka's rack-aware replica assignment (`AdminUtils.assignReplicasToBrokers`): brokers are
/// ordered so that racks alternate; partition `p`'s first replica is broker
/// `(p + start_index) % n`, and the following ones step by a shift that grows after every full
/// round, skipping brokers whose rack already holds a replica until every rack has one. Without
/// racks this is the plain round-robin with shift. Deterministic for a given `start`.
pub fn place(
    brokers: &[(i32, Option<&str>)],
    partitions: usize,
    rf: usize,
    first_partition: usize,
    start: PlacementStart,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    debug_assert!(rf >= 1 && rf <= n);
    let racked = brokers.iter().all(|(_, r)| r.is_some());
    let ordered = if racked {
        rack_alternating(brokers)
    } else {
        let mut v = brokers.to_vec();
        v.sort_by_key(|(id, _)| *id);
        v
    };
    let racks: BTreeSet<Option<&str>> = ordered.iter().map(|(_, r)| *r).collect();
    let start_index = start.start_index % n;
    let mut shift = start.shift % n;
    let mut out = Vec::with_capacity(partitions);
    for p in first_partition..first_partition + partitions {
        if p > first_partition && p % n == 0 {
            shift += 1;
        }
        let leader = (p + start_index) % n;
        let mut replicas = vec![ordered[leader].0];
        let mut racks_used: BTreeSet<Option<&str>> = BTreeSet::from([ordered[leader].1]);
        let mut k = 0;
        while replicas.len() < rf {
            let candidate = ordered[follower_index(leader, shift, k, n)];
            k += 1;
            if replicas.contains(&candidate.0) {
                continue;
            }
            // Until every rack holds a replica, skip brokers on a rack already used.
            let rack_taken = racks_used.len() < racks.len() && racks_used.contains(&candidate.1);
            if racked && rack_taken && k < 2 * n {
                continue;
            }
            racks_used.insert(candidate.1);
            replicas.push(candidate.0);
        }
        out.push(replicas);
    }
    out
}

fn follower_index(leader: usize, shift: usize, k: usize, n: usize) -> usize {
    if n == 1 {
        return leader;
    }
    let step = 1 + (shift + k) % (n - 1);
    (leader + step) % n
}

/// Brokers ordered so that consecutive ones sit on different racks: the first broker of each
/// rack, then the second of each, and so on (racks and brokers in order).
fn rack_alternating<'a>(brokers: &[(i32, Option<&'a str>)]) -> Vec<(i32, Option<&'a str>)> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(*rack).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let depth = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..depth {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(i) {
                out.push((*id, *rack));
            }
        }
    }
    out
}

/// A request to the controller, from a broker of the cluster or a client's admin request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics, one topic.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Replica placement.
        placement: Placement,
        /// Config overrides (already validated by the broker).
        configs: BTreeMap<String, String>,
    },
    /// CreatePartitions, one topic.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// New partition count.
        total: i32,
        /// Replicas of the new partitions, when the request names them.
        manual: Option<Vec<Vec<i32>>>,
    },
    /// DeleteTopics, one topic.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// AlterConfigs / IncrementalAlterConfigs of a topic: the whole new set of overrides.
    ReplaceTopicConfigs {
        /// Topic name.
        name: String,
        /// Every override the topic keeps.
        configs: BTreeMap<String, String>,
    },
    /// AllocateProducerIds.
    AllocateProducerIds {
        /// The asking broker.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: i64,
    },
    /// BrokerRegistration.
    RegisterBroker(Registration),
    /// A broker's heartbeat that found it caught up: unfence it.
    UnfenceBroker {
        /// The broker.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: i64,
    },
    /// The active controller lost a broker's session: fence it and move its leaderships.
    FenceBroker {
        /// The broker.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: i64,
    },
    /// A broker stopping cleanly asks for its leaderships to move first (Kafka's controlled
    /// shutdown); it is fenced as it goes.
    ControlledShutdown {
        /// The broker.
        broker_id: i32,
        /// Its registration epoch.
        broker_epoch: i64,
    },
}

/// What the controller answers besides the records it wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ControllerReply {
    /// Done; nothing to report.
    Done,
    /// The topic was created with this id.
    TopicCreated(Uuid),
    /// The topic with this id was deleted.
    TopicDeleted(Uuid),
    /// A block of producer ids.
    ProducerIds(std::ops::Range<i64>),
    /// The broker is registered with this epoch.
    Registered(i64),
}

/// Plans `request` against `image`: the records to append (as one batch) and the reply.
/// `next_offset` is the offset the batch's first record will get.
pub fn plan(
    image: &MetadataImage,
    request: &ControllerRequest,
    next_offset: i64,
) -> Result<(Vec<MetadataRecord>, ControllerReply), ControllerError> {
    Ok(match request {
        ControllerRequest::CreateTopic {
            name,
            placement,
            configs,
        } => {
            let id = Uuid::new_v4();
            let records = create_topic(
                image,
                name,
                id,
                placement,
                PlacementStart::random(),
                configs,
            )?;
            (records, ControllerReply::TopicCreated(id))
        }
        ControllerRequest::CreatePartitions {
            name,
            total,
            manual,
        } => (
            create_partitions(
                image,
                name,
                *total,
                manual.clone(),
                PlacementStart::random(),
            )?,
            ControllerReply::Done,
        ),
        ControllerRequest::DeleteTopic { name } => {
            let record = delete_topic(image, name)?;
            let id = image.topic(name).map_or(Uuid::nil(), |t| t.id);
            (vec![record], ControllerReply::TopicDeleted(id))
        }
        ControllerRequest::ReplaceTopicConfigs { name, configs } => (
            replace_topic_configs(image, name, configs)?,
            ControllerReply::Done,
        ),
        ControllerRequest::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => {
            let (record, block) = allocate_producer_ids(image, *broker_id, *broker_epoch);
            (vec![record], ControllerReply::ProducerIds(block))
        }
        ControllerRequest::RegisterBroker(registration) => (
            vec![register_broker(registration, next_offset)],
            ControllerReply::Registered(next_offset),
        ),
        ControllerRequest::UnfenceBroker {
            broker_id,
            broker_epoch,
        } => (
            unfence_broker(image, *broker_id, *broker_epoch)?,
            ControllerReply::Done,
        ),
        ControllerRequest::FenceBroker {
            broker_id,
            broker_epoch,
        } => (
            fence_broker(image, *broker_id, *broker_epoch, false)?,
            ControllerReply::Done,
        ),
        ControllerRequest::ControlledShutdown {
            broker_id,
            broker_epoch,
        } => (
            fence_broker(image, *broker_id, *broker_epoch, true)?,
            ControllerReply::Done,
        ),
    })
}

/// A partition change that changes nothing is not written.
pub fn is_noop(change: &PartitionChangeRecord, current: &PartitionImage) -> bool {
    change.isr.as_ref().is_none_or(|v| *v == current.isr)
        && change.leader.is_none()
        && change
            .replicas
            .as_ref()
            .is_none_or(|v| *v == current.replicas)
        && change.removing_replicas.is_none()
        && change.adding_replicas.is_none()
        && change.eligible_leader_replicas.is_none()
        && change.last_known_elr.is_none()
}

#[cfg(test)]
mod tests;
