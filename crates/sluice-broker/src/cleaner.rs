//! The log cleaner: compaction of topics whose `cleanup.policy` includes `compact` (Kafka's
//! `LogCleaner`), which keeps at least the newest record of every key.
//!
//! Every `log.cleaner.backoff.ms` each compacted partition whose dirty part (closed segments
//! written since its last cleaning) is at least `min.cleanable.dirty.ratio` of its cleanable
//! part is cleaned. The cleanable part is the closed segments wholly below both the high
//! watermark and the last stable offset (an open transaction's records are never touched). One
//! pass maps every key in it to its newest offset, then rewrites each segment that loses
//! anything (`sluice_log::Log::rewrite_segment`, crash-safe): a record goes if a newer record of
//! its key exists in the cleanable part, or if it is a tombstone (null value) whose batch is
//! older than `delete.retention.ms`. Offsets never change; batches that keep all their records
//! are copied byte for byte, others are re-encoded with their codec and producer fields.
//! Transactional batches and control markers are kept as they are, records without a key too,
//! and a segment never ends up empty (its last batch stays). Segments larger than
//! [`SEGMENT_BYTES_MAX`] are left for now (they would be read into memory whole), as are
//! partitions with more than [`KEYS_MAX`] distinct keys in their cleanable part.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use sluice_proto::batch::{BatchHeader, BatchIter, CompressionCodec};

use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::Partition;

/// Largest segment the cleaner reads (it holds one segment in memory at a time).
pub const SEGMENT_BYTES_MAX: u64 = 128 << 20;
/// Most distinct keys one cleaning maps (Kafka bounds this with `log.cleaner.dedupe.buffer.size`).
pub const KEYS_MAX: usize = 4_000_000;

/// What one cleaning did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Segments rewritten.
    pub segments: usize,
    /// Records removed.
    pub records_removed: usize,
    /// Bytes before and after, over the rewritten segments.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

fn codec(codec: CompressionCodec) -> Compression {
    match codec {
        CompressionCodec::None => Compression::None,
        CompressionCodec::Gzip => Compression::Gzip,
        CompressionCodec::Snappy => Compression::Snappy,
        CompressionCodec::Lz4 => Compression::Lz4,
        CompressionCodec::Zstd => Compression::Zstd,
    }
}

fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        kafka_protocol::error::ResponseError::CorruptMessage,
        e.to_string(),
    )
}

/// The batches of one closed segment, `base..end`.
fn segment_bytes(partition: &Partition, base: i64, end: i64) -> Result<Bytes, ApiError> {
    let (_, bytes) = partition
        .log()
        .read_bytes(base, SEGMENT_BYTES_MAX as usize, end, true)?;
    Ok(bytes)
}

/// Whether the records of this batch are left alone (transactions and their markers).
fn untouchable(header: &BatchHeader) -> bool {
    header.is_control() || header.is_transactional()
}

/// Decodes one batch's records.
fn records_of(batch: &[u8]) -> Result<Vec<Record>, ApiError> {
    let mut buf = Bytes::copy_from_slice(batch);
    Ok(RecordBatchDecoder::decode(&mut buf)
        .map_err(corrupt)?
        .records)
}

/// Adds the keys of one segment to the map of newest offsets.
fn map_keys(bytes: &Bytes, keys: &mut HashMap<Bytes, i64>) -> Result<(), ApiError> {
    for item in BatchIter::new(bytes) {
        let (header, range) = item.map_err(corrupt)?;
        if untouchable(&header) {
            continue;
        }
        for r in records_of(&bytes[range])? {
            if let Some(key) = r.key {
                let newest = keys.entry(key).or_insert(r.offset);
                *newest = (*newest).max(r.offset);
            }
        }
    }
    Ok(())
}

