//! Producer state for idempotence (Kafka's `ProducerStateManager` / `ProducerAppendInfo`):
//! per producer id, the current epoch and the metadata of its last five batches, used to drop
//! retried duplicates and to reject out-of-order sequences and fenced (older) epochs.
//!
//! The state is snapshotted to `<offset, 20 digits>.snapshot` when a segment rolls and on clean
//! shutdown, and rebuilt on open from the newest snapshot plus the batch headers after it.
//! Transactions: each producer's open transaction (its first offset) bounds the last stable
//! offset; a commit or abort marker ends it and yields a [`CompletedTxn`], which the log turns
//! into a `.txnindex` entry when it aborted. Producers expire after `producer.id.expiration.ms`
//! without writes unless a transaction is open ([`ProducerStateManager::remove_expired`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use sluice_proto::batch::{
    increment_sequence, BatchHeader, ControlType, NO_PRODUCER_EPOCH, NO_SEQUENCE,
};

use crate::checkpoint;
use crate::error::{LogError, Result};
use crate::txn_index::CompletedTxn;

/// How many batches per producer are remembered for duplicate detection (Kafka's 5).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Suffix of producer-state snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Version 2 added each producer's last write timestamp (for expiration); version 1 is read.
const SNAPSHOT_VERSION: u16 = 2;

/// Where a batch in producer state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer, through the leader: sequences and epochs are enforced.
    Client,
    /// Replication or recovery: state is taken as written.
    Replication,
    /// A coordinator of this broker (transaction markers, transactional offset commits):
    /// the epoch is checked, sequences are not (these batches carry none).
    Coordinator,
}

/// What is remembered about one batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// State of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Newest last, at most [`NUM_BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    /// First offset of the producer's open transaction, if one is ongoing.
    pub current_txn_first_offset: Option<i64>,
    /// Max timestamp of the producer's last batch or marker (-1 if none): expiration counts
    /// from here, as Kafka's `lastTimestamp` does.
    pub last_timestamp: i64,
}

