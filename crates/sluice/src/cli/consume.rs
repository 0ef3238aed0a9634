//! `sluice consume TOPIC`: prints records, one per line, without a consumer group.

use std::time::{Duration, Instant};

use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::topic::one_topic;
use super::{check, connect, Common};

/// Arguments of `sluice consume`.
#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Start at the earliest offset instead of the end.
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long)]
    max: Option<u64>,
    /// Stop after this long without a new record (milliseconds).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print `key<TAB>value` instead of the value alone.
    #[arg(long)]
    print_key: bool,
}

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Runs `sluice consume`.
pub(crate) async fn run(args: ConsumeArgs, common: &Common) -> anyhow::Result<()> {
    let mut client = connect(common).await?;
    let topic = one_topic(&mut client, &args.topic).await?;
    let mut partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort();
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            anyhow::bail!("partition {p} does not exist in {}", args.topic);
        }
        partitions = vec![p];
    }
    let start = if args.from_beginning { -2 } else { -1 };
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(&args.topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(start)
                    })
                    .collect(),
            )]);
    let response = client.send(&request, 7).await?;
    let mut positions: Vec<(i32, i64)> = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            check(
                p.error_code,
                None,
                &format!("cannot find offsets of partition {}", p.partition_index),
            )?;
            positions.push((p.partition_index, p.offset));
        }
    }
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    loop {
        if args.max.is_some_and(|m| printed >= m) {
            return Ok(());
        }
        if args
            .timeout_ms
            .is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t))
        {
            return Ok(());
        }
        let fetch = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 * 1024 * 1024)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&args.topic))
                .with_partitions(
                    positions
                        .iter()
                        .map(|(p, o)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*o)
                                .with_partition_max_bytes(1024 * 1024)
                        })
                        .collect(),
                )]);
        // v12 addresses topics by name.
        let response = client.send(&fetch, 12).await?;
        for t in response.responses {
            for p in t.partitions {
                check(
                    p.error_code,
                    None,
                    &format!("cannot fetch partition {}", p.partition_index),
                )?;
                let Some(mut records) = p.records else {
                    continue;
                };
                let Some(pos) = positions.iter_mut().find(|(i, _)| *i == p.partition_index) else {
                    continue;
                };
                while records.len() >= 61 {
                    let set = match RecordBatchDecoder::decode(&mut records) {
                        Ok(set) => set,
                        // A partial batch at the end of the response.
                        Err(_) => break,
                    };
                    for r in set.records {
                        if r.offset < pos.1 {
                            continue;
                        }
                        pos.1 = r.offset + 1;
                        if r.control {
                            continue;
                        }
                        let value = r
                            .value
                            .as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        if args.print_key {
                            let key = r
                                .key
                                .as_deref()
                                .map(String::from_utf8_lossy)
                                .unwrap_or_default();
                            println!("{key}\t{value}");
                        } else {
                            println!("{value}");
                        }
                        printed += 1;
                        last_record = Instant::now();
                        if args.max.is_some_and(|m| printed >= m) {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}
