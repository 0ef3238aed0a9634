//! `sluice produce TOPIC`: one record per line of standard input.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::AsyncBufReadExt;

use super::murmur2::partition_for_key;
use super::topic::one_topic;
use super::{check, connect, Common};

/// Records per batch sent (bounds memory and request size).
const BATCH_RECORDS_MAX: usize = 1000;

/// Arguments of `sluice produce`.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long)]
    key_separator: Option<String>,
    /// Write every record to this partition instead of choosing by key.
    #[arg(long)]
    partition: Option<i32>,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
}

fn compression(name: &str) -> anyhow::Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => anyhow::bail!("unknown compression `{other}` (none, gzip, snappy, lz4, zstd)"),
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs `sluice produce`.
pub(crate) async fn run(args: ProduceArgs, common: &Common) -> anyhow::Result<()> {
    let codec = compression(&args.compression)?;
    let mut client = connect(common).await?;
    let topic = one_topic(&mut client, &args.topic).await?;
    let partitions = topic.partitions.len() as i32;
    if partitions == 0 {
        anyhow::bail!("topic {} has no partitions", args.topic);
    }
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            anyhow::bail!("partition {p} does not exist (topic has {partitions})");
        }
    }
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut round_robin = 0i32;
    let mut total = 0u64;
    while let Some(line) = lines.next_line().await? {
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k.as_bytes(), partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions;
                round_robin
            }
        };
        let records = pending.entry(partition).or_default();
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: records.len() as i64,
            sequence: -1,
            timestamp: now_ms(),
            key: key.map(Bytes::from),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        });
        total += 1;
        if records.len() >= BATCH_RECORDS_MAX {
            let batch = std::mem::take(records);
            send(&mut client, &args.topic, partition, &batch, codec).await?;
        }
    }
    for (partition, batch) in pending {
        if !batch.is_empty() {
            send(&mut client, &args.topic, partition, &batch, codec).await?;
        }
    }
    eprintln!("Produced {total} record(s) to {}.", args.topic);
    Ok(())
}

async fn send(
    client: &mut sluice_client::Client,
    topic: &str,
    partition: i32,
    records: &[Record],
    compression: Compression,
) -> anyhow::Result<()> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot encode records: {e}"))?;
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(buf.freeze()))])]);
    let response = client.send(&request, 12).await?;
    for t in &response.responses {
        for p in &t.partition_responses {
            check(
                p.error_code,
                p.error_message.as_ref(),
                &format!("cannot produce to {topic}-{partition}"),
            )?;
        }
    }
    Ok(())
}
