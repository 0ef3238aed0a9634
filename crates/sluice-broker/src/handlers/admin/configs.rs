//! DescribeConfigs for topics and the broker, with Kafka's config sources and synonyms.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::super::sb;
use super::topics::{SOURCE_DEFAULT, SOURCE_STATIC_BROKER, SOURCE_TOPIC};
use crate::broker::Broker;
use crate::config::LOG_DEFAULTS;
use crate::topic_config::{config_type, TopicConfig};

/// Kafka's resource type ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka config type ids (DescribeConfigs v3+).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// The broker-level name that sets the default of topic config `name`.
fn broker_synonym(name: &str) -> Option<&'static str> {
    LOG_DEFAULTS
        .iter()
        .find(|(_, topic, _)| *topic == name)
        .map(|(broker, _, _)| *broker)
}

/// Where the effective value of a topic config comes from.
pub(crate) fn topic_config_source(broker: &Broker, config: &TopicConfig, name: &str) -> i8 {
    if config.overrides.contains_key(name) {
        SOURCE_TOPIC
    } else if broker_synonym(name).is_some_and(|b| broker.config.explicit.contains_key(b)) {
        SOURCE_STATIC_BROKER
    } else {
        SOURCE_DEFAULT
    }
}

fn synonyms(broker: &Broker, config: &TopicConfig, name: &str) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = config.overrides.get(name) {
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(sb(name))
                .with_value(Some(sb(v.clone())))
                .with_source(SOURCE_TOPIC),
        );
    }
    if let Some(b) = broker_synonym(name) {
        if let Some(v) = broker.config.explicit.get(b) {
            out.push(
                DescribeConfigsSynonym::default()
                    .with_name(sb(b))
                    .with_value(Some(sb(v.clone())))
                    .with_source(SOURCE_STATIC_BROKER),
            );
        }
        let default = LOG_DEFAULTS
            .iter()
            .find(|(bn, _, _)| *bn == b)
            .map(|(_, _, d)| *d)
            .unwrap_or("");
        out.push(
            DescribeConfigsSynonym::default()
                .with_name(sb(b))
                .with_value(Some(sb(default)))
                .with_source(SOURCE_DEFAULT),
        );
    }
    out
}

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    // A null key list means every config (COMPAT J9).
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
    include_synonyms: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, ResponseError> {
    let topic = broker
        .topic(name)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    Ok(topic
        .config
        .effective
        .iter()
        .filter(|(k, _)| wanted(keys, k))
        .map(|(k, v)| {
            let r = DescribeConfigsResourceResult::default()
                .with_name(sb(k.clone()))
                .with_value(Some(sb(v.clone())))
                .with_config_source(topic_config_source(broker, &topic.config, k))
                .with_config_type(config_type(k).unwrap_or(TYPE_STRING));
            if include_synonyms {
                r.with_synonyms(synonyms(broker, &topic.config, k))
            } else {
                r
            }
        })
        .collect())
}

