//! The consumer group protocol's APIs (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Thin: each translates the wire message for
//! [`crate::group::consumer::ConsumerGroups`] and back.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    self as describe, DescribedGroup,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as hb};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};

use super::sb;
use crate::broker::Broker;
use crate::group::consumer::{Assignment, HeartbeatRequest, TopicLookup};

/// The operations a group resource allows (READ, DELETE, DESCRIBE as bits), reported when
/// asked for; there are no ACLs yet, so all are allowed.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// ConsumerGroupDescribe's member type of a consumer-protocol member (v1+).
const MEMBER_TYPE_CONSUMER: i8 = 1;

/// Answers ConsumerGroupHeartbeat.
pub(crate) fn heartbeat(
    broker: &Arc<Broker>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.as_str().to_string();
    let failed = |code: ResponseError, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(sb(message)))
    };
    if let Err(e) = broker.groups.offsets_topic(broker) {
        return failed(ResponseError::CoordinatorNotAvailable, e.to_string());
    }
    let req = HeartbeatRequest {
        member_id: request.member_id.as_str().to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.as_str().to_string()),
        rack_id: request.rack_id.map(|s| s.as_str().to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|n| n.iter().map(|t| t.as_str().to_string()).collect()),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .map(|s| s.as_str().to_string()),
        server_assignor: request.server_assignor.map(|s| s.as_str().to_string()),
        owned: request.topic_partitions.map(|tps| {
            tps.into_iter()
                .map(|tp| (tp.topic_id, tp.partitions))
                .collect()
        }),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        version,
    };
    let classic_busy = broker.groups.classic_has_members(&group_id);
    let result = broker.groups.consumer.heartbeat(
        &group_id,
        req,
        classic_busy,
        broker.as_ref(),
        super::now_ms(),
    );
    match result {
        Ok(r) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(r.member_id)))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_assignment(r.assignment.map(|a| {
                hb::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            hb::TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err((code, message)) => failed(code, message),
    }
}

fn describe_assignment(broker: &Broker, a: &Assignment) -> describe::Assignment {
    let topic_partitions = a
        .iter()
        .map(|(t, ps)| {
            describe::TopicPartitions::default()
                .with_topic_id(*t)
                .with_topic_name(TopicName(sb(broker.topic_name(*t).unwrap_or_default())))
                .with_partitions(ps.iter().copied().collect())
        })
        .collect();
    describe::Assignment::default().with_topic_partitions(topic_partitions)
}

/// Answers ConsumerGroupDescribe.
pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let d = DescribedGroup::default().with_group_id(id.clone());
            let Some(group) = broker.groups.consumer.get(id.as_str()) else {
                let message = if broker.groups.classic_exists(id.as_str()) {
                    format!("Group {} is not a consumer group.", id.as_str())
                } else {
                    format!("Group {} not found.", id.as_str())
                };
                return d
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(message)));
            };
            let g = group.lock().unwrap_or_else(|p| p.into_inner());
            let members = g
                .members()
                .values()
                .map(|m| {
                    let mut member = describe::Member::default()
                        .with_member_id(sb(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(sb))
                        .with_rack_id(m.rack_id.clone().map(sb))
                        .with_member_epoch(m.epoch)
                        .with_client_id(sb(m.client_id.clone()))
                        .with_client_host(sb(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed_topic_names
                                .iter()
                                .map(|t| TopicName(sb(t.clone())))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(
                            m.subscribed_topic_regex.as_ref().map(|r| sb(r.0.clone())),
                        )
                        .with_assignment(describe_assignment(broker, &m.assigned))
                        .with_target_assignment(describe_assignment(broker, &g.target_of(&m.id)));
                    if version >= 1 {
                        member = member.with_member_type(MEMBER_TYPE_CONSUMER);
                    }
                    member
                })
                .collect();
            let mut d = d
                .with_group_state(sb(g.state().name()))
                .with_group_epoch(g.epoch)
                .with_assignment_epoch(g.assignment_epoch)
                .with_assignor_name(sb(g.assignor_name(&broker.groups.consumer.config)))
                .with_members(members);
            if request.include_authorized_operations {
                d = d.with_authorized_operations(GROUP_OPERATIONS);
            }
            d
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// Consumer groups as ListGroups shows them: (id, state name).
pub(crate) fn listed(broker: &Broker) -> BTreeMap<String, &'static str> {
    broker
        .groups
        .consumer
        .list()
        .into_iter()
        .map(|(id, state)| (id, state.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    //! Every answer at every served version must encode: a field set for a version that lacks
    //! it makes the encoder fail, and the client would get no response.
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{ApiKey, GroupId};
    use kafka_protocol::protocol::Encodable;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let config = crate::config::BrokerConfig::load(
            None,
            &[
                format!("log.dirs={}", dir.display()),
                "offsets.topic.num.partitions=3".into(),
            ],
        )
        .unwrap();
        Arc::new(Broker::open_local(config).unwrap())
    }

    fn encodes<M: Encodable>(m: &M, version: i16) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
    }

    #[test]
    fn every_version_encodes() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_topic(
            "t",
            sluice_metadata::controller::Placement::auto(2, 1),
            Default::default(),
        )
        .unwrap();
        let r = sluice_proto::api::supported_range(ApiKey::ConsumerGroupHeartbeat).unwrap();
        for v in r.min_served..=r.max {
            let join = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb(format!("g{v}"))))
                .with_member_id(sb(format!("m{v}")))
                .with_rebalance_timeout_ms(5000)
                .with_subscribed_topic_names(Some(vec![TopicName(sb("t"))]))
                .with_topic_partitions(Some(Vec::new()));
            let ok = heartbeat(&b, join.clone(), v, "c", "/127.0.0.1");
            assert_eq!(ok.error_code, 0, "v{v}: {ok:?}");
            assert!(ok.assignment.is_some());
            encodes(&ok, v);
            let bad = heartbeat(&b, join.with_member_epoch(-7), v, "c", "/127.0.0.1");
            assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
            encodes(&bad, v);
        }
        let r = sluice_proto::api::supported_range(ApiKey::ConsumerGroupDescribe).unwrap();
        for v in r.min_served..=r.max {
            let req = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(sb("g1")), GroupId(sb("none"))])
                .with_include_authorized_operations(true);
            let d = describe(&b, req, v);
            assert_eq!(d.groups[0].members.len(), 1);
            assert_eq!(
                d.groups[1].error_code,
                ResponseError::GroupIdNotFound.code()
            );
            encodes(&d, v);
        }
    }
}
