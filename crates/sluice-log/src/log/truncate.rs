//! Removing data: truncating the log's end (a follower diverged), restarting it empty at an
//! offset, moving its start forward (retention, DeleteRecords), deleting segment files after
//! `file.delete.delay.ms`, and forgetting expired producers.

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::recover::{cursor_for, snapshot_offsets};
use super::{Inner, Log};
use crate::error::{LogError, Result};
use crate::producer;
use crate::segment::Segment;

impl Log {
    /// Forgets idempotent producers idle for `expiration_ms` (`producer.id.expiration.ms`)
    /// that have no open transaction; their next write is treated as from a new producer.
    /// Returns how many were removed. The broker calls this periodically.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> Result<usize> {
        let mut inner = self.lock_inner()?;
        Ok(inner.producers.remove_expired(now_ms, expiration_ms))
    }

    /// Drops everything at and after `offset` (a follower diverged from its leader).
    pub fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<()> {
        if offset < self.log_start_offset() {
            return self.truncate_fully_and_start_at(offset.max(0), now_ms);
        }
        let mut inner = self.lock_inner()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let interval = self.cfg().index_interval_bytes;
        let mut segments: Vec<Arc<Segment>> = self.segments_snapshot().to_vec();
        // Keep the segment holding `offset`, even when it would become empty, as the active one.
        let keep = segments.partition_point(|s| s.base_offset <= offset).max(1);
        let holder = &segments[keep - 1];
        if let Some((_, header)) = holder.find_batch(offset, holder.size(), interval)? {
            // Cutting the batch that holds the log start would leave nothing readable.
            if header.base_offset < offset && header.base_offset < self.log_start_offset() {
                drop(inner);
                return self.truncate_fully_and_start_at(offset, now_ms);
            }
        }
        for removed in segments.split_off(keep) {
            self.schedule_delete(&mut inner, &removed, now_ms);
        }
        let active = segments.last().expect("kept one segment").clone();
        let size = active.size();
        let new_end = match active.find_batch(offset, size, interval)? {
            Some((position, header)) => {
                active.truncate_to_position(&*self.io, position, interval)?;
                header.base_offset.min(offset)
            }
            None => offset,
        };
        self.replace_segments(segments);
        self.reset_after_truncation(&mut inner, &active, new_end, now_ms)?;
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = new_end, "truncated log");
        Ok(())
    }

    /// Deletes every segment and restarts the log, empty, at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64, now_ms: i64) -> Result<()> {
        let mut inner = self.lock_inner()?;
        for segment in self.segments_snapshot().iter() {
            self.schedule_delete(&mut inner, segment, now_ms);
        }
        let segment = Arc::new(Segment::create(&self.dir, offset)?);
        self.dir_synced.store(false, Ordering::Release);
        self.replace_segments(vec![segment.clone()]);
        self.log_start_offset.store(offset, Ordering::Release);
        inner.epochs.clear();
        inner.epochs.persist()?;
        self.reset_after_truncation(&mut inner, &segment, offset, now_ms)?;
        Ok(())
    }

    fn reset_after_truncation(
        &self,
        inner: &mut Inner,
        active: &Segment,
        new_end: i64,
        now_ms: i64,
    ) -> Result<()> {
        self.log_end_offset.store(new_end, Ordering::Release);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        self.recovery_point.fetch_min(new_end, Ordering::AcqRel);
        inner.active_files = None;
        inner.cursor = cursor_for(active, self.cfg().index_interval_bytes)?;
        inner.active_created_ms = now_ms;
        if inner.epochs.truncate_from_end(new_end) {
            inner.epochs.persist()?;
        }
        let offsets = snapshot_offsets(&self.dir)?;
        for &snapshot in offsets.iter().filter(|&&o| o > new_end) {
            let _ = fs::remove_file(producer::snapshot_path(&self.dir, snapshot));
        }
        let kept: Vec<i64> = offsets.into_iter().filter(|&o| o <= new_end).collect();
        self.rebuild_producer_state(inner, &kept, new_end)
    }

    /// Moves the log start offset forward (retention, DeleteRecords) and deletes the segments
    /// that lie wholly below it. Returns the number of segments deleted.
    pub fn advance_log_start_offset(&self, offset: i64, now_ms: i64) -> Result<usize> {
        let mut inner = self.lock_inner()?;
        if offset <= self.log_start_offset() {
            return Ok(0);
        }
        let high_watermark = self.high_watermark();
        if offset > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: high_watermark,
            });
        }
        self.log_start_offset.store(offset, Ordering::Release);
        let mut segments: Vec<Arc<Segment>> = self.segments_snapshot().to_vec();
        let deletable = segments
            .windows(2)
            .take_while(|w| w[1].base_offset <= offset)
            .count();
        let removed: Vec<Arc<Segment>> = segments.drain(..deletable).collect();
        self.replace_segments(segments);
        for segment in &removed {
            self.schedule_delete(&mut inner, segment, now_ms);
        }
        if inner.epochs.truncate_from_start(offset) {
            inner.epochs.persist()?;
        }
        inner.producers.remove_below(offset);
        self.publish_first_unstable(&inner);
        Ok(removed.len())
    }

    /// Renames a segment's files to `.deleted`; they are removed after `file.delete.delay.ms`.
    pub(super) fn schedule_delete(&self, inner: &mut Inner, segment: &Segment, now_ms: i64) {
        let due = now_ms.saturating_add(self.cfg().file_delete_delay_ms);
        for path in segment.rename_deleted() {
            if self.cfg().file_delete_delay_ms <= 0 {
                let _ = fs::remove_file(&path);
            } else {
                inner.pending_deletes.push((due, path));
            }
        }
    }

    /// Removes `.deleted` files whose delay has passed; returns how many. The broker calls this
    /// from a periodic background task.
    pub fn delete_expired_files(&self, now_ms: i64) -> usize {
        let Ok(mut inner) = self.lock_inner() else {
            return 0;
        };
        let before = inner.pending_deletes.len();
        inner.pending_deletes.retain(|(due, path)| {
            if *due <= now_ms {
                let _ = fs::remove_file(path);
                false
            } else {
                true
            }
        });
        before - inner.pending_deletes.len()
    }
}