/// The segment's new contents, or `None` if nothing goes; and the records removed.
fn filter_segment(
    bytes: &Bytes,
    keys: &HashMap<Bytes, i64>,
    tombstone_horizon_ms: i64,
) -> Result<Option<(BytesMut, usize)>, ApiError> {
    let mut out = BytesMut::with_capacity(bytes.len());
    let mut removed = 0;
    let mut last_batch = None;
    let mut last_removed = 0;
    for item in BatchIter::new(bytes) {
        let (header, range) = item.map_err(corrupt)?;
        last_batch = Some(range.clone());
        last_removed = 0;
        if untouchable(&header) {
            out.extend_from_slice(&bytes[range]);
            continue;
        }
        let records = records_of(&bytes[range.clone()])?;
        let total = records.len();
        let kept: Vec<Record> = records
            .into_iter()
            .filter(|r| {
                let Some(key) = &r.key else { return true };
                let superseded = keys.get(key).is_some_and(|newest| *newest > r.offset);
                let expired_tombstone =
                    r.value.is_none() && header.max_timestamp < tombstone_horizon_ms;
                !superseded && !expired_tombstone
            })
            .collect();
        removed += total - kept.len();
        last_removed = total - kept.len();
        if kept.len() == total {
            out.extend_from_slice(&bytes[range]);
        } else if !kept.is_empty() {
            let options = RecordEncodeOptions {
                version: 2,
                compression: codec(header.compression().map_err(corrupt)?),
            };
            RecordBatchEncoder::encode(&mut out, kept.iter(), &options).map_err(corrupt)?;
        }
    }
    if out.is_empty() {
        // A segment never ends up empty: keep its last batch whole.
        let Some(range) = last_batch else {
            return Ok(None);
        };
        removed -= last_removed;
        out.extend_from_slice(&bytes[range]);
    }
    if removed == 0 {
        return Ok(None);
    }
    Ok(Some((out, removed)))
}

/// Cleans one partition's closed, stable segments (all of them: `first_dirty` only decides
/// whether it is worth it, by `min_dirty_ratio`). Returns what it did and the new first dirty
/// offset, or `None` when there was nothing (worth) cleaning.
pub fn clean(
    partition: &Partition,
    first_dirty: i64,
    min_dirty_ratio: f64,
    delete_retention_ms: i64,
    now_ms: i64,
) -> Result<Option<(Cleaned, i64)>, ApiError> {
    let log = partition.log();
    let stable = log.high_watermark().min(partition.last_stable_offset());
    let sizes: HashMap<i64, u64> = log
        .segment_infos()?
        .into_iter()
        .map(|s| (s.base_offset, s.size_bytes))
        .collect();
    let cleanable: Vec<(i64, i64)> = log
        .closed_segments()
        .into_iter()
        .take_while(|(base, end)| {
            *end <= stable && sizes.get(base).is_some_and(|s| *s <= SEGMENT_BYTES_MAX)
        })
        .collect();
    let Some(&(_, clean_end)) = cleanable.last() else {
        return Ok(None);
    };
    let total: u64 = cleanable.iter().map(|(b, _)| sizes[b]).sum();
    let dirty: u64 = cleanable
        .iter()
        .filter(|(_, end)| *end > first_dirty)
        .map(|(b, _)| sizes[b])
        .sum();
    if total == 0 || (dirty as f64) < min_dirty_ratio * total as f64 || dirty == 0 {
        return Ok(None);
    }
    let mut keys = HashMap::new();
    for (base, end) in &cleanable {
        map_keys(&segment_bytes(partition, *base, *end)?, &mut keys)?;
        if keys.len() > KEYS_MAX {
            tracing::warn!(topic = %partition.topic, partition = partition.index, "too many keys to clean in one pass");
            return Ok(None);
        }
    }
    let horizon = now_ms.saturating_sub(delete_retention_ms);
    let mut done = Cleaned::default();
    for (base, end) in &cleanable {
        let bytes = segment_bytes(partition, *base, *end)?;
        if let Some((out, removed)) = filter_segment(&bytes, &keys, horizon)? {
            if log.rewrite_segment(*base, &out)? {
                done.segments += 1;
                done.records_removed += removed;
                done.bytes_before += bytes.len() as u64;
                done.bytes_after += out.len() as u64;
            }
        }
    }
    Ok(Some((done, clean_end)))
}

/// The cleaner's memory of each partition's first dirty offset (where its last cleaning ended).
#[derive(Debug, Default)]
pub struct CleanerState {
    first_dirty: Mutex<BTreeMap<(String, i32), i64>>,
}

