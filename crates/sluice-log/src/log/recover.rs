//! Bringing a log back at open: listing the directory (and removing leftovers), finding the log
//! end of a clean log, scanning and cutting an unclean one at its first bad batch, and
//! rebuilding producer state and the transaction index from snapshots and batch headers (also
//! after a truncation).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::{rewrite, Inner, Listing, Log, OpenState, RecoveryReport};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::io::LogIo;
use crate::producer::{self, ProducerStateManager, SNAPSHOT_SUFFIX};
use crate::segment::{self, IndexCursor, Segment, DELETED_SUFFIX, LOG_SUFFIX};
use crate::txn_index::AbortedTxn;

impl Log {
    /// Rebuilds producer state from the newest usable snapshot at or below `trusted_offset`,
    /// then the batch headers after it, re-deriving the transaction index of what it replays.
    /// Snapshots past the log end offset are deleted.
    pub(super) fn rebuild_producer_state(
        &self,
        inner: &mut Inner,
        snapshot_offsets: &[i64],
        trusted_offset: i64,
    ) -> Result<()> {
        let leo = self.log_end_offset();
        let mut offsets: Vec<i64> = snapshot_offsets.to_vec();
        offsets.sort_unstable();
        let mut start = self.log_start_offset();
        inner.producers.clear();
        for &offset in offsets.iter().rev() {
            let path = producer::snapshot_path(&self.dir, offset);
            if offset > leo {
                let _ = fs::remove_file(&path);
                continue;
            }
            if offset > trusted_offset {
                continue;
            }
            if let Some(state) = fs::read(&path)
                .ok()
                .and_then(|b| ProducerStateManager::decode_snapshot(&b))
            {
                inner.producers = state;
                start = start.max(offset);
                break;
            }
        }
        for segment in self.segments_snapshot().iter() {
            if segment.size() == 0 {
                // Emptied by truncation: no transaction can have ended in it.
                segment.set_aborted(Vec::new())?;
                continue;
            }
            let from = if segment.base_offset >= start {
                0
            } else {
                match segment.find_batch(start, segment.size(), self.cfg().index_interval_bytes)? {
                    Some((position, _)) => position,
                    None => continue,
                }
            };
            // The transaction index of the replayed range is derived again from its markers:
            // entries a crash lost come back, entries past a truncation go.
            let mut aborted: Vec<AbortedTxn> = segment
                .aborted_txns()?
                .iter()
                .filter(|e| e.last_offset < start)
                .copied()
                .collect();
            let mut replay = Ok(());
            segment.for_each_header(from, |position, header| {
                if header.base_offset < start || replay.is_err() {
                    return;
                }
                let control = match segment.control_type_at(position, header) {
                    Ok(control) => control,
                    Err(err) => {
                        replay = Err(err);
                        return;
                    }
                };
                if let Some(txn) = inner.producers.update(header, control) {
                    aborted.extend(txn.aborted_entry());
                }
            })?;
            replay?;
            segment.set_aborted(aborted)?;
        }
        inner.producers.remove_below(self.log_start_offset());
        self.publish_first_unstable(inner);
        Ok(())
    }
}

/// Index cursor for continuing appends to a segment after open or truncation.
pub(super) fn cursor_for(segment: &Segment, interval: u64) -> Result<IndexCursor> {
    let last_position = segment
        .indexes(interval)?
        .offset
        .last()
        .map_or(0, |e| u64::from(e.position));
    let (max_timestamp, offset_of_max_timestamp) = segment.max_timestamp();
    let mut cursor = IndexCursor {
        bytes_since_last_index_entry: 0,
        max_timestamp,
        offset_of_max_timestamp,
    };
    let mut first = true;
    segment.for_each_header(last_position, |_, header| {
        // The batch at the last entry counts as already indexed, as when it was appended.
        if first && last_position > 0 {
            cursor.bytes_since_last_index_entry = 0;
        }
        first = false;
        cursor.bytes_since_last_index_entry += header.total_size() as u64;
    })?;
    Ok(cursor)
}

/// Clean open: trust the files, find the log end from the last segment's tail.
pub(super) fn load_clean_tail(
    segments: &mut [Arc<Segment>],
    config: &LogConfig,
    io: &dyn LogIo,
    state: &mut OpenState,
) -> Result<i64> {
    let last = segments.last().expect("a log always has a segment").clone();
    let interval = config.index_interval_bytes;
    let tail_from = last
        .indexes(interval)?
        .offset
        .last()
        .map_or(0, |e| u64::from(e.position));
    let mut end = None;
    let mut valid_to = tail_from;
    let size = last.size();
    if size == 0 {
        return Ok(last.base_offset);
    }
    let file = last.file()?;
    let mut reader = segment::ChunkReader::new(&file, size, 64 * 1024);
    while valid_to < size {
        match reader
            .header_at(valid_to)
            .map_err(LogError::io(last.log_path()))?
        {
            Ok(header) => {
                last.observe_timestamp(header.max_timestamp, header.last_offset());
                end = Some(header.next_offset());
                valid_to += header.total_size() as u64;
            }
            Err(err) => {
                tracing::warn!(segment = %last.log_path().display(), %err, "clean log has a bad tail; recovering it");
                return recover_from(segments, segments.len() - 1, config, io, state);
            }
        }
    }
    state.cursor = cursor_for(&last, interval)?;
    Ok(end.unwrap_or(last.base_offset))
}

