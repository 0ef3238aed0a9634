//! The metadata records: every change to the cluster's metadata is one of these, appended to the
//! metadata log and replayed, in order, into the [`crate::MetadataImage`]. They follow Kafka's
//! KRaft records (`metadata/src/main/resources/common/metadata/*.json`) in name and meaning, so
//! that the later ones (ACLs, SCRAM credentials, quotas) fit beside them. The encoding is ours
//! (serde, self-describing, so fields can be added with defaults).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `ConfigRecord.resourceType` of a topic, as Kafka's `ConfigResource.Type.TOPIC`.
pub const RESOURCE_TOPIC: i8 = 2;
/// `ConfigRecord.resourceType` of a broker, as Kafka's `ConfigResource.Type.BROKER`.
pub const RESOURCE_BROKER: i8 = 4;
/// The leader id of a partition that has none (every replica offline).
pub const NO_LEADER: i32 = -1;

/// One listener a broker serves clients on (`BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name, e.g. `PLAINTEXT`.
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

/// A broker registered with the controller (`RegisterBrokerRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRecord {
    /// `node.id`.
    pub broker_id: i32,
    /// Random id of this run of the broker process: a restart registers anew.
    pub incarnation_id: Uuid,
    /// The offset of this record in the metadata log; later changes to the broker name it.
    pub broker_epoch: i64,
    /// Client listeners.
    pub endpoints: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Whether the broker starts fenced (it leads nothing until unfenced).
    pub fenced: bool,
    /// Log directory ids (KIP-858).
    #[serde(default)]
    pub log_dirs: Vec<Uuid>,
}

/// A change to a registered broker (`BrokerRegistrationChangeRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistrationChangeRecord {
    /// The broker.
    pub broker_id: i32,
    /// Its registration's epoch: a change for an older registration is ignored.
    pub broker_epoch: i64,
    /// New fencing state, if it changes.
    pub fenced: Option<bool>,
    /// Whether the broker is in controlled shutdown, if that changes.
    pub in_controlled_shutdown: Option<bool>,
}

/// A topic was created (`TopicRecord`); its partitions follow as [`PartitionRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516).
    pub topic_id: Uuid,
}

/// A partition's full state (`PartitionRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Partition index.
    pub partition_id: i32,
    /// The topic it belongs to.
    pub topic_id: Uuid,
    /// Replica broker ids, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas being removed by a reassignment.
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
    /// Replicas being added by a reassignment.
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    /// Leader broker id, or [`NO_LEADER`].
    pub leader: i32,
    /// Leader epoch: bumped on every leader change.
    pub leader_epoch: i32,
    /// Partition epoch: bumped on every change of the partition.
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966).
    #[serde(default)]
    pub eligible_leader_replicas: Vec<i32>,
    /// Last known eligible leader replicas (KIP-966).
    #[serde(default)]
    pub last_known_elr: Vec<i32>,
}

/// A change to a partition (`PartitionChangeRecord`): fields left `None` keep their value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChangeRecord {
    /// Partition index.
    pub partition_id: i32,
    /// The topic.
    pub topic_id: Uuid,
    /// New ISR.
    pub isr: Option<Vec<i32>>,
    /// New leader ([`NO_LEADER`] for none); a new leader bumps the leader epoch.
    pub leader: Option<i32>,
    /// New replica list.
    pub replicas: Option<Vec<i32>>,
    /// New removing replicas.
    pub removing_replicas: Option<Vec<i32>>,
    /// New adding replicas.
    pub adding_replicas: Option<Vec<i32>>,
    /// New eligible leader replicas.
    pub eligible_leader_replicas: Option<Vec<i32>>,
    /// New last known ELR.
    pub last_known_elr: Option<Vec<i32>>,
}

/// A topic and its partitions were deleted (`RemoveTopicRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveTopicRecord {
    /// The topic.
    pub topic_id: Uuid,
}

/// A config override was set or removed (`ConfigRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// [`RESOURCE_TOPIC`] or [`RESOURCE_BROKER`].
    pub resource_type: i8,
    /// Topic name, or broker id as a string (empty for the cluster default).
    pub resource_name: String,
    /// Config name.
    pub name: String,
    /// New value; `None` removes the override.
    pub value: Option<String>,
}

/// A block of producer ids was handed to a broker (`ProducerIdsRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdsRecord {
    /// The broker that asked.
    pub broker_id: i32,
    /// Its registration's epoch.
    pub broker_epoch: i64,
    /// First producer id not yet handed out, after this block.
    pub next_producer_id: i64,
}

/// A finalized feature level (`FeatureLevelRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLevelRecord {
    /// Feature name, e.g. `metadata.version`.
    pub name: String,
    /// Finalized level; 0 removes the feature.
    pub feature_level: i16,
}

/// A broker was removed from the cluster (`UnregisterBrokerRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerRecord {
    /// The broker.
    pub broker_id: i32,
    /// Its registration's epoch.
    pub broker_epoch: i64,
}

/// Any metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// See [`RegisterBrokerRecord`].
    RegisterBroker(RegisterBrokerRecord),
    /// See [`BrokerRegistrationChangeRecord`].
    BrokerRegistrationChange(BrokerRegistrationChangeRecord),
    /// See [`UnregisterBrokerRecord`].
    UnregisterBroker(UnregisterBrokerRecord),
    /// See [`TopicRecord`].
    Topic(TopicRecord),
    /// See [`PartitionRecord`].
    Partition(PartitionRecord),
    /// See [`PartitionChangeRecord`].
    PartitionChange(PartitionChangeRecord),
    /// See [`RemoveTopicRecord`].
    RemoveTopic(RemoveTopicRecord),
    /// See [`ConfigRecord`].
    Config(ConfigRecord),
    /// See [`ProducerIdsRecord`].
    ProducerIds(ProducerIdsRecord),
    /// See [`FeatureLevelRecord`].
    FeatureLevel(FeatureLevelRecord),
}
