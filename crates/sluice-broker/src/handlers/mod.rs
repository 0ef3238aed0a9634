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
            // Unreachable while `sluice_proto::api::SUPPORTED` and this match agree; a unit test
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
