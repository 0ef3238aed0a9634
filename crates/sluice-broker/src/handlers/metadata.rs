//! Metadata: brokers, topics, partitions, leaders; auto-creates topics when allowed.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use super::sb;
use crate::broker::{Broker, Topic};

/// The single-node broker list.
fn brokers(broker: &Broker) -> Vec<MetadataResponseBroker> {
    vec![MetadataResponseBroker::default()
        .with_node_id(broker.config.node_id.into())
        .with_host(sb(broker.config.advertised_host.clone()))
        .with_port(i32::from(broker.config.advertised_port))
        .with_rack(broker.config.rack.clone().map(sb))]
}

/// The metadata of one existing topic.
pub(crate) fn topic_metadata(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = broker.config.node_id;
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node.into())
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(vec![node.into()])
                .with_isr_nodes(vec![node.into()])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
}

fn error_topic(name: Option<TopicName>, id: Uuid, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(code.code())
}

/// Answers a Metadata request.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all and empty means none.
    let requested = match request.topics {
        Some(list) if !(version == 0 && list.is_empty()) => Some(list),
        _ => None,
    };
    // v0–v3 have no flag and always auto-create.
    let auto_create = version < 4 || request.allow_auto_topic_creation;
    let topics = match requested {
        None => broker
            .topics()
            .iter()
            .map(|t| topic_metadata(broker, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|t| match t.name {
                Some(name) => {
                    let found = if auto_create {
                        broker.get_or_auto_create(name.as_str())
                    } else {
                        Ok(broker.topic(name.as_str()))
                    };
                    match found {
                        Ok(Some(topic)) => topic_metadata(broker, &topic),
                        Ok(None) => error_topic(
                            Some(name),
                            Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition,
                        ),
                        Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
                    }
                }
                None => match broker.topic_by_id(t.topic_id) {
                    Some(topic) => topic_metadata(broker, &topic),
                    None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(brokers(broker))
        .with_cluster_id(Some(sb(broker.config.cluster_id.clone())))
        .with_controller_id(broker.config.node_id.into())
        .with_topics(topics)
}
