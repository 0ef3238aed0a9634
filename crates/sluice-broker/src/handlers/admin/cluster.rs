//! DescribeCluster and DescribeTopicPartitions (KIP-966, with cursor paging), which Kafka 4's
//! admin client and `kafka-topics --describe` use instead of Metadata.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, TopicName,
};
use uuid::Uuid;

use super::super::metadata::{endpoint, PartitionNodes};
use super::super::{sb, RequestContext};
use crate::broker::Broker;

/// Largest page DescribeTopicPartitions returns, whatever the client asks.
const PARTITION_LIMIT_MAX: i32 = 2000;

/// Answers DescribeCluster.
pub(crate) fn describe_cluster(
    broker: &Arc<Broker>,
    context: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    // Endpoint type 2 asks for controllers (KIP-919); this node is both roles. v2 asks for
    // fenced brokers too.
    let image = broker.image();
    let brokers = image
        .brokers
        .values()
        .filter(|b| request.include_fenced_brokers || !b.fenced)
        .filter_map(|b| {
            let e = endpoint(b, context.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(b.id.into())
                    .with_host(sb(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(sb))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(broker.config.node_id.into())
        .with_brokers(brokers)
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
    let image = broker.image();
    let mut names: Vec<String> = if request.topics.is_empty() {
        image.topics().map(|t| t.name.clone()).collect()
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
    let mut topics = Vec::new();
    let mut emitted = 0usize;
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= cursor_topic) {
        let Some(topic) = image.topic(&name) else {
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
        for (index, p) in topic.partitions.iter().enumerate().skip(first as usize) {
            let index = index as i32;
            if emitted == limit {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(sb(name.clone())))
                        .with_partition_index(index),
                );
                break;
            }
            let nodes = PartitionNodes::of(&image, p);
            let ids = |v: &[i32]| v.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(nodes.error_code)
                    .with_partition_index(index)
                    .with_leader_id(p.leader.into())
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(nodes.replicas)
                    .with_isr_nodes(nodes.isr)
                    .with_offline_replicas(nodes.offline)
                    .with_eligible_leader_replicas(Some(ids(&p.eligible_leader_replicas)))
                    .with_last_known_elr(Some(ids(&p.last_known_elr))),
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
