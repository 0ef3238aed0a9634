//! The broker's shared state: the metadata image it reads topology from, the partitions it
//! hosts, producer ids, and the coordinators.
//!
//! Metadata changes go to the controller through the [`MetadataQuorum`]; once committed, the new
//! image is *published*: the broker opens the partitions of new topics, applies changed configs
//! and deletes the logs of removed topics. Nothing else keeps its own copy of topology.
//!
//! Hosted topics live in a copy-on-write map: readers clone an `Arc<Topic>` under a short read
//! lock and never hold it across I/O; publishing builds new `Topic` values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::error::ResponseError;
use sluice_metadata::controller::{self, ControllerReply, ControllerRequest, Placement};
use sluice_metadata::records::RESOURCE_TOPIC;
use sluice_metadata::{MetadataImage, MetadataQuorum, TopicImage};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::group::GroupCoordinator;
use crate::partition::{log_config, Partition};
use crate::topic_config::{self, TopicConfig};
use sluice_log::{LogManager, TopicPartition};

/// Longest topic name Kafka allows.
pub const TOPIC_NAME_MAX: usize = 249;
/// Most partitions one topic may have on this broker (bounds memory and file handles).
pub const PARTITIONS_MAX: i32 = controller::PARTITIONS_MAX;

/// A topic this broker hosts, and its partitions.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Resolved configuration.
    pub config: TopicConfig,
    /// Partitions by index; `None` where this broker is not a replica.
    pub partitions: Vec<Option<Arc<Partition>>>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .and_then(Option::as_ref)
    }

    /// The partition with this index if this broker leads it: UNKNOWN_TOPIC_OR_PARTITION past
    /// the topic's partitions, NOT_LEADER_OR_FOLLOWER where another broker leads (clients
    /// refresh their metadata and go there).
    pub fn leader_partition(&self, index: i32) -> Result<&Arc<Partition>, ApiError> {
        let slot = usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
            .ok_or_else(ApiError::unknown_topic)?;
        let not_leader = || {
            ApiError::new(
                ResponseError::NotLeaderOrFollower,
                format!("this broker is not the leader of {}-{index}", self.name),
            )
        };
        let partition = slot.as_ref().ok_or_else(not_leader)?;
        if !partition.is_leader() {
            return Err(not_leader());
        }
        Ok(partition)
    }

    /// The partitions this broker hosts.
    pub fn hosted(&self) -> impl Iterator<Item = &Arc<Partition>> {
        self.partitions.iter().flatten()
    }

    /// Whether the topic is one of Kafka's internal topics.
    pub fn is_internal(&self) -> bool {
        sluice_metadata::image::is_internal_topic(&self.name)
    }
}

