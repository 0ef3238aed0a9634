//! Request handlers, one module per API family. Each takes a decoded request and returns a
//! response value; none touches the connection.

use std::sync::Arc;

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

mod admin;
pub(crate) mod api_versions;
mod consumer_groups;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod txn;

/// What a request produced.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A response to encode and send (boxed: response values are large and vary in size).
    Response(Box<ResponseKind>),
    /// A Fetch response whose records are sent from the segment files.
    Fetch(Box<fetch::FetchReply>),
    /// No response at all (Produce with `acks=0`).
    None,
}

/// What a handler knows of the request besides its body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestContext<'a> {
    /// The listener the connection came in on: responses name the endpoints of that listener.
    pub(crate) listener: &'a str,
    /// The request's API version.
    pub(crate) api_version: i16,
    /// The client's `client.id`.
    pub(crate) client_id: &'a str,
    /// The client's address.
    pub(crate) peer: std::net::SocketAddr,
}

/// Calls the handler for `request`. The caller has already checked that the API and version are
/// served, so every arm here is implemented.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    context: &RequestContext<'_>,
    request: RequestKind,
) -> Reply {
    let version = context.api_version;
    let response = match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(api_versions::handle(&broker.image(), &r))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, context, r)),
        RequestKind::Produce(r) => match produce::handle(broker, r, version).await {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Reply::None,
        },
        RequestKind::Fetch(r) => {
            return Reply::Fetch(Box::new(fetch::handle(broker, r, version).await))
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::handle(broker, r, version))
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(broker, r, version))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(broker, r, version))
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(broker, r, version)),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(broker, r, version))
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe(broker, r))
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list(broker, r)),
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(txn::describe_producers(broker, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::topics::create(broker, r, version))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::topics::delete(broker, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(admin::records::delete_records(broker, r))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::topics::create_partitions(broker, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(admin::configs::describe(broker, r, version))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(admin::alter_configs::alter(broker, r))
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(admin::alter_configs::incremental(broker, r))
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::cluster::describe_cluster(broker, context, r))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(admin::quorum::describe_quorum(broker, context, r).await)
        }
        RequestKind::DescribeTopicPartitions(r) => ResponseKind::DescribeTopicPartitions(
            admin::cluster::describe_topic_partitions(broker, r),
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, context, r))
        }
        RequestKind::JoinGroup(r) => {
            let host = format!("/{}", context.peer.ip());
            ResponseKind::JoinGroup(
                groups::join_group(broker, r, version, context.client_id, &host).await,
            )
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, r, version).await)
        }
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, r, version))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, r, version))
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, r, version))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, r))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list_groups(broker, r, version))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, r, version))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, r))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let host = format!("/{}", context.peer.ip());
            ResponseKind::ConsumerGroupHeartbeat(consumer_groups::heartbeat(
                broker,
                r,
                version,
                context.client_id,
                &host,
            ))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_groups::describe(broker, r, version))
        }
        other => {
            // Unreachable while `sluice_proto::api::SUPPORTED` and this match agree; the unit test
            // checks that they do.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a served API");
            return Reply::None;
        }
    };
    Reply::Response(Box::new(response))
}

