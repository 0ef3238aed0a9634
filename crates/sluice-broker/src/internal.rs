//! What the coordinators share about their internal topics (`__consumer_offsets`,
//! `__transaction_state`): creating one on first use, encoding key/value records into a batch,
//! and reading a partition back from its start when the broker opens.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::broker::{Broker, Topic};
use crate::error::ApiError;
use crate::partition::Partition;

/// Bytes read at a time when loading an internal topic.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// The internal topic `name`, created compacted with `partitions` partitions and
/// `segment_bytes` segments if it does not exist yet (as Kafka creates its internal topics on
/// first use). Any failure is COORDINATOR_NOT_AVAILABLE, which clients retry.
pub fn ensure_topic(
    broker: &Broker,
    name: &str,
    partitions: i32,
    segment_bytes: &str,
) -> Result<Arc<Topic>, ApiError> {
    if let Some(t) = broker.topic(name) {
        return Ok(t);
    }
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("segment.bytes".to_string(), segment_bytes.to_string()),
    ]);
    // Kafka clamps the internal topics' replication factor to the live brokers only while the
    // cluster has one; with more, `offsets.topic.replication.factor` (and its transaction
    // twin) apply as set, which the replication work brings.
    let placement = sluice_metadata::controller::Placement::auto(partitions, 1);
    match broker.create_topic(name, placement, configs) {
        Ok(t) => Ok(t),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
            .topic(name)
            .ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable, "")),
        Err(e) => Err(ApiError::new(
            ResponseError::CoordinatorNotAvailable,
            format!("cannot create {name}: {e}"),
        )),
    }
}

/// The producer of a transactional batch: (producer id, epoch).
pub type TxnProducer = (i64, i16);

/// Encodes `records` (key, value or tombstone) as one uncompressed batch stamped `now`;
/// transactional when `producer` is given (a transactional offset commit).
pub fn encode_batch(
    records: &[(Bytes, Option<Bytes>)],
    now: i64,
    producer: Option<TxnProducer>,
) -> Result<BytesMut, ApiError> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let batch: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &batch,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
    Ok(buf)
}

/// Calls `visit` with every record of `partition` from its log start to its high watermark, in
/// offset order, control records included. Returns how many records were visited.
pub fn for_each_record(
    partition: &Partition,
    mut visit: impl FnMut(&Record),
) -> Result<usize, ApiError> {
    let mut next = partition.log_start_offset();
    let end = partition.high_watermark();
    let mut visited = 0;
    while next < end {
        let info = partition.read(next, LOAD_CHUNK_BYTES, false, true)?;
        if info.slices.is_empty() {
            break;
        }
        let mut bytes = partition.copy_slices(&info.slices)?;
        let sets = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
        let before = next;
        for record in sets.iter().flat_map(|s| s.records.iter()) {
            next = next.max(record.offset + 1);
            visited += 1;
            visit(record);
        }
        if next == before {
            break;
        }
    }
    Ok(visited)
}

/// The type of a control record (transaction marker): `Some(true)` for a commit, `Some(false)`
/// for an abort, `None` for anything else. The key is `version: int16, type: int16`.
pub fn marker_commits(record: &Record) -> Option<bool> {
    if !record.control {
        return None;
    }
    let key = record.key.as_ref()?;
    match key.get(2..4)? {
        [0, 0] => Some(false),
        [0, 1] => Some(true),
        _ => None,
    }
}
