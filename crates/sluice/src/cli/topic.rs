//! `sluice topic …`: topic administration.

use clap::Subcommand;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{check, connect, Common};

/// Topic subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (broker default if omitted).
        #[arg(long, short)]
        partitions: Option<i32>,
        /// Replication factor (broker default if omitted).
        #[arg(long, short)]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config cleanup.policy=compact` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics.
    List,
    /// Describe topics (all if none named).
    Describe {
        /// Topic names.
        names: Vec<String>,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Raise a topic's partition count.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
    },
    /// Delete the records of a partition below an offset (what kafka-delete-records does).
    DeleteRecords {
        /// Topic name.
        name: String,
        /// Partition index.
        #[arg(long, short)]
        partition: i32,
        /// Delete records below this offset; `-1` deletes up to the high watermark.
        #[arg(long, allow_negative_numbers = true)]
        before: i64,
    },
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Fetches metadata for `names` (all topics if empty), without creating any.
pub(crate) async fn metadata(
    client: &mut sluice_client::Client,
    names: &[String],
) -> anyhow::Result<MetadataResponse> {
    let topics = if names.is_empty() {
        None
    } else {
        Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        )
    };
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(false);
    Ok(client.send(&request, 12).await?)
}

/// The metadata of one existing topic, with a readable error when it is missing.
pub(crate) async fn one_topic(
    client: &mut sluice_client::Client,
    name: &str,
) -> anyhow::Result<kafka_protocol::messages::metadata_response::MetadataResponseTopic> {
    let meta = metadata(client, &[name.to_string()]).await?;
    let topic = meta
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no metadata for topic {name}"))?;
    check(topic.error_code, None, &format!("topic {name}"))?;
    Ok(topic)
}

/// Runs a topic subcommand.
pub(crate) async fn run(command: TopicCommand, common: &Common) -> anyhow::Result<()> {
    let mut client = connect(common).await?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut creatable = CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(partitions.unwrap_or(-1))
                .with_replication_factor(replication_factor.unwrap_or(-1));
            for c in &configs {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--config expects KEY=VALUE, got `{c}`"))?;
                creatable.configs.push(
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string()))),
                );
            }
            let request = CreateTopicsRequest::default()
                .with_topics(vec![creatable])
                .with_timeout_ms(30_000);
            let response = client.send(&request, 7).await?;
            for t in &response.topics {
                check(
                    t.error_code,
                    t.error_message.as_ref(),
                    &format!("cannot create topic {name}"),
                )?;
                println!(
                    "Created topic {} with {} partition(s).",
                    t.name.as_str(),
                    t.num_partitions
                );
            }
        }
        TopicCommand::List => {
            let response = metadata(&mut client, &[]).await?;
            let mut names: Vec<&str> = response
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.as_str()))
                .collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        TopicCommand::Describe { names } => {
            let response = metadata(&mut client, &names).await?;
            let mut topics = response.topics;
            topics.sort_by(|a, b| {
                a.name
                    .as_ref()
                    .map(|n| n.as_str())
                    .cmp(&b.name.as_ref().map(|n| n.as_str()))
            });
            for t in topics {
                let name = t
                    .name
                    .as_ref()
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default();
                check(t.error_code, None, &format!("cannot describe topic {name}"))?;
                println!(
                    "Topic: {name}\tTopicId: {}\tPartitionCount: {}",
                    t.topic_id,
                    t.partitions.len()
                );
                let mut partitions = t.partitions;
                partitions.sort_by_key(|p| p.partition_index);
                for p in partitions {
                    let list = |v: &[kafka_protocol::messages::BrokerId]| {
                        v.iter()
                            .map(|b| b.0.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    println!(
                        "\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {}\tIsr: {}",
                        p.partition_index,
                        p.leader_id.0,
                        p.leader_epoch,
                        list(&p.replica_nodes),
                        list(&p.isr_nodes)
                    );
                }
            }
        }
        TopicCommand::Delete { name } => {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(vec![topic_name(&name)])
                .with_timeout_ms(30_000);
            let response = client.send(&request, 5).await?;
            for r in &response.responses {
                check(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("cannot delete topic {name}"),
                )?;
            }
            println!("Deleted topic {name}.");
        }
        TopicCommand::AddPartitions { name, total } => {
            let request = CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(topic_name(&name))
                    .with_count(total)])
                .with_timeout_ms(30_000);
            let response = client.send(&request, 3).await?;
            for r in &response.results {
                check(
                    r.error_code,
                    r.error_message.as_ref(),
                    &format!("cannot add partitions to {name}"),
                )?;
            }
            println!("Topic {name} now has {total} partition(s).");
        }
        TopicCommand::DeleteRecords {
            name,
            partition,
            before,
        } => {
            let request = DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(before)])])
                .with_timeout_ms(30_000);
            let response = client.send(&request, 2).await?;
            for t in &response.topics {
                for p in &t.partitions {
                    check(
                        p.error_code,
                        None,
                        &format!("cannot delete records of {name}-{partition}"),
                    )?;
                    println!(
                        "Partition {name}-{partition} now starts at offset {}.",
                        p.low_watermark
                    );
                }
            }
        }
    }
    Ok(())
}
