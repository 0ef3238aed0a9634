//! The broker's shared state: topics and their partitions, the metadata store, producer ids.
//!
//! Topics live in a copy-on-write map: readers clone an `Arc<Topic>` under a short read lock and
//! never hold it across I/O; changes (create, delete, add partitions) build a new `Topic` value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::error::ResponseError;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::error::ApiError;
use crate::group::GroupCoordinator;
use crate::metadata_store::{MetadataImage, MetadataStore, TopicRecord};
use crate::partition::{log_config, Partition};
use crate::topic_config::{self, TopicConfig};
use sluice_log::{LogManager, TopicPartition};

/// Longest topic name Kafka allows.
pub const TOPIC_NAME_MAX: usize = 249;
/// Producer ids are handed out from the store in blocks of this size, as Kafka's controller does.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// Most partitions one topic may have on this broker (bounds memory and file handles).
pub const PARTITIONS_MAX: i32 = 10_000;

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Resolved configuration.
    pub config: TopicConfig,
    /// Partitions by index.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    /// Whether the topic is one of Kafka's internal topics.
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
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

/// State of the producer-id allocator.
#[derive(Debug)]
struct ProducerIds {
    /// Next id to hand out.
    next: i64,
    /// End (exclusive) of the block reserved in the store.
    block_end: i64,
}

