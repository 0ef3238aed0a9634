//! DescribeQuorum: the metadata quorum's leader, epoch, high watermark and voters, which
//! `kafka-metadata-quorum describe --status` and `--replication` print.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use uuid::Uuid;

use super::super::sb;
use crate::broker::Broker;

/// The metadata log's topic name, Kafka's.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// Answers DescribeQuorum. Brokers that are not voters are the quorum's observers.
pub(crate) fn describe_quorum(
    broker: &Arc<Broker>,
    _request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let status = broker.quorum().status();
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
