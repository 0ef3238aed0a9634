//! Consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//!
//! Thin: each translates the wire message for [`crate::group::GroupCoordinator`] and back,
//! setting version-specific fields only for the versions that have them.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::group::{
    CommitPartition, FetchedOffset, GroupState, JoinRequest, SyncRequest, TopicOffsets,
};

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// The operations a group resource allows (READ, DELETE, DESCRIBE as bits), reported when
/// DescribeGroups asks for authorized operations; there are no ACLs yet, so all are allowed.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// DescribeGroups' value for "authorized operations not requested".
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

fn string(s: &StrBytes) -> String {
    s.as_str().to_string()
}

// ----- FindCoordinator -----

/// Answers FindCoordinator for groups and transactional ids: this node coordinates both.
pub(crate) fn find_coordinator(
    broker: &Arc<Broker>,
    context: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = context.api_version;
    // The coordinator of a key is the leader of its partition of the internal topic (created on
    // first use), as in Kafka; clients then send the group's or transaction's requests there.
    let lookup = |key: &StrBytes| -> Result<(i32, String, u16), (ResponseError, &'static str)> {
        let unavailable = |why| (ResponseError::CoordinatorNotAvailable, why);
        let (topic, index) = match request.key_type {
            KEY_TYPE_GROUP => {
                if key.is_empty() {
                    return Err((ResponseError::InvalidRequest, "empty group id"));
                }
                let topic = broker
                    .groups
                    .offsets_topic(broker)
                    .map_err(|_| unavailable("offsets topic unavailable"))?;
                let n = topic.partitions.len() as i32;
                (topic, crate::group::records::partition_for(key.as_str(), n))
            }
            KEY_TYPE_TRANSACTION => {
                let topic = broker.txns.find(broker, key.as_str()).map_err(|e| {
                    let why = if e == ResponseError::InvalidRequest {
                        "empty transactional id"
                    } else {
                        "transaction state topic unavailable"
                    };
                    (e, why)
                })?;
                let n = topic.partitions.len() as i32;
                (topic, crate::group::records::partition_for(key.as_str(), n))
            }
            _ => return Err((ResponseError::InvalidRequest, "unsupported key type")),
        };
        let image = broker.image();
        let leader = image
            .topic(&topic.name)
            .and_then(|t| t.partition(index))
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or_else(|| unavailable("the coordinator's partition has no leader"))?;
        let endpoint = image
            .brokers
            .get(&leader)
            .and_then(|b| super::metadata::endpoint(b, context.listener))
            .ok_or_else(|| unavailable("the coordinator has no endpoint"))?;
        Ok((leader, endpoint.host.clone(), endpoint.port))
    };
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match lookup(key) {
                    Ok((node, host, port)) => c
                        .with_node_id(BrokerId(node))
                        .with_host(sb(host))
                        .with_port(i32::from(port)),
                    Err((e, why)) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(why))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match lookup(&request.key) {
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(sb(host))
            .with_port(i32::from(port)),
        Err((e, why)) => FindCoordinatorResponse::default()
            .with_error_code(e.code())
            .with_error_message((version >= 1).then(|| sb(why)))
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

// ----- JoinGroup, SyncGroup, Heartbeat, LeaveGroup -----

/// Answers JoinGroup, after the join phase completes.
pub(crate) async fn join_group(
    broker: &Arc<Broker>,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    let req = JoinRequest {
        member_id: string(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(string),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: string(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| (string(&p.name), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let r = broker
        .groups
        .join(broker, request.group_id.as_str(), req)
        .await;
    if r.error.is_some() {
        tracing::debug!(group = %request.group_id.as_str(), error = ?r.error, "join refused");
    }
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.map(sb)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    let protocol_name = match r.protocol_name {
        Some(p) => Some(sb(p)),
        // Nullable only from v7.
        None if version < 7 => Some(sb("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code(r.error))
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            r.protocol_type.map(sb)
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(sb(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(members)
}

/// Answers SyncGroup, once the leader's assignment is there.
pub(crate) async fn sync_group(
    broker: &Arc<Broker>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let req = SyncRequest {
        member_id: string(&request.member_id),
        group_instance_id: request.group_instance_id.as_ref().map(string),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.as_ref().map(string),
        protocol_name: request.protocol_name.as_ref().map(string),
        assignments: request
            .assignments
            .iter()
            .map(|a| (string(&a.member_id), a.assignment.clone()))
            .collect(),
    };
    let r = broker
        .groups
        .sync(broker, request.group_id.as_str(), req)
        .await;
    let mut response = SyncGroupResponse::default()
        .with_error_code(code(r.error))
        .with_assignment(r.assignment);
    if version >= 5 {
        response = response
            .with_protocol_type(r.protocol_type.map(sb))
            .with_protocol_name(r.protocol_name.map(sb));
    }
    response
}

/// Answers Heartbeat.
pub(crate) fn heartbeat(broker: &Arc<Broker>, request: HeartbeatRequest) -> HeartbeatResponse {
    let instance = request.group_instance_id.as_ref().map(string);
    let e = broker.groups.heartbeat(
        broker,
        request.group_id.as_str(),
        request.member_id.as_str(),
        instance.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(e))
}

/// Answers LeaveGroup: one member (v0–v2) or a batch (v3+).
pub(crate) fn leave_group(
    broker: &Arc<Broker>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    string(&m.member_id),
                    m.group_instance_id.as_ref().map(string),
                )
            })
            .collect()
    } else {
        vec![(string(&request.member_id), None)]
    };
    let results = match broker
        .groups
        .leave(broker, request.group_id.as_str(), &members)
    {
        Ok(r) => r,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    if version < 3 {
        return LeaveGroupResponse::default()
            .with_error_code(code(results.first().copied().flatten()));
    }
    let responses = members
        .into_iter()
        .zip(results)
        .map(|((id, instance), e)| {
            MemberResponse::default()
                .with_member_id(sb(id))
                .with_group_instance_id(instance.map(sb))
                .with_error_code(code(e))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

// ----- offsets -----

/// Answers OffsetCommit.
pub(crate) fn offset_commit(
    broker: &Arc<Broker>,
    request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let partitions: Vec<CommitPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitPartition {
                topic: string(&t.name),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map(string)
                    .unwrap_or_default(),
            })
        })
        .collect();
    let instance = request.group_instance_id.as_ref().map(string);
    // Kafka: members of the consumer group protocol commit with OffsetCommit v9+.
    let old_version = version < 9
        && broker
            .groups
            .consumer
            .is_member(request.group_id.as_str(), request.member_id.as_str());
    let mut results = if old_version {
        vec![Some(ResponseError::UnsupportedVersion); partitions.len()]
    } else {
        broker.groups.commit(
            broker,
            request.group_id.as_str(),
            request.member_id.as_str(),
            instance.as_deref(),
            request.generation_id_or_member_epoch,
            &partitions,
        )
    }
    .into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(results.next().flatten()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

type Requested = Option<Vec<(String, Vec<i32>)>>;

/// The offsets of one group, as (topic, [(partition, offset)]).
fn fetch_group(broker: &Arc<Broker>, group: &str, topics: &Requested) -> TopicOffsets {
    broker.groups.fetch_offsets(group, topics.as_deref())
}

fn leader_epoch(o: &Option<FetchedOffset>) -> i32 {
    o.as_ref().map_or(-1, |o| o.leader_epoch)
}

/// With `require_stable` (v7+, read_committed consumers), a partition whose offset an open
/// transaction has committed gets UNSTABLE_OFFSET_COMMIT (retriable) instead of an offset.
fn stable(
    broker: &Broker,
    require_stable: bool,
    group: &str,
    topic: &str,
    partition: i32,
    offset: Option<FetchedOffset>,
) -> (Option<FetchedOffset>, i16) {
    if require_stable
        && broker
            .groups
            .has_pending_txn_offset(group, topic, partition)
    {
        return (None, ResponseError::UnstableOffsetCommit.code());
    }
    (offset, 0)
}

/// Answers OffsetFetch: one group (v1–v7) or several (v8+).
pub(crate) fn offset_fetch(
    broker: &Arc<Broker>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let topics: Requested = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (string(&t.name), t.partition_indexes.clone()))
                        .collect()
                });
                let group = g.group_id.as_str();
                // Members of a consumer group fetch with their member epoch (v9+).
                let checked = broker.groups.consumer.validate_fetch(
                    group,
                    g.member_id.as_ref().map(|m| m.as_str()),
                    g.member_epoch,
                );
                if let Err(e) = checked {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(e.code());
                }
                let topics = fetch_group(broker, group, &topics)
                    .into_iter()
                    .map(|(t, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(p, o)| {
                                let (o, error) =
                                    stable(broker, request.require_stable, group, &t, p, o);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_error_code(error)
                                    .with_committed_leader_epoch(leader_epoch(&o))
                                    .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset))
                                    .with_metadata(Some(sb(o
                                        .map(|o| o.metadata)
                                        .unwrap_or_default())))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics: Requested = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (string(&t.name), t.partition_indexes.clone()))
            .collect()
    });
    let group = request.group_id.as_str();
    let topics = fetch_group(broker, group, &topics)
        .into_iter()
        .map(|(t, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, o)| {
                    let (o, error) = stable(broker, request.require_stable, group, &t, p, o);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(error)
                        .with_committed_leader_epoch(if version >= 5 {
                            leader_epoch(&o)
                        } else {
                            -1
                        })
                        .with_committed_offset(o.as_ref().map_or(-1, |o| o.offset))
                        .with_metadata(Some(sb(o.map(|o| o.metadata).unwrap_or_default())))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(sb(t)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// Answers OffsetDelete.
pub(crate) fn offset_delete(
    broker: &Arc<Broker>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut known = Vec::new();
    let image = broker.image();
    for t in &request.topics {
        for p in &t.partitions {
            known.push(image.has_partition(t.name.as_str(), p.partition_index));
        }
    }
    let wanted: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (string(&t.name), p.partition_index))
        })
        .zip(&known)
        .filter(|(_, k)| **k)
        .map(|(tp, _)| tp)
        .collect();
    let results = match broker
        .groups
        .delete_offsets(broker, request.group_id.as_str(), &wanted)
    {
        Ok(r) => r,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut results = results.into_iter();
    let mut known = known.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let e = if known.next().unwrap_or(false) {
                        results.next().flatten()
                    } else {
                        Some(ResponseError::UnknownTopicOrPartition)
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(e))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

// ----- admin -----

/// Answers ListGroups, with the state filter of v4+ and the type filter of v5+ (every group
/// here is a classic group).
pub(crate) fn list_groups(
    broker: &Arc<Broker>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let wants = |kind: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.as_str().eq_ignore_ascii_case(kind))
    };
    let states: Vec<String> = request.states_filter.iter().map(string).collect();
    // Consumer groups (KIP-848); their offsets sit in a classic group of the same id, which is
    // not listed a second time.
    let consumer = super::consumer_groups::listed(broker);
    let classic = if wants("classic") {
        broker.groups.list(&states)
    } else {
        Vec::new()
    };
    let mut groups: Vec<ListedGroup> = classic
        .into_iter()
        .filter(|g| !consumer.contains_key(&g.group_id))
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(g.group_id)))
                .with_protocol_type(sb(g.protocol_type));
            if version >= 4 {
                l = l.with_group_state(sb(g.state.name()));
            }
            if version >= 5 {
                l = l.with_group_type(sb("classic"));
            }
            l
        })
        .collect();
    if wants("consumer") {
        for (id, state) in consumer {
            if !states.is_empty() && !states.iter().any(|s| s.eq_ignore_ascii_case(state)) {
                continue;
            }
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb("consumer"));
            if version >= 4 {
                l = l.with_group_state(sb(state));
            }
            if version >= 5 {
                l = l.with_group_type(sb("consumer"));
            }
            groups.push(l);
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    }
    ListGroupsResponse::default().with_groups(groups)
}

/// Answers DescribeGroups.
pub(crate) fn describe_groups(
    broker: &Arc<Broker>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let mut d = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(if version >= 3 {
                    operations
                } else {
                    OPERATIONS_NOT_REQUESTED
                });
            if id.is_empty() {
                return d
                    .with_error_code(ResponseError::InvalidGroupId.code())
                    .with_group_state(sb(GroupState::Dead.name()));
            }
            let mut g = broker.groups.describe(id.as_str());
            if broker.groups.consumer.get(id.as_str()).is_some() {
                // As Kafka: DescribeGroups describes classic groups only.
                g.state = None;
            }
            let Some(state) = g.state else {
                d = d.with_group_state(sb(GroupState::Dead.name()));
                if version >= 6 {
                    d = d
                        .with_error_code(ResponseError::GroupIdNotFound.code())
                        .with_error_message(Some(sb(format!("Group {} not found.", id.as_str()))));
                }
                return d;
            };
            let members = g
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(if version >= 4 {
                            m.group_instance_id.map(sb)
                        } else {
                            None
                        })
                        .with_client_id(sb(m.client_id))
                        .with_client_host(sb(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            d.with_group_state(sb(state.name()))
                .with_protocol_type(sb(g.protocol_type))
                .with_protocol_data(sb(g.protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// Answers DeleteGroups.
pub(crate) fn delete_groups(
    broker: &Arc<Broker>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|id| {
            let e = broker.groups.delete_group(broker, id.as_str()).err();
            if e.is_none() {
                tracing::info!(group = %id.as_str(), "deleted group");
            }
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code(e))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    //! Every group API answered at every served version must encode: a field set for a version
    //! that lacks it fails the whole response.

    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::protocol::Encodable;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let config = crate::config::BrokerConfig::load(
            None,
            &[
                format!("log.dirs={}", dir.display()),
                "group.initial.rebalance.delay.ms=0".into(),
                "group.min.session.timeout.ms=1000".into(),
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

    fn range(key: kafka_protocol::messages::ApiKey) -> std::ops::RangeInclusive<i16> {
        let r = sluice_proto::api::supported_range(key).unwrap();
        r.min_served..=r.max
    }

    #[tokio::test]
    async fn every_version_encodes() {
        use kafka_protocol::messages::ApiKey;
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        // A new group's first join phase ends from the coordinator's timer.
        let timers = tokio::spawn(crate::group::run_timers(b.clone()));
        b.create_topic(
            "t",
            sluice_metadata::controller::Placement::auto(2, 1),
            Default::default(),
        )
        .unwrap();
        for v in range(ApiKey::FindCoordinator) {
            let mut r = FindCoordinatorRequest::default().with_key(sb("g"));
            r.coordinator_keys = vec![sb("g"), sb("")];
            let context = RequestContext {
                listener: "PLAINTEXT",
                api_version: v,
                client_id: "test",
                peer: ([127, 0, 0, 1], 1).into(),
            };
            encodes(&find_coordinator(&b, &context, r.clone()), v);
            encodes(&find_coordinator(&b, &context, r.with_key_type(1)), v);
        }
        for v in range(ApiKey::JoinGroup) {
            let group = GroupId(sb(format!("g{v}")));
            let join = JoinGroupRequest::default()
                .with_group_id(group.clone())
                .with_session_timeout_ms(5000)
                .with_rebalance_timeout_ms(5000)
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(sb("range"))
                    .with_metadata(bytes::Bytes::from_static(b"m"))]);
            let mut r = join_group(&b, join.clone(), v, "c", "/127.0.0.1").await;
            encodes(&r, v);
            if r.error_code == ResponseError::MemberIdRequired.code() {
                let again = join.clone().with_member_id(r.member_id.clone());
                r = join_group(&b, again, v, "c", "/127.0.0.1").await;
                encodes(&r, v);
            }
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(r.members.len(), 1);
            let member = r.member_id.clone();
            let bad = join.clone().with_protocol_type(sb("connect"));
            let refused = join_group(&b, bad, v, "c", "/127.0.0.1").await;
            assert_eq!(
                refused.error_code,
                ResponseError::InconsistentGroupProtocol.code()
            );
            encodes(&refused, v);
            let sync_v = v.min(5);
            let sync = SyncGroupRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(r.generation_id)
                .with_member_id(member.clone());
            let s = sync_group(&b, sync, sync_v).await;
            assert_eq!(s.error_code, 0);
            encodes(&s, sync_v);
            let hb_v = v.min(4);
            let hb = HeartbeatRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(r.generation_id)
                .with_member_id(member.clone());
            let h = heartbeat(&b, hb.clone());
            assert_eq!(h.error_code, 0);
            encodes(&h, hb_v);
            let stale = heartbeat(&b, hb.with_generation_id(r.generation_id + 1));
            assert_eq!(stale.error_code, ResponseError::IllegalGeneration.code());
            let commit_v = v.clamp(2, 9);
            let commit = OffsetCommitRequest::default()
                .with_group_id(group.clone())
                .with_generation_id_or_member_epoch(r.generation_id)
                .with_member_id(member.clone())
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("t")))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(7),
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(9)
                            .with_committed_offset(7),
                    ])]);
            let c = offset_commit(&b, commit.clone(), commit_v);
            encodes(&c, commit_v);
            let codes: Vec<i16> = c.topics[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            assert_eq!(
                codes,
                vec![0, ResponseError::UnknownTopicOrPartition.code()]
            );
            let unknown = offset_commit(&b, commit.with_member_id(sb("nobody")), commit_v);
            assert_eq!(
                unknown.topics[0].partitions[0].error_code,
                ResponseError::UnknownMemberId.code()
            );
            let leave_v = v.min(5);
            let mut leave = LeaveGroupRequest::default()
                .with_group_id(group.clone())
                .with_member_id(if leave_v < 3 {
                    sb(member.as_str())
                } else {
                    sb("")
                });
            if leave_v >= 3 {
                leave.members = vec![MemberIdentity::default().with_member_id(member.clone())];
            }
            let l = leave_group(&b, leave, leave_v);
            encodes(&l, leave_v);
            assert_eq!(l.error_code, 0);
        }
        for v in range(ApiKey::OffsetFetch) {
            let mut r = OffsetFetchRequest::default()
                .with_group_id(GroupId(sb("g3")))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(sb("t")))
                    .with_partition_indexes(vec![0, 1])]));
            if v >= 8 {
                r = OffsetFetchRequest::default().with_groups(vec![
                    OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(sb("g3")))
                        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                            .with_name(TopicName(sb("t")))
                            .with_partition_indexes(vec![0, 1])])),
                ]);
            }
            let f = offset_fetch(&b, r, v);
            encodes(&f, v);
            let offsets: Vec<i64> = if v >= 8 {
                f.groups[0].topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.committed_offset)
                    .collect()
            } else {
                f.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.committed_offset)
                    .collect()
            };
            assert_eq!(offsets, vec![7, -1], "v{v}");
        }
        for v in range(ApiKey::ListGroups) {
            let l = list_groups(&b, ListGroupsRequest::default(), v);
            encodes(&l, v);
            assert!(l.groups.len() >= 9);
        }
        for v in range(ApiKey::DescribeGroups) {
            let r = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(sb("g3")), GroupId(sb("missing"))]);
            let d = describe_groups(&b, r, v);
            encodes(&d, v);
            assert_eq!(d.groups[0].group_state.as_str(), "Empty");
        }
        let del = delete_groups(
            &b,
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(sb("g3")), GroupId(sb("missing"))]),
        );
        for v in range(ApiKey::DeleteGroups) {
            encodes(&del, v);
        }
        assert_eq!(del.results[0].error_code, 0);
        assert_eq!(
            del.results[1].error_code,
            ResponseError::GroupIdNotFound.code()
        );
        let od = offset_delete(
            &b,
            OffsetDeleteRequest::default().with_group_id(GroupId(sb("g4"))),
        );
        encodes(&od, 0);
        timers.abort();
    }
}
