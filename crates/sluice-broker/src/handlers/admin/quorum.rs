//! DescribeQuorum: the metadata quorum's leader, epoch, high watermark and voters, which
//! `kafka-metadata-quorum describe --status` and `--replication` print.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use uuid::Uuid;

use super::super::{sb, RequestContext};
use crate::broker::Broker;

/// The metadata log's topic name, Kafka's.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// The `client.id` of forwarded requests: a node never forwards one again, so two nodes that
/// each think the other leads cannot pass a request back and forth.
const FORWARDED_CLIENT_ID: &str = "sluice-controller-forward";

/// Longest wait for the active controller's answer when a request is forwarded to it.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers DescribeQuorum. Only the active controller knows every voter's progress, so a node
/// that is not it forwards the request to it (through the leader's client listener, as Kafka's
/// brokers forward to the controller) and relays the answer; it answers itself only when there
/// is no leader to ask or the leader cannot be reached.
pub(crate) async fn describe_quorum(
    broker: &Arc<Broker>,
    context: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let status = broker.quorum().status();
    let forwarded = context.client_id == FORWARDED_CLIENT_ID;
    if !forwarded && status.leader_id >= 0 && status.leader_id != broker.config.node_id {
        match forward(broker, context, status.leader_id, &request).await {
            Ok(response) => return response,
            Err(e) => {
                tracing::debug!(error = %e, "DescribeQuorum not forwarded; answering locally")
            }
        }
    }
    local(broker, status)
}

async fn forward(
    broker: &Broker,
    context: &RequestContext<'_>,
    leader: i32,
    request: &DescribeQuorumRequest,
) -> Result<DescribeQuorumResponse, String> {
    let image = broker.image();
    let endpoint = image
        .brokers
        .get(&leader)
        .and_then(|b| super::super::metadata::endpoint(b, context.listener))
        .ok_or_else(|| format!("no endpoint for controller {leader}"))?;
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    let call = async {
        let mut client = sluice_client::Client::connect(&addr)
            .await
            .map_err(|e| e.to_string())?;
        client.set_client_id(FORWARDED_CLIENT_ID);
        client
            .call(request, context.api_version)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(FORWARD_TIMEOUT, call)
        .await
        .map_err(|_| format!("controller {leader} at {addr} did not answer"))?
}

/// This node's own view of the quorum.
fn local(broker: &Broker, status: sluice_metadata::quorum::QuorumStatus) -> DescribeQuorumResponse {
    let image = broker.image();
    let voters: Vec<ReplicaState> = status
        .voters
        .iter()
        .map(|v| {
            ReplicaState::default()
                .with_replica_id(BrokerId(v.id))
                .with_replica_directory_id(Uuid::nil())
                .with_log_end_offset(v.log_end_offset)
                .with_last_fetch_timestamp(v.last_fetch_ms)
                .with_last_caught_up_timestamp(v.last_caught_up_ms)
        })
        .collect();
    let observers = image
        .brokers
        .keys()
        .filter(|id| !status.voters.iter().any(|v| v.id == **id))
        .map(|id| {
            ReplicaState::default()
                .with_replica_id(BrokerId(*id))
                .with_replica_directory_id(Uuid::nil())
                .with_log_end_offset(-1)
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(status.leader_id))
        .with_leader_epoch(status.leader_epoch)
        .with_high_watermark(status.high_watermark)
        .with_current_voters(voters)
        .with_observers(observers);
    let nodes = voter_nodes(broker, &status.voters);
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(sb(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

/// The voters' controller endpoints (v2): from `controller.quorum.voters`, or, for a node that
/// is its own quorum without a controller listener, its client listeners.
fn voter_nodes(broker: &Broker, voters: &[sluice_metadata::quorum::VoterState]) -> Vec<Node> {
    let config = &broker.config.node;
    voters
        .iter()
        .map(|v| {
            let listeners = match config.voters.get(&v.id) {
                Some(voter) => vec![Listener::default()
                    .with_name(sb(config
                        .controller_names
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "CONTROLLER".into())))
                    .with_host(sb(voter.host.clone()))
                    .with_port(voter.port)],
                None => config
                    .client()
                    .map(|l| {
                        Listener::default()
                            .with_name(sb(l.name.clone()))
                            .with_host(sb(l.advertised_host.clone()))
                            .with_port(l.advertised_port)
                    })
                    .collect(),
            };
            Node::default()
                .with_node_id(BrokerId(v.id))
                .with_listeners(listeners)
        })
        .collect()
}