impl ProducerStateEntry {
    fn new(producer_id: i64) -> ProducerStateEntry {
        ProducerStateEntry {
            producer_id,
            producer_epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::with_capacity(NUM_BATCHES_TO_RETAIN),
            current_txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    /// Sequence of the producer's last record, or `NO_SEQUENCE`.
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Offset of the producer's last record, or -1.
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// The remembered batch with exactly this epoch and sequence range, if any.
    pub fn find_duplicate(&self, header: &BatchHeader) -> Option<BatchMetadata> {
        if header.producer_epoch != self.producer_epoch {
            return None;
        }
        let last_seq = header.last_sequence();
        self.batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
            .copied()
    }

    /// Kafka's epoch and sequence checks for a batch written by a client.
    fn check(&self, header: &BatchHeader, origin: AppendOrigin) -> Result<()> {
        let epoch = header.producer_epoch;
        if origin == AppendOrigin::Replication {
            return Ok(());
        }
        if epoch < self.producer_epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: self.producer_id,
                epoch,
                current_epoch: self.producer_epoch,
            });
        }
        if origin == AppendOrigin::Coordinator {
            return Ok(());
        }
        let first_seq = header.base_sequence;
        let in_order = if epoch != self.producer_epoch {
            // A new epoch starts its sequences at 0, unless the producer is new to this log.
            first_seq == 0 || self.producer_epoch == NO_PRODUCER_EPOCH
        } else {
            // No remembered batches (e.g. all removed by retention): accept any sequence.
            self.batches.is_empty() || in_sequence(self.last_seq(), first_seq)
        };
        if in_order {
            Ok(())
        } else {
            Err(LogError::OutOfOrderSequence {
                producer_id: self.producer_id,
                sequence: first_seq,
                last_sequence: self.last_seq(),
            })
        }
    }

    /// Takes a written batch into the state. For a transaction marker (`control` is a commit
    /// or abort) returns the transaction it ended, with `last_stable_offset` left for the
    /// caller to fill in.
    fn apply(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlType>,
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        self.last_timestamp = self.last_timestamp.max(timestamp);
        if header.producer_epoch != self.producer_epoch {
            self.batches.clear();
            self.producer_epoch = header.producer_epoch;
        }
        if header.base_sequence != NO_SEQUENCE && !header.is_control() {
            if self.batches.len() == NUM_BATCHES_TO_RETAIN {
                self.batches.pop_front();
            }
            self.batches.push_back(BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: header.last_sequence(),
                first_offset,
                last_offset,
                timestamp,
            });
        }
        if header.is_control() {
            let aborted = match control {
                Some(ControlType::Abort) => true,
                Some(ControlType::Commit) => false,
                _ => return None,
            };
            // A marker without data before it (the partition was added to the transaction but
            // nothing was written) ends an empty transaction starting at the marker.
            let first = self.current_txn_first_offset.take().unwrap_or(first_offset);
            return Some(CompletedTxn {
                producer_id: self.producer_id,
                first_offset: first,
                last_offset: first_offset,
                aborted,
                last_stable_offset: first_offset + 1,
            });
        }
        if header.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(first_offset);
        }
        None
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Producer states of one partition log.
#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// The state of one producer.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer's state, by producer id.
    pub fn entries(&self) -> Vec<ProducerStateEntry> {
        let mut out: Vec<ProducerStateEntry> = self.producers.values().cloned().collect();
        out.sort_by_key(|e| e.producer_id);
        out
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// A duplicate of an already written batch, for a client append.
    pub fn find_duplicate(&self, header: &BatchHeader) -> Option<BatchMetadata> {
        self.producers
            .get(&header.producer_id)?
            .find_duplicate(header)
    }

    /// Checks a batch against the producer's state without changing it.
    pub fn check(&self, header: &BatchHeader, origin: AppendOrigin) -> Result<()> {
        match self.producers.get(&header.producer_id) {
            Some(entry) => entry.check(header, origin),
            None => Ok(()),
        }
    }

    /// Records a written batch; `control` is the type of a control batch's record. Batches
    /// without a producer id are ignored. A commit or abort marker returns the transaction it
    /// ended, with the last stable offset right after it: the first offset of the oldest
    /// transaction still open by another producer, or the marker's offset + 1.
    pub fn update(
        &mut self,
        header: &BatchHeader,
        control: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerStateEntry::new(header.producer_id));
        let mut completed = entry.apply(
            header,
            control,
            header.base_offset,
            header.last_offset(),
            header.max_timestamp,
        )?;
        if let Some(other_open) = self
            .producers
            .values()
            .filter(|e| e.producer_id != header.producer_id)
            .filter_map(|e| e.current_txn_first_offset)
            .min()
        {
            completed.last_stable_offset = other_open;
        }
        Some(completed)
    }

    /// Forgets producers that wrote nothing for `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`, measured from the last batch's max timestamp) and have no
    /// open transaction. Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// First offset of the oldest open transaction (the last stable offset bound).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.current_txn_first_offset)
            .min()
    }

    /// Forgets producers whose last write lies below the log start offset.
    pub fn remove_below(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.last_offset() >= log_start_offset || e.current_txn_first_offset.is_some()
        });
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// Encodes the state: version u16, crc32c u32 of the rest, count u32, then per producer
    /// id i64, epoch i16, last timestamp i64, txn first offset i64 (-1 none), batch count u8
    /// and the batches.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(4 + self.producers.len() * 64);
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            body.extend_from_slice(&entry.producer_id.to_be_bytes());
            body.extend_from_slice(&entry.producer_epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            body.extend_from_slice(&entry.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 6);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot; `None` if it is malformed or its CRC does not match.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<ProducerStateManager> {
        let mut reader = Reader { bytes, at: 0 };
        let version = reader.u16()?;
        if version != 1 && version != SNAPSHOT_VERSION {
            return None;
        }
        let crc = reader.u32()?;
        if crc32c::crc32c(bytes.get(6..)?) != crc {
            return None;
        }
        let count = reader.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let producer_id = reader.i64()?;
            let producer_epoch = reader.u16()? as i16;
            let last_timestamp = if version >= 2 {
                Some(reader.i64()?)
            } else {
                None
            };
            let txn = reader.i64()?;
            let batch_count = reader.u8()?;
            let mut entry = ProducerStateEntry::new(producer_id);
            entry.producer_epoch = producer_epoch;
            entry.current_txn_first_offset = (txn >= 0).then_some(txn);
            for _ in 0..batch_count.min(NUM_BATCHES_TO_RETAIN as u8) {
                entry.batches.push_back(BatchMetadata {
                    first_seq: reader.u32()? as i32,
                    last_seq: reader.u32()? as i32,
                    first_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                    timestamp: reader.i64()?,
                });
            }
            entry.last_timestamp =
                last_timestamp.unwrap_or_else(|| entry.batches.back().map_or(-1, |b| b.timestamp));
            producers.insert(producer_id, entry);
        }
        Some(ProducerStateManager { producers })
    }

    /// Writes `<offset>.snapshot` in `dir` atomically; `durable` also fsyncs it.
    pub fn write_snapshot(&self, dir: &Path, offset: i64, durable: bool) -> Result<()> {
        checkpoint::write_atomic_with(
            &snapshot_path(dir, offset),
            &self.encode_snapshot(),
            durable,
        )
    }
}

