//! Metadata: brokers, topics, partitions, leaders; auto-creates topics when allowed.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use sluice_metadata::{MetadataImage, PartitionImage, TopicImage};

use super::{sb, RequestContext};
use crate::broker::Broker;

/// The endpoint of broker `b` on `listener`, as Kafka answers: the same listener name the
/// request came in on. A request on a listener the broker does not register (a controller
/// listener) gets the broker's first client endpoint.
pub(crate) fn endpoint<'a>(
    b: &'a sluice_metadata::BrokerRegistration,
    listener: &str,
) -> Option<&'a sluice_metadata::records::Endpoint> {
    b.endpoint(listener).or_else(|| b.endpoints.first())
}

/// A partition's nodes as the responses list them, and the partition's error: no leader is
/// LEADER_NOT_AVAILABLE, as Kafka answers.
pub(crate) struct PartitionNodes {
    /// Replica ids.
    pub(crate) replicas: Vec<BrokerId>,
    /// In-sync replica ids.
    pub(crate) isr: Vec<BrokerId>,
    /// Replicas on brokers that are not live.
    pub(crate) offline: Vec<BrokerId>,
    /// NONE, or LEADER_NOT_AVAILABLE.
    pub(crate) error_code: i16,
}

impl PartitionNodes {
    /// The nodes of `p` under `image`.
    pub(crate) fn of(image: &MetadataImage, p: &PartitionImage) -> PartitionNodes {
        let ids = |v: &[i32]| v.iter().map(|id| BrokerId(*id)).collect();
        PartitionNodes {
            replicas: ids(&p.replicas),
            isr: ids(&p.isr),
            offline: ids(&p.offline_replicas(image)),
            error_code: if p.leader == sluice_metadata::records::NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            },
        }
    }
}

/// The live brokers and the endpoint each serves on `listener`.
fn brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let e = endpoint(b, listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(b.id.into())
                    .with_host(sb(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(sb)),
            )
        })
        .collect()
}

/// The metadata of one existing topic, from the image.
pub(crate) fn topic_metadata(image: &MetadataImage, topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let nodes = PartitionNodes::of(image, p);
            MetadataResponsePartition::default()
                .with_error_code(nodes.error_code)
                .with_partition_index(i as i32)
                .with_leader_id(p.leader.into())
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(nodes.replicas)
                .with_isr_nodes(nodes.isr)
                .with_offline_replicas(nodes.offline)
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
    context: &RequestContext<'_>,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = context.api_version;
    // v0: an empty list means all topics; v1+: null means all and empty means none.
    let requested = match request.topics {
        Some(list) if !(version == 0 && list.is_empty()) => Some(list),
        _ => None,
    };
    // v0–v3 have no flag and always auto-create.
    let auto_create = version < 4 || request.allow_auto_topic_creation;
    let image = broker.image();
    let topics = match requested {
        None => image.topics().map(|t| topic_metadata(&image, t)).collect(),
        Some(list) => list
            .into_iter()
            .map(|t| match t.name {
                Some(name) => {
                    let found = match image.topic(name.as_str()) {
                        Some(t) => Ok(Some(t.clone())),
                        None if auto_create => broker
                            .get_or_auto_create(name.as_str())
                            .map(|_| broker.image().topic(name.as_str()).cloned()),
                        None => Ok(None),
                    };
                    match found {
                        Ok(Some(topic)) => topic_metadata(&broker.image(), &topic),
                        Ok(None) => error_topic(
                            Some(name),
                            Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition,
                        ),
                        Err(e) => error_topic(Some(name), Uuid::nil(), e.code),
                    }
                }
                None => match image.topic_by_id(t.topic_id) {
                    Some(topic) => topic_metadata(&image, topic),
                    None => error_topic(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect(),
    };
    // As Kafka's KRaft brokers, the controller id clients see is a live broker (this one):
    // clients cannot reach the controllers.
    MetadataResponse::default()
        .with_brokers(brokers(&broker.image(), context.listener))
        .with_cluster_id(Some(sb(broker.cluster_id.clone())))
        .with_controller_id(broker.config.node_id.into())
        .with_topics(topics)
}
