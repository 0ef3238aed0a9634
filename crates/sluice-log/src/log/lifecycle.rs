//! The segment and log lifecycle: rolling to a new segment (sealing the old one and writing a
//! producer snapshot), flushing to disk, closing, and deleting the whole log.

use std::fs::{self, File};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::recover::snapshot_offsets;
use super::{Inner, Log};
use crate::checkpoint;
use crate::error::{LogError, Result};
use crate::index::{TimeEntry, TimeIndex};
use crate::producer;
use crate::segment::{IndexCursor, Segment};

/// Producer snapshots kept on disk (older ones are removed at roll).
const SNAPSHOTS_RETAINED: usize = 3;

impl Log {
    /// Starts a new segment at the log end offset.
    pub fn roll(&self, now_ms: i64) -> Result<()> {
        let mut inner = self.lock_inner()?;
        self.roll_locked(&mut inner, self.log_end_offset(), now_ms)
    }

    pub(super) fn roll_locked(&self, inner: &mut Inner, new_base: i64, now_ms: i64) -> Result<()> {
        let mut segments: Vec<Arc<Segment>> = self.segments_snapshot().to_vec();
        let active = segments.last().expect("a log always has a segment").clone();
        if active.base_offset == new_base && active.size() == 0 {
            return Ok(());
        }
        if active.size() == 0 {
            // An empty active segment is simply replaced (a follower append with a gap).
            segments.pop();
            self.schedule_delete(inner, &active, now_ms);
        } else {
            self.finish_segment(inner, &active)?;
        }
        let segment = Arc::new(Segment::create(&self.dir, new_base)?);
        self.dir_synced.store(false, Ordering::Release);
        segments.push(segment.clone());
        self.replace_segments(segments);
        inner.active_files = None;
        inner.cursor = IndexCursor::default();
        inner.active_created_ms = now_ms;
        inner.roll_jitter_ms = self.jitter_for(new_base);
        // Not fsynced: a lost snapshot only means replaying more batch headers on recovery.
        self.take_producer_snapshot(inner, new_base, false)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = new_base, "rolled segment");
        Ok(())
    }

    /// Seals the active segment: buffered index entries and its final max timestamp go to
    /// the index files, and blocks reserved past its end are given back.
    fn finish_segment(&self, inner: &mut Inner, segment: &Segment) -> Result<()> {
        self.release_preallocation(inner, segment);
        let (timestamp, offset) = segment.max_timestamp();
        if timestamp >= 0 {
            let entry = TimeEntry {
                timestamp,
                relative_offset: (offset - segment.base_offset).max(0) as u32,
            };
            self.ensure_active_files(inner, segment)?;
            if segment.indexes_mut().time.maybe_push(entry) {
                let files = inner.active_files.as_mut().expect("opened above");
                TimeIndex::encode_entry(entry, &mut files.pending_time);
            }
        }
        self.write_pending_index(inner)
    }

    /// Frees the blocks reserved past the segment's end (a truncation to the length it has
    /// frees them on Linux file systems). Best effort: they are only unused space.
    fn release_preallocation(&self, inner: &mut Inner, segment: &Segment) {
        let Some(files) = inner
            .active_files
            .as_mut()
            .filter(|f| f.base_offset == segment.base_offset)
        else {
            return;
        };
        let size = segment.size();
        if files.preallocated_end <= size {
            return;
        }
        files.preallocated_end = size;
        if let Ok(file) = segment.file() {
            let _ = self.io.set_len(&file, size);
        }
    }

    fn take_producer_snapshot(&self, inner: &mut Inner, offset: i64, durable: bool) -> Result<()> {
        inner.producers.write_snapshot(&self.dir, offset, durable)?;
        let mut offsets = snapshot_offsets(&self.dir)?;
        offsets.sort_unstable();
        let excess = offsets.len().saturating_sub(SNAPSHOTS_RETAINED);
        for old in &offsets[..excess] {
            let _ = fs::remove_file(producer::snapshot_path(&self.dir, *old));
        }
        Ok(())
    }

    /// fsyncs everything above the recovery point and moves the recovery point to the log end
    /// offset seen at the start. Blocking: never call it on an async runtime worker.
    pub fn flush(&self) -> Result<()> {
        let _flushing = self.flush_lock.lock().expect("flush lock");
        let log_end_offset = self.log_end_offset();
        let recovery_point = self.recovery_point();
        if log_end_offset <= recovery_point {
            return Ok(());
        }
        // Index entries up to here must reach their files before the fsync below.
        self.write_pending_index(&mut *self.lock_inner()?)?;
        let segments = self.segments_snapshot();
        let first = segments
            .partition_point(|s| s.base_offset <= recovery_point)
            .saturating_sub(1);
        for segment in &segments[first..] {
            let file = segment.file()?;
            self.io
                .sync_data(&file)
                .map_err(LogError::io(segment.log_path()))?;
            for path in [segment.index_path(), segment.time_index_path()] {
                if let Ok(index) = File::open(&path) {
                    self.io.sync_data(&index).map_err(LogError::io(&path))?;
                }
            }
            segment.sync_txn_index(&*self.io)?;
        }
        if !self.dir_synced.swap(true, Ordering::AcqRel) {
            // New segment files and the directory itself must be findable after a crash.
            checkpoint::sync_dir(&self.dir).map_err(LogError::io(&self.dir))?;
            if let Some(parent) = self.dir.parent() {
                checkpoint::sync_dir(parent).map_err(LogError::io(parent))?;
            }
        }
        self.recovery_point
            .fetch_max(log_end_offset, Ordering::AcqRel);
        if let Ok(mut inner) = self.inner.lock() {
            inner.unflushed_messages = 0;
            inner.first_unflushed_ms = None;
        }
        Ok(())
    }

    /// Flushes, seals the active segment's time index and writes a producer snapshot, so the
    /// next open needs no recovery. Further appends fail with [`LogError::Closed`].
    pub fn close(&self) -> Result<()> {
        self.close_with(true)
    }

    /// [`Log::close`]; without `durable` nothing is fsynced and the caller must sync the file
    /// system and then call [`Log::mark_flushed`] (the log manager does, once for all logs).
    pub(crate) fn close_with(&self, durable: bool) -> Result<()> {
        if durable {
            self.flush()?;
        }
        let mut inner = self.lock_inner()?;
        let active = self.active_segment();
        self.finish_segment(&mut inner, &active)?;
        if let Some(files) = inner.active_files.take() {
            if durable {
                for file in [&files.index, &files.time_index] {
                    self.io.sync_data(file).map_err(LogError::io(&self.dir))?;
                }
            }
        }
        self.take_producer_snapshot(&mut inner, self.log_end_offset(), durable)?;
        for (_, path) in inner.pending_deletes.drain(..) {
            let _ = fs::remove_file(path);
        }
        inner.closed = true;
        Ok(())
    }

    /// Records that everything written so far is durable (after an external file-system sync).
    pub(crate) fn mark_flushed(&self) {
        self.recovery_point
            .fetch_max(self.log_end_offset(), Ordering::AcqRel);
    }

    /// Deletes the whole partition directory (DeleteTopics). The log is closed afterwards.
    pub fn delete(&self) -> Result<()> {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        inner.closed = true;
        inner.active_files = None;
        fs::remove_dir_all(&self.dir).map_err(LogError::io(&self.dir))
    }
}