/// Topics by name and by id (Fetch v13+ and Metadata address topics by id).
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
    /// Topics by name.
    topics: RwLock<Topics>,
    /// The durable metadata and its store; locked for the whole of a metadata change.
    store: Mutex<(MetadataStore, MetadataImage)>,
    /// Producer-id allocator.
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
    /// Opens the data directory: metadata, then every topic's partition logs.
    pub fn open(config: BrokerConfig) -> Result<Broker, ApiError> {
        std::fs::create_dir_all(&config.log_dir)?;
        let (store, image) = MetadataStore::open(&config.log_dir)?;
        let config_for = |tp: &TopicPartition| {
            image.topics.get(&*tp.topic).map(|r| {
                log_config(&TopicConfig::resolve(
                    &config.log_defaults,
                    r.configs.clone(),
                ))
            })
        };
        let default_log = log_config(&TopicConfig::resolve(&config.log_defaults, BTreeMap::new()));
        let logs = LogManager::open(&config.log_dir, default_log, &config_for)?;
        let mut topics = Topics::default();
        for record in image.topics.values() {
            topics.insert(Arc::new(Self::open_topic(&config, &logs, record)?));
        }
        let next = image.next_producer_id;
        let groups = GroupCoordinator::new(crate::group::coordinator_config(&config));
        let txns = crate::txn::TxnCoordinator::new(crate::txn::TxnConfig::from_broker(&config));
        let broker = Broker {
            config,
            topics: RwLock::new(topics),
            store: Mutex::new((store, image)),
            producer_ids: Mutex::new(ProducerIds {
                next,
                block_end: next,
            }),
            logs,
            data_arrived: Notify::new(),
            groups,
            txns,
            cleaner: crate::cleaner::CleanerState::default(),
        };
        if let Some(t) = broker.topic(crate::group::OFFSETS_TOPIC) {
            broker.groups.load(t)?;
        }
        broker.txns.load(&broker)?;
        Ok(broker)
    }

    fn open_topic(
        config: &BrokerConfig,
        logs: &LogManager,
        record: &TopicRecord,
    ) -> Result<Topic, ApiError> {
        let resolved = TopicConfig::resolve(&config.log_defaults, record.configs.clone());
        let mut partitions = Vec::with_capacity(record.partitions as usize);
        for index in 0..record.partitions {
            partitions.push(Arc::new(Self::open_partition(
                logs, record, index, &resolved,
            )?));
        }
        Ok(Topic {
            name: record.name.clone(),
            id: record.id,
            config: resolved,
            partitions,
        })
    }

    fn open_partition(
        logs: &LogManager,
        record: &TopicRecord,
        index: i32,
        config: &TopicConfig,
    ) -> Result<Partition, ApiError> {
        let tp = TopicPartition::new(&record.name, index);
        let log = logs.get_or_create(&tp, Some(log_config(config)))?;
        Partition::new(log, &record.name, record.id, index, config)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().by_name.get(name).cloned()
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().by_id.get(&id).cloned()
    }

    /// Every topic, in name order.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().by_name.values().cloned().collect()
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        // Writers replace whole entries, so a poisoned map is still consistent.
        self.topics.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_store(&self) -> std::sync::MutexGuard<'_, (MetadataStore, MetadataImage)> {
        // A poisoned lock means a panic mid-change: the image is still the last saved one plus
        // at most one unsaved edit, which the next save rewrites, so carrying on is safe.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates a topic creation without performing it.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        validate_topic_name(name)?;
        if self.topic(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be between 1 and {PARTITIONS_MAX}."),
            ));
        }
        if replication_factor < 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.",
            ));
        }
        if replication_factor > 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {replication_factor} time(s): \
                     The target replication factor of {replication_factor} cannot be reached \
                     because only 1 broker(s) are registered."
                ),
            ));
        }
        for (k, v) in configs {
            topic_config::validate(k, v).map_err(|why| {
                ApiError::new(ResponseError::InvalidConfig, format!("{k}: {why}"))
            })?;
        }
        Ok(())
    }

    /// Creates a topic: validates, persists the metadata, then opens its partition logs.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ApiError> {
        let mut guard = self.lock_store();
        self.validate_new_topic(name, partitions, replication_factor, &configs)?;
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let topic = Arc::new(Self::open_topic(&self.config, &self.logs, &record)?);
        let (store, image) = &mut *guard;
        image.topics.insert(name.to_string(), record);
        if let Err(e) = store.save(image) {
            image.topics.remove(name);
            return Err(e.into());
        }
        self.write_topics().insert(topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.topics.write().unwrap_or_else(|p| p.into_inner())
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
        match self.create_topic(
            name,
            self.config.num_partitions,
            self.config.default_replication_factor,
            BTreeMap::new(),
        ) {
            Ok(t) => Ok(Some(t)),
            // Lost a race with another creator: use theirs.
            Err(e) if e.code == ResponseError::TopicAlreadyExists => Ok(self.topic(name)),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic and its partition logs.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        let mut guard = self.lock_store();
        let (store, image) = &mut *guard;
        let Some(record) = image.topics.remove(name) else {
            return Err(ApiError::unknown_topic());
        };
        store.save(image)?;
        let topic = self.write_topics().remove(name);
        for index in 0..record.partitions {
            self.logs.delete_log(&TopicPartition::new(name, index))?;
        }
        drop(topic);
        self.data_arrived.notify_waiters();
        tracing::info!(topic = name, "deleted topic");
        Ok(record.id)
    }

    /// Raises a topic's partition count to `total`.
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let mut guard = self.lock_store();
        let Some(old) = self.topic(name) else {
            return Err(ApiError::unknown_topic());
        };
        let current = old.partitions.len() as i32;
        if total <= current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {total}."),
            ));
        }
        if total > PARTITIONS_MAX {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be at most {PARTITIONS_MAX}."),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let (store, image) = &mut *guard;
        let mut partitions = old.partitions.clone();
        if let Some(record) = image.topics.get(name) {
            for index in current..total {
                partitions.push(Arc::new(Self::open_partition(
                    &self.logs,
                    record,
                    index,
                    &old.config,
                )?));
            }
        }
        if let Some(r) = image.topics.get_mut(name) {
            r.partitions = total;
        }
        store.save(image)?;
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config: old.config.clone(),
            partitions,
        });
        self.write_topics().insert(topic);
        tracing::info!(topic = name, from = current, to = total, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs, IncrementalAlterConfigs): validates
    /// every value, persists the new set, and applies it to the open partitions.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let mut guard = self.lock_store();
        let Some(old) = self.topic(name) else {
            return Err(ApiError::unknown_topic());
        };
        for (k, v) in &overrides {
            topic_config::validate(k, v).map_err(|why| {
                ApiError::new(ResponseError::InvalidConfig, format!("{k}: {why}"))
            })?;
        }
        if validate_only {
            return Ok(());
        }
        let (store, image) = &mut *guard;
        let Some(record) = image.topics.get_mut(name) else {
            return Err(ApiError::new(ResponseError::UnknownTopicOrPartition, ""));
        };
        let previous = std::mem::replace(&mut record.configs, overrides.clone());
        if let Err(e) = store.save(image) {
            if let Some(record) = image.topics.get_mut(name) {
                record.configs = previous;
            }
            return Err(e.into());
        }
        let config = TopicConfig::resolve(&self.config.log_defaults, overrides);
        for p in &old.partitions {
            p.apply_config(&config);
        }
        let topic = Arc::new(Topic {
            name: old.name.clone(),
            id: old.id,
            config,
            partitions: old.partitions.clone(),
        });
        self.write_topics().insert(topic);
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }

    /// Hands out a new producer id, reserving a new block in the store when one runs out.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.next >= ids.block_end {
            let mut guard = self.lock_store();
            let (store, image) = &mut *guard;
            let start = image.next_producer_id.max(ids.next);
            image.next_producer_id = start + PRODUCER_ID_BLOCK;
            store.save(image)?;
            ids.next = start;
            ids.block_end = start + PRODUCER_ID_BLOCK;
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
