//! `sluice cluster status`: the cluster id, the brokers (DescribeCluster) and the metadata
//! quorum's leader, epoch and voters (DescribeQuorum), what `kafka-cluster cluster-id` and
//! `kafka-metadata-quorum describe --status` print between them.

use clap::Subcommand;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{DescribeClusterRequest, DescribeQuorumRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{check, connect, Common};

/// Cluster subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Print the cluster id, the brokers and the metadata quorum.
    Status,
}

/// Runs a cluster subcommand.
pub(crate) async fn run(command: ClusterCommand, common: &Common) -> anyhow::Result<()> {
    let mut client = connect(common).await?;
    match command {
        ClusterCommand::Status => {
            let cluster = client
                .send(
                    &DescribeClusterRequest::default().with_include_fenced_brokers(true),
                    2,
                )
                .await?;
            check(
                cluster.error_code,
                cluster.error_message.as_ref(),
                "cannot describe the cluster",
            )?;
            println!("ClusterId: {}", cluster.cluster_id.as_str());
            let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
            let quorum = client.send(&request, 2).await?;
            check(
                quorum.error_code,
                quorum.error_message.as_ref(),
                "cannot describe the metadata quorum",
            )?;
            let Some(p) = quorum.topics.first().and_then(|t| t.partitions.first()) else {
                anyhow::bail!("the metadata quorum answered without its partition");
            };
            check(
                p.error_code,
                p.error_message.as_ref(),
                "cannot describe the metadata quorum",
            )?;
            println!("LeaderId: {}", p.leader_id.0);
            println!("LeaderEpoch: {}", p.leader_epoch);
            println!("HighWatermark: {}", p.high_watermark);
            println!("Voters:");
            for v in &p.current_voters {
                let lag = (p.high_watermark - v.log_end_offset).max(0);
                println!(
                    "  {}\tLogEndOffset: {}\tLag: {}",
                    v.replica_id.0, v.log_end_offset, lag
                );
            }
            println!("Brokers:");
            let mut brokers = cluster.brokers;
            brokers.sort_by_key(|b| b.broker_id.0);
            for b in brokers {
                println!(
                    "  {}\t{}:{}\tRack: {}\t{}",
                    b.broker_id.0,
                    b.host.as_str(),
                    b.port,
                    b.rack.as_ref().map_or("-", |r| r.as_str()),
                    if b.is_fenced { "fenced" } else { "active" }
                );
            }
        }
    }
    Ok(())
}
