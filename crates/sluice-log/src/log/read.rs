//! Reading: batches as file slices (or copied), lookups by timestamp and by leader epoch, and
//! queries of producer state and aborted transactions. Reads of batches take no lock.

use std::os::unix::fs::FileExt;

use bytes::{Bytes, BytesMut};

use super::{FileSlice, Log, ReadInfo, TimestampOffset};
use crate::error::{LogError, Result};
use crate::producer;
use crate::txn_index::{self, AbortedTxn};

impl Log {
    /// Reads whole batches from `start_offset`, at most `max_bytes` (but the first batch whole
    /// if `min_one_message`), below `max_offset_exclusive` (the high watermark or last stable
    /// offset). `start_offset` must lie in `[log start, log end]`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_message: bool,
    ) -> Result<ReadInfo> {
        let log_end_offset = self.log_end_offset();
        let log_start_offset = self.log_start_offset();
        let mut info = ReadInfo {
            log_start_offset,
            log_end_offset,
            high_watermark: self.high_watermark(),
            last_stable_offset: self.last_stable_offset(),
            ..ReadInfo::default()
        };
        if start_offset < log_start_offset || start_offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let limit = max_offset_exclusive.min(log_end_offset);
        let segments = self.segments_snapshot();
        let interval = self.cfg().index_interval_bytes;
        let mut index = segments
            .partition_point(|s| s.base_offset <= start_offset)
            .saturating_sub(1);
        let mut target = start_offset;
        let mut remaining = max_bytes;
        while index < segments.len() && target < limit {
            let segment = &segments[index];
            let next_base = segments.get(index + 1).map(|s| s.base_offset);
            let size = segment.size();
            let Some((start_position, first)) = segment.find_batch(target, size, interval)? else {
                index += 1;
                target = next_base.unwrap_or(limit);
                continue;
            };
            if first.last_offset() >= limit {
                break;
            }
            let end_by_offset = match next_base {
                Some(next) if next <= limit => size,
                _ => segment
                    .find_batch(limit, size, interval)?
                    .map_or(size, |(position, _)| position),
            };
            let budget_end = start_position.saturating_add(remaining as u64);
            let mut end = if end_by_offset <= budget_end {
                end_by_offset
            } else {
                segment.boundary_at_or_before(
                    start_position,
                    budget_end,
                    end_by_offset,
                    interval,
                )?
            };
            if end == start_position {
                if !(info.slices.is_empty() && min_one_message) {
                    break;
                }
                end = start_position + first.total_size() as u64;
            }
            let len = (end - start_position) as usize;
            info.slices.push(FileSlice {
                file: segment.file()?,
                position: start_position,
                len,
            });
            info.bytes += len;
            remaining = remaining.saturating_sub(len);
            if end < size || remaining == 0 {
                break;
            }
            let Some(next) = next_base else { break };
            target = next;
            index += 1;
        }
        Ok(info)
    }

    /// [`Log::read`], copied into one buffer (for callers that cannot use file slices).
    pub fn read_bytes(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_message: bool,
    ) -> Result<(ReadInfo, Bytes)> {
        let info = self.read(
            start_offset,
            max_bytes,
            max_offset_exclusive,
            min_one_message,
        )?;
        let mut buf = BytesMut::zeroed(info.bytes);
        let mut at = 0;
        for slice in &info.slices {
            slice
                .file
                .read_exact_at(&mut buf[at..at + slice.len], slice.position)
                .map_err(LogError::io(&self.dir))?;
            at += slice.len;
        }
        Ok((info, buf.freeze()))
    }

    /// Kafka's ListOffsets by timestamp: the first batch whose max timestamp is `>= timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let interval = self.cfg().index_interval_bytes;
        let log_start = self.log_start_offset();
        let limit = self.log_end_offset();
        for segment in self.segments_snapshot().iter() {
            let size = segment.size();
            let from_relative = {
                let indexes = segment.indexes(interval)?;
                if segment.max_timestamp().0 < timestamp {
                    continue;
                }
                indexes.time.lookup(timestamp)
            };
            let from_offset = from_relative
                .map_or(segment.base_offset, |r| segment.base_offset + i64::from(r))
                .max(log_start);
            let Some((position, _)) = segment.find_batch(from_offset, size, interval)? else {
                continue;
            };
            let mut found = None;
            segment.for_each_header(position, |at, header| {
                if found.is_none()
                    && header.max_timestamp >= timestamp
                    && header.last_offset() >= log_start
                    && header.base_offset < limit
                {
                    found = Some((at, *header));
                }
            })?;
            if let Some((at, header)) = found {
                return Ok(Some(TimestampOffset {
                    offset: header.base_offset.max(log_start),
                    timestamp: header.max_timestamp,
                    leader_epoch: header.partition_leader_epoch,
                    batch: FileSlice {
                        file: segment.file()?,
                        position: at,
                        len: header.total_size(),
                    },
                }));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the last offset of the batch holding it
    /// (ListOffsets `MAX_TIMESTAMP`); `None` for an empty log.
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let interval = self.cfg().index_interval_bytes;
        let mut best: Option<(i64, i64)> = None;
        for segment in self.segments_snapshot().iter() {
            drop(segment.indexes(interval)?);
            let (timestamp, offset) = segment.max_timestamp();
            if offset >= 0 && best.is_none_or(|(t, _)| timestamp > t) {
                best = Some((timestamp, offset));
            }
        }
        Ok(best)
    }

    /// The newest leader epoch, if any batch carried one.
    pub fn latest_epoch(&self) -> Result<Option<i32>> {
        Ok(self.lock_inner()?.epochs.latest_epoch())
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` per Kafka's `endOffsetFor`; -1s if unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64)> {
        let inner = self.lock_inner()?;
        Ok(inner.epochs.end_offset_for(epoch, self.log_end_offset()))
    }

    /// Current state of one producer (for the broker's idempotence and transaction logic).
    pub fn producer_state(&self, producer_id: i64) -> Result<Option<producer::ProducerStateEntry>> {
        Ok(self.lock_inner()?.producers.entry(producer_id).cloned())
    }

    /// Every producer this log tracks (DescribeProducers), by producer id.
    pub fn producer_states(&self) -> Result<Vec<producer::ProducerStateEntry>> {
        Ok(self.lock_inner()?.producers.entries())
    }

    /// The aborted transactions a `read_committed` fetch of `[start_offset,
    /// upper_bound_offset)` must report (Kafka's `collectAbortedTransactions`): those whose
    /// range overlaps it, oldest first, read from the `.txnindex` of the segment holding
    /// `start_offset` and as many later ones as needed.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
    ) -> Result<Vec<AbortedTxn>> {
        let segments = self.segments_snapshot();
        let first = segments
            .partition_point(|s| s.base_offset <= start_offset)
            .saturating_sub(1);
        let mut out = Vec::new();
        // A transaction's entry sits in the segment of its marker, which may lie past the
        // upper bound, so later segments are read until an entry's last stable offset shows
        // nothing later can overlap.
        for segment in &segments[first..] {
            let entries = segment.aborted_txns()?;
            if txn_index::collect_overlapping(&entries, start_offset, upper_bound_offset, &mut out)
            {
                break;
            }
        }
        Ok(out)
    }
}