/// Checks a topic name as Kafka does (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("invalid topic name `{name}`: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not allowed");
    }
    if name.len() > TOPIC_NAME_MAX {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Pause between two attempts to reach a quorum that has no leader.
const QUORUM_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Submits `request`, trying again for as long as the quorum has no leader (at start, before a
/// majority of the voters is up): a node waits for its quorum, saying so, rather than exit.
/// Blocking; the server stops waiting when it is asked to shut down.
fn submit_until_available(
    quorum: &dyn MetadataQuorum,
    request: ControllerRequest,
) -> Result<sluice_metadata::quorum::Committed, ApiError> {
    loop {
        match quorum.submit(request.clone()) {
            Err(sluice_metadata::quorum::QuorumError::Unavailable(why)) => {
                tracing::warn!(%why, "waiting for the metadata quorum (a majority of controller.quorum.voters must be up)");
                std::thread::sleep(QUORUM_RETRY_BACKOFF);
            }
            other => return Ok(other?),
        }
    }
}

/// The block of producer ids this broker hands out, from the controller.
#[derive(Debug)]
struct ProducerIds {
    /// Next id to hand out.
    next: i64,
    /// End (exclusive) of the block.
    block_end: i64,
}

/// Hosted topics by name and by id (Fetch v13+ and Metadata address topics by id).
#[derive(Debug, Default)]
struct Topics {
    /// By name, in name order.
    by_name: BTreeMap<String, Arc<Topic>>,
    /// By topic id.
    by_id: std::collections::HashMap<Uuid, Arc<Topic>>,
}

impl Topics {
    fn insert(&mut self, topic: Arc<Topic>) {
        self.by_id.insert(topic.id, topic.clone());
        self.by_name.insert(topic.name.clone(), topic);
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Topic>> {
        let topic = self.by_name.remove(name)?;
        self.by_id.remove(&topic.id);
        Some(topic)
    }
}

/// The broker.
#[derive(Debug)]
pub struct Broker {
    /// Effective configuration.
    pub config: BrokerConfig,
    /// The cluster this node belongs to (`meta.properties`).
    pub cluster_id: String,
    /// The metadata quorum: where changes go, and the committed image.
    quorum: Arc<dyn MetadataQuorum>,
    /// This broker's registration epoch (the offset of its registration record).
    broker_epoch: AtomicI64,
    /// The last image published to the hosted partitions; locked while publishing so images
    /// apply one at a time, in order.
    published: Mutex<Arc<MetadataImage>>,
    /// Hosted topics.
    topics: RwLock<Topics>,
    /// The current block of producer ids.
    producer_ids: Mutex<ProducerIds>,
    /// Every partition log of the log directory.
    logs: LogManager,
    /// Woken on every append, so parked fetches re-check their partitions.
    pub data_arrived: Notify,
    /// The group coordinator (consumer groups and committed offsets).
    pub groups: GroupCoordinator,
    /// The transaction coordinator.
    pub txns: crate::txn::TxnCoordinator,
    /// What the log cleaner remembers between passes.
    pub cleaner: crate::cleaner::CleanerState,
}

impl Broker {
    /// Opens the data directory with its metadata quorum: registers this broker, opens the
    /// partitions the image assigns to it, then loads the coordinators.
    pub fn open(
        config: BrokerConfig,
        cluster_id: String,
        quorum: Arc<dyn MetadataQuorum>,
    ) -> Result<Broker, ApiError> {
        std::fs::create_dir_all(&config.log_dir)?;
        let image = quorum.image();
        let config_for = |tp: &TopicPartition| {
            image
                .topic(&tp.topic)
                .map(|_| log_config(&Self::resolve_config(&config, &image, &tp.topic)))
        };
        let default_log = log_config(&TopicConfig::resolve(&config.log_defaults, BTreeMap::new()));
        let logs = LogManager::open(&config.log_dir, default_log, &config_for)?;
        let groups = GroupCoordinator::new(crate::group::coordinator_config(&config));
        let txns = crate::txn::TxnCoordinator::new(crate::txn::TxnConfig::from_broker(&config));
        let broker = Broker {
            config,
            cluster_id,
            quorum,
            broker_epoch: AtomicI64::new(-1),
            published: Mutex::new(Arc::new(MetadataImage::empty())),
            topics: RwLock::new(Topics::default()),
            producer_ids: Mutex::new(ProducerIds {
                next: 0,
                block_end: 0,
            }),
            logs,
            data_arrived: Notify::new(),
            groups,
            txns,
            cleaner: crate::cleaner::CleanerState::default(),
        };
        broker.register()?;
        if let Some(t) = broker.topic(crate::group::OFFSETS_TOPIC) {
            broker.groups.load(t)?;
        }
        broker.txns.load(&broker)?;
        Ok(broker)
    }

    /// Opens the node's storage (formatting a one-node cluster on first start) and the broker
    /// on it.
    pub fn open_local(config: BrokerConfig) -> Result<Broker, ApiError> {
        let storage = crate::node::open(&config)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        Broker::open(config, storage.cluster_id, storage.quorum)
    }

    /// Registers this broker with the controller and, its log being local and whole, has it
    /// unfenced at once, then publishes the image.
    fn register(&self) -> Result<(), ApiError> {
        let registration = controller::Registration {
            broker_id: self.config.node_id,
            incarnation_id: Uuid::new_v4(),
            endpoints: self
                .config
                .node
                .client()
                .map(|l| sluice_metadata::records::Endpoint {
                    name: l.name.clone(),
                    host: l.advertised_host.clone(),
                    port: l.advertised_port,
                    security_protocol: l.protocol.id(),
                })
                .collect(),
            rack: self.config.rack.clone(),
            log_dirs: Vec::new(),
        };
        let committed = submit_until_available(
            &*self.quorum,
            ControllerRequest::RegisterBroker(registration),
        )?;
        let ControllerReply::Registered(epoch) = committed.reply else {
            return Err(ApiError::new(
                ResponseError::UnknownServerError,
                "the controller did not register this broker",
            ));
        };
        self.broker_epoch.store(epoch, Ordering::Release);
        let unfence = ControllerRequest::UnfenceBroker {
            broker_id: self.config.node_id,
            broker_epoch: epoch,
        };
        let committed = submit_until_available(&*self.quorum, unfence)?;
        self.publish(committed.image)?;
        tracing::info!(
            node = self.config.node_id,
            broker_epoch = epoch,
            "registered with the controller"
        );
        Ok(())
    }

    /// This broker's registration epoch.
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// The latest committed metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The metadata quorum.
    pub fn quorum(&self) -> &Arc<dyn MetadataQuorum> {
        &self.quorum
    }

    fn resolve_config(config: &BrokerConfig, image: &MetadataImage, topic: &str) -> TopicConfig {
        TopicConfig::resolve(&config.log_defaults, image.configs(RESOURCE_TOPIC, topic))
    }

    /// Submits `request` to the controller and publishes the image it committed.
    fn submit(&self, request: ControllerRequest) -> Result<ControllerReply, ApiError> {
        let committed = self.quorum.submit(request)?;
        self.publish(committed.image)?;
        Ok(committed.reply)
    }

    /// Brings the hosted partitions in line with `image`: opens the partitions of new topics
    /// and new partitions, applies changed configs and leader epochs, deletes the logs of
    /// removed topics. Images older than the last published one are skipped.
    pub(crate) fn publish(&self, image: Arc<MetadataImage>) -> Result<(), ApiError> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if image.offset <= published.offset {
            return Ok(());
        }
        let hosted: Vec<Arc<Topic>> = self.topics();
        for topic in &hosted {
            if image.topic(&topic.name).is_none_or(|t| t.id != topic.id) {
                self.remove_topic(topic)?;
            }
        }
        let mut result = Ok(());
        for t in image.topics() {
            if self.unchanged_since(&published, &image, t) {
                continue;
            }
            if let Err(e) = self.publish_topic(&image, t) {
                tracing::error!(topic = %t.name, error = %e, "cannot open the topic's partitions");
                result = Err(e);
            }
        }
        *published = image;
        result
    }

    /// Whether topic `t` of `image` is as `previous` had it, configs included, and hosted as
    /// published then. Images share unchanged topics (a change copies only the topic it
    /// touches, and `previous` holds a reference), so the same `Arc` means the same topic: a
    /// publish then costs one comparison per topic instead of a pass over its partitions.
    fn unchanged_since(
        &self,
        previous: &MetadataImage,
        image: &MetadataImage,
        t: &Arc<TopicImage>,
    ) -> bool {
        previous
            .topic(&t.name)
            .is_some_and(|old| Arc::ptr_eq(old, t))
            && previous.config_overrides(RESOURCE_TOPIC, &t.name)
                == image.config_overrides(RESOURCE_TOPIC, &t.name)
            && self.topic(&t.name).is_some_and(|hosted| {
                hosted.id == t.id && hosted.partitions.len() == t.partitions.len()
            })
    }

    fn publish_topic(&self, image: &MetadataImage, t: &TopicImage) -> Result<(), ApiError> {
        let config = Self::resolve_config(&self.config, image, &t.name);
        let old = self.topic(&t.name).filter(|old| old.id == t.id);
        let mut partitions = old.as_ref().map_or(Vec::new(), |o| o.partitions.clone());
        let changed_config = old.as_ref().is_some_and(|o| o.config != config);
        let mut changed = old.is_none() || changed_config;
        let node = self.config.node_id;
        partitions.resize(t.partitions.len(), None);
        for (index, (slot, p)) in partitions.iter_mut().zip(&t.partitions).enumerate() {
            if !p.replicas.contains(&node) {
                // No longer a replica here (reassignment comes with "Cluster 3/3"): stop serving.
                changed |= slot.take().is_some();
                continue;
            }
            if slot.is_none() {
                let tp = TopicPartition::new(&t.name, index as i32);
                let log = self.logs.get_or_create(&tp, Some(log_config(&config)))?;
                *slot = Some(Arc::new(Partition::new(
                    log,
                    &t.name,
                    t.id,
                    index as i32,
                    &config,
                )?));
                changed = true;
            }
            if let Some(partition) = slot {
                partition.apply_image(node, p);
                if changed_config {
                    partition.apply_config(&config);
                }
            }
        }
        if changed {
            self.write_topics().insert(Arc::new(Topic {
                name: t.name.clone(),
                id: t.id,
                config,
                partitions,
            }));
        }
        Ok(())
    }

    fn remove_topic(&self, topic: &Topic) -> Result<(), ApiError> {
        self.write_topics().remove(&topic.name);
        for p in topic.hosted() {
            self.logs
                .delete_log(&TopicPartition::new(&topic.name, p.index))?;
        }
        self.data_arrived.notify_waiters();
        Ok(())
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().by_name.get(name).cloned()
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().by_id.get(&id).cloned()
    }

    /// Every hosted topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().by_name.values().cloned().collect()
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        // Writers replace whole entries, so a poisoned map is still consistent.
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks what the broker checks itself before a topic goes to the controller: the name
    /// and the config overrides.
    fn check_new_topic(name: &str, configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
        validate_topic_name(name)?;
        for (k, v) in configs {
            topic_config::validate(k, v).map_err(|why| {
                ApiError::new(ResponseError::InvalidConfig, format!("{k}: {why}"))
            })?;
        }
        Ok(())
    }

    /// Validates a topic creation without performing it (CreateTopics `validate_only`).
    pub fn validate_new_topic(
        &self,
        name: &str,
        placement: &Placement,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        Self::check_new_topic(name, configs)?;
        let request = ControllerRequest::CreateTopic {
            name: name.to_string(),
            placement: placement.clone(),
            configs: configs.clone(),
        };
        controller::plan(&self.image(), &request, 0)?;
        Ok(())
    }

    /// Creates a topic: validated here and by the controller, committed, then its partitions
    /// opened.
    pub fn create_topic(
        &self,
        name: &str,
        placement: Placement,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ApiError> {
        Self::check_new_topic(name, &configs)?;
        let request = ControllerRequest::CreateTopic {
            name: name.to_string(),
            placement,
            configs,
        };
        self.submit(request)?;
        tracing::info!(topic = name, "created topic");
        self.topic(name).ok_or_else(|| {
            ApiError::new(
                ResponseError::KafkaStorageError,
                "the topic's partitions did not open",
            )
        })
    }

    /// The replication factor to use for `requested` (-1: `default.replication.factor`).
    pub fn replication_factor(&self, requested: i16) -> i16 {
        if requested == -1 {
            self.config.default_replication_factor
        } else {
            requested
        }
    }

    /// The topic, created with the broker defaults if it does not exist and auto-creation is on.
    /// `Ok(None)` when it does not exist and may not be created.
    pub fn get_or_auto_create(&self, name: &str) -> Result<Option<Arc<Topic>>, ApiError> {
        if let Some(t) = self.topic(name) {
            return Ok(Some(t));
        }
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        validate_topic_name(name)?;
        let placement = Placement::auto(
            self.config.num_partitions,
            self.config.default_replication_factor,
        );
        match self.create_topic(name, placement, BTreeMap::new()) {
            Ok(t) => Ok(Some(t)),
            // Lost a race with another creator: use theirs.
            Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic and its partition logs; returns its id.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let reply = self.submit(ControllerRequest::DeleteTopic {
            name: name.to_string(),
        })?;
        tracing::info!(topic = name, "deleted topic");
        match reply {
            ControllerReply::TopicDeleted(id) => Ok(id),
            _ => Ok(Uuid::nil()),
        }
    }

    /// Raises a topic's partition count to `total`; `manual` names the new partitions'
    /// replicas when the request does.
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        manual: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let request = ControllerRequest::CreatePartitions {
            name: name.to_string(),
            total,
            manual,
        };
        if validate_only {
            controller::plan(&self.image(), &request, 0)?;
            return Ok(());
        }
        self.submit(request)?;
        tracing::info!(topic = name, to = total, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs, IncrementalAlterConfigs): validates
    /// every value, commits the new set, and applies it to the hosted partitions.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        if self.image().topic(name).is_none() {
            return Err(ApiError::unknown_topic());
        }
        for (k, v) in &overrides {
            topic_config::validate(k, v).map_err(|why| {
                ApiError::new(ResponseError::InvalidConfig, format!("{k}: {why}"))
            })?;
        }
        if validate_only {
            return Ok(());
        }
        self.submit(ControllerRequest::ReplaceTopicConfigs {
            name: name.to_string(),
            configs: overrides,
        })?;
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Hands out a new producer id, asking the controller for a new block when one runs out,
    /// so ids are unique across the cluster.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.next >= ids.block_end {
            let reply = self.quorum.submit(ControllerRequest::AllocateProducerIds {
                broker_id: self.config.node_id,
                broker_epoch: self.broker_epoch(),
            })?;
            let ControllerReply::ProducerIds(block) = reply.reply else {
                return Err(ApiError::new(
                    ResponseError::UnknownServerError,
                    "the controller handed out no producer ids",
                ));
            };
            ids.next = block.start;
            ids.block_end = block.end;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Writes the log dir's checkpoints (recovery points, log start offsets, high watermarks)
    /// and removes expired `.deleted` files. Blocking: run it off the async workers.
    pub fn checkpoint(&self) {
        if let Err(e) = self.logs.checkpoint() {
            tracing::error!(error = %e, "writing checkpoints failed");
        }
        self.logs.delete_expired_files(sluice_log::now_ms());
    }

    /// Drops the state of producers idle for `producer.id.expiration.ms`. Blocking.
    pub fn expire_producers(&self) {
        let expired = self
            .logs
            .remove_expired_producers(sluice_log::now_ms(), self.config.producer_id_expiration_ms);
        if expired > 0 {
            tracing::info!(expired, "removed expired producer ids");
        }
    }

    /// Flushes and closes every partition log and writes the clean-shutdown marker. Blocking.
    pub fn close(&self) {
        if let Err(e) = self.logs.close() {
            tracing::error!(error = %e, "closing logs failed; the next start recovers them");
        }
    }
}