impl Broker {
    /// One cleaning pass over every compacted partition. Blocking.
    pub fn clean_logs(&self) {
        let now = sluice_log::now_ms();
        for topic in self.topics() {
            if !topic.config.is_compacted() {
                continue;
            }
            let ratio = topic
                .config
                .string("min.cleanable.dirty.ratio")
                .parse::<f64>()
                .unwrap_or(0.5);
            let delete_retention_ms = topic.config.long("delete.retention.ms", 86_400_000);
            for partition in topic.hosted() {
                let key = (topic.name.clone(), partition.index);
                let first_dirty = {
                    let map = self
                        .cleaner
                        .first_dirty
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    map.get(&key).copied().unwrap_or(i64::MIN)
                };
                match clean(partition, first_dirty, ratio, delete_retention_ms, now) {
                    Ok(Some((done, clean_end))) => {
                        if done.segments > 0 {
                            tracing::info!(
                                topic = %topic.name,
                                partition = partition.index,
                                segments = done.segments,
                                records_removed = done.records_removed,
                                bytes_before = done.bytes_before,
                                bytes_after = done.bytes_after,
                                "cleaned log"
                            );
                        }
                        self.cleaner
                            .first_dirty
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, clean_end);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "cleaning failed")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::TimestampType;

    fn record(offset: i64, key: &str, value: Option<&str>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_000 + offset,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        }
    }

    fn encode(records: &[Record], compression: Compression) -> BytesMut {
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        out
    }

    fn decode_all(bytes: &[u8]) -> Vec<(i64, String, Option<String>)> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
            .map(|r| {
                let s = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
                (r.offset, s(r.key).unwrap(), s(r.value))
            })
            .collect()
    }

    #[test]
    fn newest_record_per_key_survives_with_its_offset() {
        let mut segment = encode(
            &[record(0, "a", Some("1")), record(1, "b", Some("1"))],
            Compression::None,
        );
        segment.extend_from_slice(&encode(
            &[
                record(2, "a", Some("2")),
                record(3, "c", Some("1")),
                record(4, "b", None),
            ],
            Compression::Zstd,
        ));
        segment.extend_from_slice(&encode(&[record(5, "c", Some("2"))], Compression::None));
        let bytes = segment.freeze();
        let mut keys = HashMap::new();
        map_keys(&bytes, &mut keys).unwrap();
        assert_eq!(keys[&Bytes::from_static(b"a")], 2);

        // Tombstones not yet past delete.retention.ms stay.
        let (out, removed) = filter_segment(&bytes, &keys, 0).unwrap().unwrap();
        assert_eq!(removed, 3);
        assert_eq!(
            decode_all(&out),
            vec![
                (2, "a".into(), Some("2".into())),
                (4, "b".into(), None),
                (5, "c".into(), Some("2".into())),
            ]
        );
        let codecs: Vec<_> = BatchIter::new(&out)
            .map(|i| i.unwrap().0.compression().unwrap())
            .collect();
        assert_eq!(codecs, vec![CompressionCodec::Zstd, CompressionCodec::None]);

        // Past the horizon the tombstone goes too; the first batch (all records superseded)
        // was dropped whole.
        let (out, removed) = filter_segment(&bytes, &keys, i64::MAX).unwrap().unwrap();
        assert_eq!(removed, 4);
        assert_eq!(
            decode_all(&out),
            vec![
                (2, "a".into(), Some("2".into())),
                (5, "c".into(), Some("2".into()))
            ]
        );
        // Nothing superseded: nothing to rewrite.
        let single = encode(&[record(9, "z", Some("1"))], Compression::None).freeze();
        let mut keys = HashMap::new();
        map_keys(&single, &mut keys).unwrap();
        assert_eq!(filter_segment(&single, &keys, 0).unwrap(), None);
    }

    #[test]
    fn a_segment_keeps_its_last_batch_when_everything_is_superseded() {
        let first = encode(&[record(0, "a", Some("1"))], Compression::None);
        let last = encode(
            &[record(1, "a", Some("2")), record(2, "a", Some("3"))],
            Compression::None,
        );
        let mut keys = HashMap::new();
        keys.insert(Bytes::from_static(b"a"), 10);
        let single = first.clone().freeze();
        assert_eq!(filter_segment(&single, &keys, 0).unwrap(), None);
        let mut both = first;
        both.extend_from_slice(&last);
        let (out, removed) = filter_segment(&both.freeze(), &keys, 0).unwrap().unwrap();
        assert_eq!((&out[..], removed), (&last[..], 1));
    }

    #[test]
    fn transactional_batches_and_markers_are_kept() {
        let mut txn = record(0, "a", Some("1"));
        txn.transactional = true;
        let bytes = encode(&[txn], Compression::None).freeze();
        let mut keys = HashMap::new();
        keys.insert(Bytes::from_static(b"a"), 10);
        assert_eq!(filter_segment(&bytes, &keys, i64::MAX).unwrap(), None);
    }
}
