//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use uuid::Uuid;

use super::super::sb;
use crate::broker::Broker;
use crate::error::ApiError;
use crate::topic_config::TopicConfig;
use sluice_metadata::controller::Placement;

/// DescribeConfigs/CreateTopics config source: set on the topic.
pub(crate) const SOURCE_TOPIC: i8 = 1;
/// Set in the broker's static configuration.
pub(crate) const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's default.
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// The config listing CreateTopics v5+ returns for a new topic.
fn created_configs(broker: &Broker, config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    config
        .effective
        .iter()
        .map(|(k, v)| {
            let source = super::configs::topic_config_source(broker, config, k);
            CreatableTopicConfigs::default()
                .with_name(sb(k.clone()))
                .with_value(Some(sb(v.clone())))
                .with_config_source(source)
        })
        .collect()
}

/// Answers CreateTopics.
pub(crate) fn create(
    broker: &Arc<Broker>,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.as_str().to_string();
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            match create_one(broker, &t, request.validate_only) {
                Ok((id, partitions, replication, config)) => {
                    let mut r = result
                        .with_topic_id(id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication);
                    if version >= 5 {
                        r = r.with_configs(Some(created_configs(broker, &config)));
                    }
                    r
                }
                Err(e) => {
                    tracing::debug!(topic = %name, error = %e, "create topic refused");
                    result
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(e.message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn create_one(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<(Uuid, i32, i16, TopicConfig), ApiError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(v) = &c.value {
            configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
        }
    }
    let placement = placement(broker, t)?;
    let (partitions, replication) = match &placement {
        Placement::Auto {
            partitions,
            replication_factor,
        } => (*partitions, *replication_factor),
        Placement::Manual(lists) => (lists.len() as i32, lists[0].len() as i16),
    };
    if validate_only {
        broker.validate_new_topic(t.name.as_str(), &placement, &configs)?;
        let config = TopicConfig::resolve(&broker.config.log_defaults, configs);
        return Ok((Uuid::nil(), partitions, replication, config));
    }
    let topic = broker.create_topic(t.name.as_str(), placement, configs)?;
    Ok((topic.id, partitions, replication, topic.config.clone()))
}

/// How the request places replicas: counts (-1 for the broker defaults), or an assignment
/// per partition, never both.
fn placement(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Placement, ApiError> {
    if t.assignments.is_empty() {
        let partitions = if t.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            t.num_partitions
        };
        return Ok(Placement::auto(
            partitions,
            broker.replication_factor(t.replication_factor),
        ));
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
        ));
    }
    let mut lists = Vec::with_capacity(t.assignments.len());
    for (i, a) in t.assignments.iter().enumerate() {
        if a.partition_index != i as i32 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "partitions should be a consecutive 0-based integer sequence",
            ));
        }
        lists.push(a.broker_ids.iter().map(|b| b.0).collect());
    }
    Ok(Placement::Manual(lists))
}

/// Answers DeleteTopics (by name, or by id in v6+).
pub(crate) fn delete(broker: &Arc<Broker>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<String>, Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.as_str().to_string()), Uuid::nil()))
        .collect();
    for t in &request.topics {
        targets.push((t.name.as_ref().map(|n| n.as_str().to_string()), t.topic_id));
    }
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| broker.topic_by_id(id).map(|t| t.name.clone()));
            let result = match &name {
                Some(n) => broker.delete_topic(n),
                None => Err(ApiError::new(
                    ResponseError::UnknownTopicId,
                    "unknown topic id",
                )),
            };
            let r = DeletableTopicResult::default().with_name(name.map(|n| TopicName(sb(n))));
            match result {
                Ok(id) => r.with_topic_id(id),
                Err(e) => r
                    .with_topic_id(id)
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Answers CreatePartitions.
pub(crate) fn create_partitions(
    broker: &Arc<Broker>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            // An empty assignment list counts as none (some clients send `[]` for null).
            let manual = t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                a.iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let result =
                broker.add_partitions(t.name.as_str(), t.count, manual, request.validate_only);
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            match result {
                Ok(()) => r,
                Err(e) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
