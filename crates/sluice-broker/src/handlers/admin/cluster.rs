//! DescribeCluster and DescribeTopicPartitions (KIP-966, with cursor paging), which Kafka 4's
//! admin client and `kafka-topics --describe` use instead of Metadata.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, TopicName,
};
use uuid::Uuid;

use super::super::sb;
use crate::broker::Broker;

/// Largest page DescribeTopicPartitions returns, whatever the client asks.
const PARTITION_LIMIT_MAX: i32 = 2000;

/// Answers DescribeCluster.
pub(crate) fn describe_cluster(
    broker: &Arc<Broker>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let c = &broker.config;
    // Endpoint type 2 asks for controllers (KIP-919); this node is both roles.
    let node = DescribeClusterBroker::default()
        .with_broker_id(c.node_id.into())
        .with_host(sb(c.advertised_host.clone()))
        .with_port(i32::from(c.advertised_port))
        .with_rack(c.rack.clone().map(sb));
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(sb(c.cluster_id.clone()))
        .with_controller_id(c.node_id.into())
        .with_brokers(vec![node])
        .with_cluster_authorized_operations(i32::MIN)
}

/// Answers DescribeTopicPartitions: topics in name order, starting at the cursor, at most
/// `response_partition_limit` partitions, with `next_cursor` set when more remain.
pub(crate) fn describe_topic_partitions(
    broker: &Arc<Broker>,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let limit = request
        .response_partition_limit
        .clamp(1, PARTITION_LIMIT_MAX) as usize;
    let mut names: Vec<String> = if request.topics.is_empty() {
        broker.topics().iter().map(|t| t.name.clone()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.as_str().to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (c.topic_name.as_str().to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let node = broker.config.node_id;
    let mut topics = Vec::new();
    let mut emitted = 0usize;
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= cursor_topic) {
        let Some(topic) = broker.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_id(Uuid::nil())
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            );
            continue;
        };
        let first = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let mut partitions = Vec::new();
        for p in topic.partitions.iter().skip(first as usize) {
            if emitted == limit {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(sb(name.clone())))
                        .with_partition_index(p.index),
                );
                break;
            }
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p.index)
                    .with_leader_id(node.into())
                    .with_leader_epoch(p.leader_epoch())
                    .with_replica_nodes(vec![node.into()])
                    .with_isr_nodes(vec![node.into()])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
            emitted += 1;
        }
        if !partitions.is_empty() || next_cursor.is_none() {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_id(topic.id)
                    .with_is_internal(topic.is_internal())
                    .with_partitions(partitions)
                    .with_topic_authorized_operations(i32::MIN),
            );
        }
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