/// A `StrBytes` from an owned string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AlterConfigsRequest, ApiKey,
        ApiVersionsRequest, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest,
        CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
        DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
        DescribeProducersRequest, DescribeQuorumRequest, DescribeTopicPartitionsRequest,
        DescribeTransactionsRequest, EndTxnRequest, FetchRequest, FindCoordinatorRequest,
        HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
        LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, ListTransactionsRequest,
        MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
        OffsetForLeaderEpochRequest, ProduceRequest, SyncGroupRequest, TxnOffsetCommitRequest,
    };

    use super::*;

    /// One request of every served API, with every field at its default.
    fn one_of_each() -> Vec<RequestKind> {
        vec![
            RequestKind::from(ProduceRequest::default().with_acks(1)),
            RequestKind::from(FetchRequest::default()),
            RequestKind::from(ListOffsetsRequest::default()),
            RequestKind::from(MetadataRequest::default()),
            RequestKind::from(OffsetCommitRequest::default()),
            RequestKind::from(OffsetFetchRequest::default()),
            RequestKind::from(FindCoordinatorRequest::default()),
            RequestKind::from(JoinGroupRequest::default()),
            RequestKind::from(HeartbeatRequest::default()),
            RequestKind::from(LeaveGroupRequest::default()),
            RequestKind::from(SyncGroupRequest::default()),
            RequestKind::from(DescribeGroupsRequest::default()),
            RequestKind::from(ListGroupsRequest::default()),
            RequestKind::from(ApiVersionsRequest::default()),
            RequestKind::from(CreateTopicsRequest::default()),
            RequestKind::from(DeleteTopicsRequest::default()),
            RequestKind::from(DeleteRecordsRequest::default()),
            RequestKind::from(InitProducerIdRequest::default()),
            RequestKind::from(OffsetForLeaderEpochRequest::default()),
            RequestKind::from(AddPartitionsToTxnRequest::default()),
            RequestKind::from(AddOffsetsToTxnRequest::default()),
            RequestKind::from(EndTxnRequest::default()),
            RequestKind::from(TxnOffsetCommitRequest::default()),
            RequestKind::from(DescribeConfigsRequest::default()),
            RequestKind::from(AlterConfigsRequest::default()),
            RequestKind::from(IncrementalAlterConfigsRequest::default()),
            RequestKind::from(CreatePartitionsRequest::default()),
            RequestKind::from(DeleteGroupsRequest::default()),
            RequestKind::from(OffsetDeleteRequest::default()),
            RequestKind::from(DescribeClusterRequest::default()),
            RequestKind::from(DescribeQuorumRequest::default()),
            RequestKind::from(DescribeProducersRequest::default()),
            RequestKind::from(DescribeTransactionsRequest::default()),
            RequestKind::from(ListTransactionsRequest::default()),
            RequestKind::from(ConsumerGroupHeartbeatRequest::default()),
            RequestKind::from(ConsumerGroupDescribeRequest::default()),
            RequestKind::from(DescribeTopicPartitionsRequest::default()),
        ]
    }

    fn key_of(r: &RequestKind) -> ApiKey {
        let name = format!("{r:?}");
        let variant = name
            .split(['(', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        sluice_proto::api::SUPPORTED
            .iter()
            .map(|s| s.key)
            .find(|k| format!("{k:?}") == variant)
            .unwrap_or_else(|| panic!("{variant} is not in SUPPORTED"))
    }

    /// The dispatch table and `sluice_proto::api::SUPPORTED` agree: every advertised API has a
    /// handler that answers (never the silent fallback), even a request of all defaults.
    #[test]
    fn every_served_api_has_a_handler_that_answers() {
        let served: BTreeSet<i16> = sluice_proto::api::SUPPORTED
            .iter()
            .map(|s| s.key as i16)
            .collect();
        let requests = one_of_each();
        let listed: BTreeSet<i16> = requests.iter().map(|r| key_of(r) as i16).collect();
        assert_eq!(
            listed, served,
            "one_of_each() must list exactly the served APIs"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::BrokerConfig::load(
            None,
            &[format!("log.dirs={}", dir.path().display())],
        )
        .unwrap();
        let broker = Arc::new(Broker::open_local(config).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        for request in requests {
            let key = key_of(&request);
            let range = sluice_proto::api::supported_range(key).unwrap();
            let context = RequestContext {
                listener: "PLAINTEXT",
                api_version: range.max,
                client_id: "dispatch-test",
                peer: ([127, 0, 0, 1], 1).into(),
            };
            let reply = runtime.block_on(handle(&broker, &context, request));
            assert!(!matches!(reply, Reply::None), "{key:?} got no answer");
        }
    }
}
