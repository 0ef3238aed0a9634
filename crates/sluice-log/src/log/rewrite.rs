//! Rewriting a closed segment (the log cleaner's swap, Kafka's `LogCleaner` + `replaceSegments`).
//!
//! The cleaner hands over the segment's new contents: a subset of its batches, each kept as it
//! was or re-encoded with a subset of its records at their original offsets. They are written
//! to `<base>.log.cleaned` and synced outside the append lock; then, under the lock, the
//! segment's index files are removed (they point into the old file), the cleaned file is
//! renamed over `<base>.log` (atomic), and the in-memory segment is replaced by one whose
//! indexes are rebuilt from the new file on first use. A crash before the rename leaves a
//! `.cleaned` file, which opening the log removes, and the old segment intact; after it, the
//! new segment with its indexes rebuilt. Readers holding slices of the old file keep reading
//! the old inode. Offsets never change, so the transaction index, producer snapshots and
//! leader epochs stay valid.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use sluice_proto::batch::BatchIter;

use super::Log;
use crate::checkpoint;
use crate::error::{LogError, Result};
use crate::segment::{Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// Suffix of a segment's cleaned copy before it replaces the segment.
pub(crate) const CLEANED_SUFFIX: &str = ".log.cleaned";

impl Log {
    /// The base offsets of the closed segments (every segment but the active one), oldest
    /// first, with the offset where each ends (the next segment's base).
    pub fn closed_segments(&self) -> Vec<(i64, i64)> {
        let segments = self.segments_snapshot();
        segments
            .windows(2)
            .map(|w| (w[0].base_offset, w[1].base_offset))
            .collect()
    }

    /// Replaces the contents of the closed segment at `base_offset` with `batches`, which must
    /// be valid batches (CRC-checked here) in increasing offset order within the segment's
    /// range, at least one. Returns `Ok(false)` without changing anything if the segment is
    /// gone or changed meanwhile (retention, truncation).
    pub fn rewrite_segment(&self, base_offset: i64, batches: &[u8]) -> Result<bool> {
        let segments = self.segments_snapshot();
        let Some(pos) = segments.iter().position(|s| s.base_offset == base_offset) else {
            return Ok(false);
        };
        let Some(next) = segments.get(pos + 1) else {
            return Err(LogError::InvalidRecord(
                "the active segment cannot be rewritten".into(),
            ));
        };
        let (old, end) = (segments[pos].clone(), next.base_offset);
        let old_size = old.size();
        let mut expected = base_offset;
        let mut count = 0;
        for item in BatchIter::new(batches) {
            let (header, _) = item?;
            if header.base_offset < expected || header.last_offset() >= end {
                return Err(LogError::InvalidRecord(format!(
                    "rewritten batch {}..={} is outside {expected}..{end} or out of order",
                    header.base_offset,
                    header.last_offset()
                )));
            }
            expected = header.next_offset();
            count += 1;
        }
        if count == 0 {
            return Err(LogError::InvalidRecord(
                "a rewritten segment keeps at least one batch".into(),
            ));
        }
        let cleaned = old.path_with(CLEANED_SUFFIX);
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&cleaned)?;
            file.write_all(batches)?;
            file.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&cleaned);
            return Err(LogError::io(&cleaned)(e));
        }
        let _inner = self.lock_inner()?;
        let current = self.segments_snapshot();
        let unchanged = current
            .get(pos)
            .is_some_and(|s| Arc::ptr_eq(s, &old) && s.size() == old_size)
            && current.len() > pos + 1;
        if !unchanged {
            let _ = fs::remove_file(&cleaned);
            return Ok(false);
        }
        // Readers that still hold the old segment must keep seeing the old file whole: pin its
        // handle and load its indexes before the files change under its name.
        old.file()?;
        drop(old.indexes(self.cfg().index_interval_bytes)?);
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match fs::remove_file(old.path_with(suffix)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    let _ = fs::remove_file(&cleaned);
                    return Err(LogError::io(old.path_with(suffix))(e));
                }
                _ => {}
            }
        }
        checkpoint::sync_dir(&self.dir).map_err(LogError::io(&self.dir))?;
        fs::rename(&cleaned, old.path_with(LOG_SUFFIX)).map_err(LogError::io(&cleaned))?;
        checkpoint::sync_dir(&self.dir).map_err(LogError::io(&self.dir))?;
        let mut list = current.to_vec();
        list[pos] = Arc::new(Segment::existing(
            &self.dir,
            base_offset,
            batches.len() as u64,
        ));
        self.replace_segments(list);
        Ok(true)
    }
}