/// Path of the snapshot taken at `offset`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// `last_sequence` of a batch, exposed for callers building duplicate responses.
pub fn batch_last_sequence(header: &BatchHeader) -> i32 {
    increment_sequence(header.base_sequence, header.last_offset_delta)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let slice = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        slice.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::batch::{encode_batch, BatchSpec, SimpleRecord};

    fn header(pid: i64, epoch: i16, seq: i32, records: usize, base_offset: i64) -> BatchHeader {
        let mut buf = Vec::new();
        let recs = vec![
            SimpleRecord {
                timestamp_delta: 0,
                key: None,
                value: Some(b"v")
            };
            records
        ];
        let spec = BatchSpec {
            base_offset,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            ..BatchSpec::default()
        };
        encode_batch(&mut buf, &spec, &recs);
        BatchHeader::parse(&buf).unwrap()
    }

    fn append(state: &mut ProducerStateManager, h: BatchHeader) -> Result<Option<BatchMetadata>> {
        if let Some(dup) = state.find_duplicate(&h) {
            return Ok(Some(dup));
        }
        state.check(&h, AppendOrigin::Client)?;
        state.update(&h, None);
        Ok(None)
    }

    #[test]
    fn in_order_batches_are_accepted_and_retries_detected() {
        let mut state = ProducerStateManager::new();
        assert_eq!(append(&mut state, header(7, 0, 0, 3, 0)).unwrap(), None);
        assert_eq!(append(&mut state, header(7, 0, 3, 2, 3)).unwrap(), None);
        let dup = append(&mut state, header(7, 0, 0, 3, 99)).unwrap().unwrap();
        assert_eq!((dup.first_offset, dup.last_offset), (0, 2));
        assert_eq!(state.entry(7).unwrap().last_seq(), 4);
    }

    #[test]
    fn gaps_and_old_epochs_are_rejected() {
        let mut state = ProducerStateManager::new();
        append(&mut state, header(7, 2, 0, 3, 0)).unwrap();
        let gap = append(&mut state, header(7, 2, 5, 1, 3)).unwrap_err();
        assert_eq!(
            gap.kafka_error_code(),
            crate::error::codes::OUT_OF_ORDER_SEQUENCE_NUMBER
        );
        let fenced = append(&mut state, header(7, 1, 3, 1, 3)).unwrap_err();
        assert_eq!(
            fenced.kafka_error_code(),
            crate::error::codes::INVALID_PRODUCER_EPOCH
        );
        // A bumped epoch must restart at sequence 0, and then resets the sequence.
        assert!(append(&mut state, header(7, 3, 3, 1, 3)).is_err());
        append(&mut state, header(7, 3, 0, 1, 3)).unwrap();
        assert_eq!(state.entry(7).unwrap().batches.len(), 1);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut state, header(1, 0, i, 1, i64::from(i))).unwrap();
        }
        assert!(
            append(&mut state, header(1, 0, 1, 1, 100)).is_err(),
            "too old to be a duplicate"
        );
        assert!(append(&mut state, header(1, 0, 2, 1, 100))
            .unwrap()
            .is_some());
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut state = ProducerStateManager::new();
        append(&mut state, header(1, 0, i32::MAX - 1, 2, 0)).unwrap();
        assert_eq!(state.entry(1).unwrap().last_seq(), i32::MAX);
        append(&mut state, header(1, 0, 0, 1, 2)).unwrap();
    }

    #[test]
    fn new_producer_accepts_any_sequence_and_snapshot_round_trips() {
        let mut state = ProducerStateManager::new();
        append(&mut state, header(9, 4, 42, 2, 10)).unwrap();
        append(&mut state, header(10, 0, 0, 1, 12)).unwrap();
        let bytes = state.encode_snapshot();
        let loaded = ProducerStateManager::decode_snapshot(&bytes).unwrap();
        assert_eq!(loaded.entry(9), state.entry(9));
        assert_eq!(loaded.len(), 2);
        let mut corrupt = bytes.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(ProducerStateManager::decode_snapshot(&corrupt).is_none());
        assert!(ProducerStateManager::decode_snapshot(&bytes[..bytes.len() - 3]).is_none());
    }
}
