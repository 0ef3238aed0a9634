//! Broker configuration with Kafka's property names, defaults and validation.
//!
//! A `server.properties`-style file is read first, then `--override key=value` pairs. Unknown
//! names are refused at start; names Kafka has but Sluice does not need are accepted with a
//! warning so existing files keep working.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration problem, reported at start with the property named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The name is not a Kafka broker property Sluice knows.
    #[error("unknown configuration property `{0}`")]
    Unknown(String),
    /// The value does not parse or is out of range.
    #[error("invalid value `{value}` for `{name}`: {reason}")]
    Invalid {
        /// Property name.
        name: String,
        /// Value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of the file is not `key=value`.
    #[error("{file}:{line}: expected `key=value`")]
    Syntax {
        /// File path.
        file: String,
        /// 1-based line number.
        line: usize,
    },
    /// The file cannot be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// File path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Kafka broker properties that Sluice accepts but that have no effect here (thread pools, JVM
/// and ZooKeeper-era tuning). Accepted so that existing `server.properties` files start.
const IGNORED: &[&str] = &[
    "num.network.threads",
    "num.io.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "background.threads",
    "queued.max.requests",
    "log.cleaner.threads",
    "log.cleaner.dedupe.buffer.size",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "controller.quorum.bootstrap.servers",
];

/// The broker's effective configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (alias `broker.id`): this node's id in the cluster.
    pub node_id: i32,
    /// Roles, listeners and quorum voters, resolved from their properties by
    /// [`BrokerConfig::load`].
    pub node: crate::listeners::NodeListeners,
    /// The raw listener properties, resolved into `node` once all are known.
    pub listener_settings: crate::listeners::ListenerSettings,
    /// Where the first client listener binds.
    pub listener: SocketAddr,
    /// Host of the first client listener, given to clients in Metadata.
    pub advertised_host: String,
    /// Port advertised with `advertised_host`.
    pub advertised_port: u16,
    /// `log.dirs` / `log.dir`: the data directory (one supported for now).
    pub log_dir: PathBuf,
    /// `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `message.max.bytes`: largest record batch accepted (topic default `max.message.bytes`).
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`: largest request frame accepted.
    pub socket_request_max_bytes: i32,
    /// `max.connections`: client connections accepted at once.
    pub max_connections: usize,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `cluster.id` (Sluice-specific default; Kafka takes it from `meta.properties`).
    pub cluster_id: String,
    /// Topic-config defaults set at broker level (`log.segment.bytes` …), by topic-config name.
    pub log_defaults: BTreeMap<&'static str, String>,
    /// Every property that was set explicitly, for DescribeConfigs sources.
    pub explicit: BTreeMap<String, String>,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`: members one group may have.
    pub group_max_size: i32,
    /// `offsets.retention.minutes`: how long an empty group's offsets are kept.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_num_partitions: i32,
    /// `offset.metadata.max.bytes`: longest metadata string of a committed offset.
    pub offset_metadata_max_bytes: i32,
    /// `group.consumer.*`: consumer groups of the KIP-848 protocol.
    pub group_consumer: crate::group::consumer::ConsumerGroupConfig,
    /// `producer.id.expiration.ms`: an idempotent producer's state is dropped after this long
    /// without writes (unless it has an open transaction).
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: i64,
    /// `log.cleaner.enable`: whether compacted topics are cleaned.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.backoff.ms`: pause between cleaning passes.
    pub log_cleaner_backoff_ms: i64,
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: i64,
    /// `log.retention.check.interval.ms`: how often retention deletes old segments.
    pub log_retention_check_interval_ms: i64,
    /// `transaction.state.log.num.partitions`: partitions of `__transaction_state`.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask for.
    pub transaction_max_timeout_ms: i64,
    /// `transactional.id.expiration.ms`: a transactional id idle this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub transaction_abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub transaction_remove_expired_interval_ms: i64,
    /// `transaction.partition.verification.enable`: a transactional batch is only written to a
    /// partition its transaction has added (KIP-890 part 1).
    pub transaction_partition_verification_enable: bool,
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes appended to the metadata log
    /// before the controller writes a snapshot and starts the log over.
    pub metadata_snapshot_bytes: u64,
    /// `broker.session.timeout.ms`: a broker without heartbeat for this long is fenced.
    pub broker_session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats to the controller.
    pub broker_heartbeat_interval_ms: i64,
    /// `replica.lag.time.max.ms`: a follower behind this long leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `offsets.topic.replication.factor` (clamped to the live brokers on a one-node cluster).
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor` (clamped like the offsets topic's).
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub transaction_state_log_min_isr: i32,
    /// `controller.quorum.bootstrap.servers`: controllers to ask for the quorum (KIP-853).
    pub controller_quorum_bootstrap_servers: Vec<String>,
}

/// Broker properties that set a topic-level default: (broker name, topic name, Kafka default).
pub const LOG_DEFAULTS: &[(&str, &str, &str)] = &[
    ("log.segment.bytes", "segment.bytes", "1073741824"),
    ("log.roll.ms", "segment.ms", "604800000"),
    ("log.roll.jitter.ms", "segment.jitter.ms", "0"),
    ("log.index.interval.bytes", "index.interval.bytes", "4096"),
    (
        "log.index.size.max.bytes",
        "segment.index.bytes",
        "10485760",
    ),
    (
        "log.flush.interval.messages",
        "flush.messages",
        "9223372036854775807",
    ),
    ("log.flush.interval.ms", "flush.ms", "9223372036854775807"),
    ("log.retention.ms", "retention.ms", "604800000"),
    ("log.retention.bytes", "retention.bytes", "-1"),
    ("log.cleanup.policy", "cleanup.policy", "delete"),
    (
        "log.message.timestamp.type",
        "message.timestamp.type",
        "CreateTime",
    ),
    ("compression.type", "compression.type", "producer"),
    ("min.insync.replicas", "min.insync.replicas", "1"),
    (
        "log.segment.delete.delay.ms",
        "file.delete.delay.ms",
        "60000",
    ),
    ("message.max.bytes", "max.message.bytes", "1048588"),
    (
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
    ),
    (
        "log.message.timestamp.before.max.ms",
        "message.timestamp.before.max.ms",
        "9223372036854775807",
    ),
    (
        "log.message.timestamp.after.max.ms",
        "message.timestamp.after.max.ms",
        "3600000",
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "min.compaction.lag.ms",
        "0",
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        "max.compaction.lag.ms",
        "9223372036854775807",
    ),
    (
        "log.cleaner.min.cleanable.ratio",
        "min.cleanable.dirty.ratio",
        "0.5",
    ),
    (
        "log.cleaner.delete.retention.ms",
        "delete.retention.ms",
        "86400000",
    ),
    ("log.preallocate", "preallocate", "false"),
];

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            node: crate::listeners::ListenerSettings::default()
                .resolve()
                .unwrap_or_else(|e| unreachable!("the default listeners resolve: {e:?}")),
            listener_settings: crate::listeners::ListenerSettings::default(),
            listener: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            log_dir: PathBuf::from("./sluice-data"),
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            delete_topic_enable: true,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            max_connections: 10_000,
            rack: None,
            cluster_id: "sluice-cluster-0000000".into(),
            log_defaults: LOG_DEFAULTS
                .iter()
                .map(|(_, topic, default)| (*topic, (*default).to_string()))
                .collect(),
            explicit: BTreeMap::new(),
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: 50,
            offset_metadata_max_bytes: 4096,
            group_consumer: Default::default(),
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            offsets_topic_segment_bytes: 104_857_600,
            transaction_state_log_num_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_abort_timed_out_interval_ms: 10_000,
            transaction_remove_expired_interval_ms: 3_600_000,
            transaction_partition_verification_enable: true,
            metadata_snapshot_bytes: sluice_metadata::log::SNAPSHOT_BYTES_DEFAULT,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            replica_lag_time_max_ms: 30_000,
            offsets_topic_replication_factor: 3,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            controller_quorum_bootstrap_servers: Vec::new(),
        }
    }
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, value, "not a number in range"))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(name, value, "expected true or false")),
    }
}

impl BrokerConfig {
    /// Builds the configuration from an optional properties file and `key=value` overrides
    /// (applied in order, later ones winning).
    pub fn load(file: Option<&std::path::Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                file: path.display().to_string(),
                source,
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (k, v) = line
                    .split_once('=')
                    .or_else(|| line.split_once(':'))
                    .ok_or_else(|| ConfigError::Syntax {
                        file: path.display().to_string(),
                        line: i + 1,
                    })?;
                pairs.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        for o in overrides {
            let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::Syntax {
                file: "--override".into(),
                line: 0,
            })?;
            pairs.push((k.trim().to_string(), v.trim().to_string()));
        }
        let mut config = BrokerConfig::default();
        for (k, v) in &pairs {
            config.set(k, v)?;
        }
        config.resolve_listeners()?;
        Ok(config)
    }

    /// Resolves the listener properties together (Kafka checks them against each other) and
    /// takes the first client listener as the one `listener` / `advertised_*` name.
    pub fn resolve_listeners(&mut self) -> Result<(), ConfigError> {
        let node = self
            .listener_settings
            .resolve()
            .map_err(|(name, value, reason)| invalid(name, &value, reason))?;
        if !node.voters.is_empty() && node.controller && !node.voters.contains_key(&self.node_id) {
            return Err(invalid(
                "controller.quorum.voters",
                self.listener_settings.voters.as_deref().unwrap_or_default(),
                format!(
                    "node.id {} runs the controller role but is not a voter",
                    self.node_id
                ),
            ));
        }
        let primary = node
            .client()
            .next()
            .or_else(|| node.listeners.first())
            .cloned()
            .ok_or_else(|| invalid("listeners", "", "no listener given"))?;
        let host = if primary.host.is_empty() {
            "0.0.0.0"
        } else {
            primary.host.as_str()
        };
        let addr = format!("{host}:{}", primary.port);
        self.listener = addr
            .parse()
            .or_else(|_| {
                std::net::ToSocketAddrs::to_socket_addrs(&addr)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or(())
            })
            .map_err(|_| invalid("listeners", &addr, "cannot resolve host"))?;
        self.advertised_host = primary.advertised_host.clone();
        self.advertised_port = primary.advertised_port;
        self.node = node;
        Ok(())
    }

    /// Applies one property.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        match name {
            "node.id" | "broker.id" => self.node_id = parse_num(name, value)?,
            "listeners" => self.listener_settings.listeners = Some(value.to_string()),
            "advertised.listeners" => self.listener_settings.advertised = Some(value.to_string()),
            "listener.security.protocol.map" => {
                self.listener_settings.protocol_map = Some(value.to_string())
            }
            "controller.listener.names" => {
                self.listener_settings.controller_names = Some(value.to_string())
            }
            "inter.broker.listener.name" => {
                self.listener_settings.inter_broker = Some(value.to_string())
            }
            "process.roles" => self.listener_settings.process_roles = Some(value.to_string()),
            "controller.quorum.voters" => self.listener_settings.voters = Some(value.to_string()),
            "controller.quorum.bootstrap.servers" => {
                self.listener_settings.bootstrap_servers = Some(value.to_string());
                self.controller_quorum_bootstrap_servers = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }
            "broker.session.timeout.ms"
            | "broker.heartbeat.interval.ms"
            | "replica.lag.time.max.ms" => {
                let ms: i64 = parse_num(name, value)?;
                if ms < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                match name {
                    "broker.session.timeout.ms" => self.broker_session_timeout_ms = ms,
                    "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = ms,
                    _ => self.replica_lag_time_max_ms = ms,
                }
            }
            "offsets.topic.replication.factor" | "transaction.state.log.replication.factor" => {
                let rf: i16 = parse_num(name, value)?;
                if rf < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                if name == "offsets.topic.replication.factor" {
                    self.offsets_topic_replication_factor = rf;
                } else {
                    self.transaction_state_log_replication_factor = rf;
                }
            }
            "transaction.state.log.min.isr" => {
                self.transaction_state_log_min_isr = parse_num(name, value)?;
                if self.transaction_state_log_min_isr < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
            }
            "log.dirs" | "log.dir" => {
                let first = value.split(',').next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err(invalid(name, value, "empty path"));
                }
                self.log_dir = PathBuf::from(first);
            }
            "num.partitions" => {
                self.num_partitions = parse_num(name, value)?;
                if self.num_partitions < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
            }
            "default.replication.factor" => {
                self.default_replication_factor = parse_num(name, value)?;
                if self.default_replication_factor < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
            }
            "auto.create.topics.enable" => self.auto_create_topics = parse_bool(name, value)?,
            "delete.topic.enable" => self.delete_topic_enable = parse_bool(name, value)?,
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = parse_num(name, value)?;
                if self.socket_request_max_bytes < 1024 {
                    return Err(invalid(name, value, "must be at least 1024"));
                }
            }
            "max.connections" => self.max_connections = parse_num(name, value)?,
            "producer.id.expiration.ms" | "producer.id.expiration.check.interval.ms" => {
                let ms: i64 = parse_num(name, value)?;
                if ms < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                if name == "producer.id.expiration.ms" {
                    self.producer_id_expiration_ms = ms;
                } else {
                    self.producer_id_expiration_check_interval_ms = ms;
                }
            }
            "broker.rack" => self.rack = Some(value.to_string()),
            "cluster.id" => self.cluster_id = value.to_string(),
            "group.initial.rebalance.delay.ms"
            | "group.min.session.timeout.ms"
            | "group.max.session.timeout.ms"
            | "group.max.size"
            | "offsets.retention.minutes"
            | "offsets.retention.check.interval.ms"
            | "offsets.topic.num.partitions"
            | "offset.metadata.max.bytes" => self.set_group(name, value)?,
            "log.cleaner.enable" => self.log_cleaner_enable = parse_bool(name, value)?,
            "log.cleaner.backoff.ms" | "offsets.topic.segment.bytes" => {
                let n: i64 = parse_num(name, value)?;
                if n < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                if name == "log.cleaner.backoff.ms" {
                    self.log_cleaner_backoff_ms = n;
                } else {
                    self.offsets_topic_segment_bytes = n;
                }
            }
            "log.retention.check.interval.ms" => {
                self.log_retention_check_interval_ms = parse_num(name, value)?;
                if self.log_retention_check_interval_ms < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
            }
            "transaction.state.log.num.partitions"
            | "transaction.max.timeout.ms"
            | "transactional.id.expiration.ms"
            | "transaction.abort.timed.out.transaction.cleanup.interval.ms"
            | "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                let n: i64 = parse_num(name, value)?;
                if n < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                match name {
                    "transaction.state.log.num.partitions" => {
                        self.transaction_state_log_num_partitions = i32::try_from(n)
                            .ok()
                            .filter(|n| *n <= crate::broker::PARTITIONS_MAX)
                            .ok_or_else(|| invalid(name, value, "too many partitions"))?
                    }
                    "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = n,
                    "transactional.id.expiration.ms" => self.transactional_id_expiration_ms = n,
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                        self.transaction_abort_timed_out_interval_ms = n
                    }
                    _ => self.transaction_remove_expired_interval_ms = n,
                }
            }
            "metadata.log.max.record.bytes.between.snapshots" => {
                self.metadata_snapshot_bytes = parse_num(name, value)?;
                if self.metadata_snapshot_bytes < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
            }
            "transaction.partition.verification.enable" => {
                self.transaction_partition_verification_enable = parse_bool(name, value)?
            }
            "group.consumer.session.timeout.ms"
            | "group.consumer.heartbeat.interval.ms"
            | "group.consumer.assignors"
            | "group.consumer.max.size" => self.set_group_consumer(name, value)?,
            _ => {
                if let Some((_, topic_name, _)) = LOG_DEFAULTS.iter().find(|(b, _, _)| *b == name) {
                    crate::topic_config::validate(topic_name, value)
                        .map_err(|reason| invalid(name, value, reason))?;
                    if name == "message.max.bytes" {
                        self.message_max_bytes = parse_num(name, value)?;
                    }
                    self.log_defaults.insert(topic_name, value.to_string());
                } else if let Some(hours) = name.strip_prefix("log.retention.") {
                    let factor: i64 = match hours {
                        "hours" => 3_600_000,
                        "minutes" => 60_000,
                        _ => return Err(ConfigError::Unknown(name.into())),
                    };
                    let n: i64 = parse_num(name, value)?;
                    self.log_defaults
                        .insert("retention.ms", (n.saturating_mul(factor)).to_string());
                } else if name == "log.roll.hours" {
                    let n: i64 = parse_num(name, value)?;
                    self.log_defaults
                        .insert("segment.ms", (n.saturating_mul(3_600_000)).to_string());
                } else if IGNORED.contains(&name) {
                    tracing::warn!(
                        property = name,
                        "configuration property has no effect in Sluice"
                    );
                } else {
                    return Err(ConfigError::Unknown(name.into()));
                }
            }
        }
        self.explicit.insert(name.to_string(), value.to_string());
        Ok(())
    }
}

impl BrokerConfig {
    /// Applies one `group.consumer.*` property (KIP-848 consumer groups).
    fn set_group_consumer(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        use crate::group::consumer::Assignor;
        let c = &mut self.group_consumer;
        match name {
            "group.consumer.assignors" => {
                let mut assignors = Vec::new();
                for a in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    // Kafka accepts the assignors' short names or its class names.
                    let short = a.rsplit('.').next().unwrap_or(a);
                    let short = match short {
                        "UniformAssignor" => "uniform",
                        "RangeAssignor" => "range",
                        s => s,
                    };
                    let assignor = Assignor::from_name(short)
                        .ok_or_else(|| invalid(name, value, format!("unknown assignor {a}")))?;
                    assignors.push(assignor);
                }
                if assignors.is_empty() {
                    return Err(invalid(name, value, "needs at least one assignor"));
                }
                c.assignors = assignors;
            }
            "group.consumer.max.size" => {
                let n: i32 = parse_num(name, value)?;
                if n < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                c.max_size = n as usize;
            }
            _ => {
                let n: i32 = parse_num(name, value)?;
                if n < 1 {
                    return Err(invalid(name, value, "must be at least 1"));
                }
                if name == "group.consumer.session.timeout.ms" {
                    c.session_timeout_ms = n;
                } else {
                    c.heartbeat_interval_ms = n;
                }
            }
        }
        Ok(())
    }

    /// Applies one group-coordinator property.
    fn set_group(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let at_least = |min: i64| -> Result<i64, ConfigError> {
            let n: i64 = parse_num(name, value)?;
            if n < min {
                return Err(invalid(name, value, format!("must be at least {min}")));
            }
            Ok(n)
        };
        let int = |n: i64| i32::try_from(n).map_err(|_| invalid(name, value, "must fit in an int"));
        match name {
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay_ms = int(at_least(0)?)?
            }
            "group.min.session.timeout.ms" => {
                self.group_min_session_timeout_ms = int(at_least(0)?)?
            }
            "group.max.session.timeout.ms" => {
                self.group_max_session_timeout_ms = int(at_least(0)?)?
            }
            "group.max.size" => self.group_max_size = int(at_least(1)?)?,
            "offsets.retention.minutes" => self.offsets_retention_minutes = at_least(1)?,
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval_ms = at_least(1)?
            }
            "offsets.topic.num.partitions" => {
                self.offsets_topic_num_partitions = int(at_least(1)?)?
            }
            _ => self.offset_metadata_max_bytes = int(at_least(0)?)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = BrokerConfig::default();
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.message_max_bytes, 1_048_588);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert_eq!(c.log_defaults["segment.bytes"], "1073741824");
        assert!(c.auto_create_topics);
    }

    #[test]
    fn overrides_apply_and_unknown_names_are_refused() {
        let c = BrokerConfig::load(
            None,
            &[
                "listeners=PLAINTEXT://127.0.0.1:19092".into(),
                "num.partitions=4".into(),
                "log.segment.bytes=1048576".into(),
                "log.retention.hours=1".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.listener.port(), 19092);
        assert_eq!(c.advertised_port, 19092);
        assert_eq!(c.num_partitions, 4);
        assert_eq!(c.log_defaults["segment.bytes"], "1048576");
        assert_eq!(c.log_defaults["retention.ms"], "3600000");
        let err = BrokerConfig::load(None, &["no.such.thing=1".into()]).unwrap_err();
        assert!(err.to_string().contains("no.such.thing"), "{err}");
        let err = BrokerConfig::load(None, &["num.partitions=zero".into()]).unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
        let err = BrokerConfig::load(None, &["log.segment.bytes=10".into()]).unwrap_err();
        assert!(err.to_string().contains("log.segment.bytes"), "{err}");
    }

    #[test]
    fn file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# comment\nnode.id=3\nlog.dirs=/tmp/x\nnum.network.threads=3\n",
        )
        .unwrap();
        let c = BrokerConfig::load(Some(&path), &[]).unwrap();
        assert_eq!(c.node_id, 3);
        assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));
    }
}