/// The broker's own configs, as (name, value, type).
fn broker_configs(c: &crate::config::BrokerConfig) -> Vec<(String, String, i8)> {
    let mut out = vec![
        ("node.id".to_string(), c.node_id.to_string(), TYPE_INT),
        ("broker.id".to_string(), c.node_id.to_string(), TYPE_INT),
        (
            "listeners".to_string(),
            format!("PLAINTEXT://{}", c.listener),
            TYPE_STRING,
        ),
        (
            "advertised.listeners".to_string(),
            format!("PLAINTEXT://{}:{}", c.advertised_host, c.advertised_port),
            TYPE_STRING,
        ),
        (
            "log.dirs".to_string(),
            c.log_dir.display().to_string(),
            TYPE_STRING,
        ),
        (
            "num.partitions".to_string(),
            c.num_partitions.to_string(),
            TYPE_INT,
        ),
        (
            "default.replication.factor".to_string(),
            c.default_replication_factor.to_string(),
            TYPE_INT,
        ),
        (
            "auto.create.topics.enable".to_string(),
            c.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "delete.topic.enable".to_string(),
            c.delete_topic_enable.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "socket.request.max.bytes".to_string(),
            c.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "max.connections".to_string(),
            c.max_connections.to_string(),
            TYPE_INT,
        ),
        (
            "producer.id.expiration.ms".to_string(),
            c.producer_id_expiration_ms.to_string(),
            TYPE_INT,
        ),
        (
            "producer.id.expiration.check.interval.ms".to_string(),
            c.producer_id_expiration_check_interval_ms.to_string(),
            TYPE_INT,
        ),
        (
            "log.cleaner.enable".to_string(),
            c.log_cleaner_enable.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "log.cleaner.backoff.ms".to_string(),
            c.log_cleaner_backoff_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "offsets.topic.segment.bytes".to_string(),
            c.offsets_topic_segment_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "log.retention.check.interval.ms".to_string(),
            c.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "transaction.state.log.num.partitions".to_string(),
            c.transaction_state_log_num_partitions.to_string(),
            TYPE_INT,
        ),
        (
            "transaction.max.timeout.ms".to_string(),
            c.transaction_max_timeout_ms.to_string(),
            TYPE_INT,
        ),
        (
            "transactional.id.expiration.ms".to_string(),
            c.transactional_id_expiration_ms.to_string(),
            TYPE_INT,
        ),
        (
            "transaction.abort.timed.out.transaction.cleanup.interval.ms".to_string(),
            c.transaction_abort_timed_out_interval_ms.to_string(),
            TYPE_INT,
        ),
        (
            "transaction.remove.expired.transaction.cleanup.interval.ms".to_string(),
            c.transaction_remove_expired_interval_ms.to_string(),
            TYPE_INT,
        ),
        (
            "transaction.partition.verification.enable".to_string(),
            c.transaction_partition_verification_enable.to_string(),
            TYPE_BOOLEAN,
        ),
    ];
    if let Some(rack) = &c.rack {
        out.push(("broker.rack".to_string(), rack.clone(), TYPE_STRING));
    }
    for (broker_name, topic_name, _) in LOG_DEFAULTS {
        let value = c.log_defaults.get(topic_name).cloned().unwrap_or_default();
        let ty = match config_type(topic_name) {
            Some(t) if t == TYPE_LIST => TYPE_LIST,
            Some(t) => t,
            None => TYPE_STRING,
        };
        out.push(((*broker_name).to_string(), value, ty));
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn describe_broker(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>,
    include_synonyms: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, ResponseError> {
    // An empty name asks for the cluster-wide defaults; otherwise it must be this node.
    if !name.is_empty() && name != broker.config.node_id.to_string() {
        return Err(ResponseError::InvalidRequest);
    }
    let defaults: std::collections::BTreeMap<String, String> =
        broker_configs(&crate::config::BrokerConfig::default())
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect();
    Ok(broker_configs(&broker.config)
        .into_iter()
        .filter(|(k, _, _)| wanted(keys, k))
        .map(|(k, v, ty)| {
            let explicit = broker.config.explicit.contains_key(&k);
            let source = if explicit {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            // Synonyms as Kafka lists them: the static setting, then the default.
            let mut synonyms = Vec::new();
            if include_synonyms {
                if explicit {
                    synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(sb(k.clone()))
                            .with_value(Some(sb(v.clone())))
                            .with_source(SOURCE_STATIC_BROKER),
                    );
                }
                if let Some(d) = defaults.get(&k) {
                    synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(sb(k.clone()))
                            .with_value(Some(sb(d.clone())))
                            .with_source(SOURCE_DEFAULT),
                    );
                }
            }
            DescribeConfigsResourceResult::default()
                .with_name(sb(k))
                .with_value(Some(sb(v)))
                .with_read_only(true)
                .with_config_source(source)
                .with_config_type(ty)
                .with_synonyms(synonyms)
        })
        .collect())
}

/// Answers DescribeConfigs.
pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let name = r.resource_name.as_str().to_string();
            let found = match r.resource_type {
                RESOURCE_TOPIC => describe_topic(
                    broker,
                    &name,
                    &r.configuration_keys,
                    request.include_synonyms,
                ),
                RESOURCE_BROKER => describe_broker(
                    broker,
                    &name,
                    &r.configuration_keys,
                    request.include_synonyms,
                ),
                _ => Err(ResponseError::InvalidRequest),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name);
            match found {
                Ok(configs) => result.with_configs(configs),
                Err(code) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(sb(code.to_string()))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