/// Unclean open: scan every segment from the one holding the recovery point, cut at the first
/// bad batch and drop everything after it.
pub(super) fn recover(
    dir: &Path,
    segments: &mut Vec<Arc<Segment>>,
    config: &LogConfig,
    io: &dyn LogIo,
    recovery_point: i64,
    state: &mut OpenState,
) -> Result<i64> {
    let first = segments
        .partition_point(|s| s.base_offset <= recovery_point)
        .saturating_sub(1);
    let end = recover_from(segments, first, config, io, state)?;
    let cut_from = segments
        .iter()
        .position(|s| s.size() == 0 && s.base_offset > end);
    if let Some(cut_from) = cut_from {
        for segment in segments.drain(cut_from..) {
            for path in segment.rename_deleted() {
                let _ = fs::remove_file(path);
            }
        }
    }
    if segments.is_empty() {
        segments.push(Arc::new(Segment::create(dir, end)?));
    }
    Ok(end)
}

fn recover_from(
    segments: &mut [Arc<Segment>],
    first: usize,
    config: &LogConfig,
    io: &dyn LogIo,
    state: &mut OpenState,
) -> Result<i64> {
    let interval = config.index_interval_bytes;
    let mut end = segments[first].base_offset;
    if first > 0 {
        // The end of the previous (trusted) segment, for the continuity check.
        let previous = &segments[first - 1];
        let tail = previous
            .indexes(interval)?
            .offset
            .last()
            .map_or(0, |e| u64::from(e.position));
        previous.for_each_header(tail, |_, h| end = h.next_offset())?;
    }
    let mut cut: Option<(usize, String, u64)> = None;
    for (i, segment) in segments.iter().enumerate().skip(first) {
        if cut.is_some() {
            continue;
        }
        let mut outcome = segment.scan(interval, true, end.max(segment.base_offset))?;
        let file = segment.file()?;
        let file_len = file
            .metadata()
            .map_err(LogError::io(segment.log_path()))?
            .len();
        if let Some(reason) = outcome.stopped_by.take() {
            io.set_len(&file, outcome.valid_bytes)
                .map_err(LogError::io(segment.log_path()))?;
            cut = Some((i, reason, file_len - outcome.valid_bytes));
        }
        segment.write_index_files(&outcome.indexes)?;
        segment.install_scan(&mut outcome);
        state.cursor = outcome.cursor;
        end = outcome.next_offset.unwrap_or(end.max(segment.base_offset));
    }
    if let Some((i, reason, bytes)) = cut {
        let mut dropped_bytes = bytes;
        let dropped_segments = segments.len() - i - 1;
        for segment in &segments[i + 1..] {
            dropped_bytes += segment.size();
            segment.set_size(0);
            if let Ok(file) = segment.file() {
                let _ = io.set_len(&file, 0);
            }
        }
        tracing::warn!(
            segment = %segments[i].log_path().display(),
            position = segments[i].size(),
            bytes_cut = dropped_bytes,
            later_segments_dropped = dropped_segments,
            log_end_offset = end,
            reason = %reason,
            "recovery truncated the log at the first bad batch"
        );
        state.report = Some(RecoveryReport {
            segment_base_offset: segments[i].base_offset,
            position: segments[i].size(),
            bytes_cut: dropped_bytes,
            segments_dropped: dropped_segments,
            reason,
        });
    }
    let last = segments.last().expect("a log always has a segment");
    if last.size() > 0 {
        state.cursor = cursor_for(last, interval)?;
    }
    Ok(end)
}

/// Lists segments and snapshots, and removes leftovers of interrupted work (`.deleted`,
/// temp files, indexes without a log).
pub(super) fn list_dir(dir: &Path) -> Result<Listing> {
    let mut listing = Listing::default();
    let mut index_files = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(DELETED_SUFFIX)
            || name.ends_with(crate::checkpoint::TEMP_SUFFIX)
            || name.ends_with(rewrite::CLEANED_SUFFIX)
        {
            let _ = fs::remove_file(entry.path());
        } else if let Some(base) = parse_stem(name, LOG_SUFFIX) {
            let len = entry.metadata().map_err(LogError::io(entry.path()))?.len();
            listing.log_bases.push((base, len));
        } else if let Some(offset) = parse_stem(name, SNAPSHOT_SUFFIX) {
            listing.snapshot_offsets.push(offset);
        } else if parse_stem(name, segment::INDEX_SUFFIX).is_some()
            || parse_stem(name, segment::TIME_INDEX_SUFFIX).is_some()
            || parse_stem(name, segment::TXN_INDEX_SUFFIX).is_some()
        {
            index_files.push(entry.path());
        }
    }
    for path in index_files {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !listing
            .log_bases
            .iter()
            .any(|(base, _)| segment::file_stem(*base) == stem)
        {
            let _ = fs::remove_file(path);
        }
    }
    Ok(listing)
}

fn parse_stem(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(super) fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(LogError::io(dir))? {
        let entry = entry.map_err(LogError::io(dir))?;
        if let Some(offset) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_stem(n, SNAPSHOT_SUFFIX))
        {
            offsets.push(offset);
        }
    }
    Ok(offsets)
}
