//! Appending: the leader, shared-buffer, follower and coordinator append paths, the checks they
//! run, and the one write under the append lock with what follows it (index entries, leader
//! epochs, producer state, the transaction index), the active segment's index files and block
//! reservation, and the decision to roll before a write.

use std::fs::{File, OpenOptions};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use sluice_proto::batch::{self, BatchHeader, BatchIter, TimestampType};

use super::{
    ActiveFiles, AppendInfo, AppendOutcome, Inner, Log, PREALLOCATE_BYTES_MAX,
    PREALLOCATE_BYTES_MIN, PREALLOCATE_FRACTION,
};
use crate::append::{self, ClientBytes, Payload, PlannedBatch, Stamp};
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::index::{OffsetIndex, TimeIndex};
use crate::producer::AppendOrigin;
use crate::segment::Segment;

/// Index bytes buffered before they are written to the active segment's index files.
const PENDING_INDEX_BYTES_MAX: usize = 4096;

impl Log {
    /// Checks, stamps and appends batches from a producer. `batches` is the partition's whole
    /// `records` field; offsets and the leader epoch are written into it in place. Either every
    /// batch is written (with one write call) or none is.
    pub fn append_as_leader(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        self.append_from_client(ClientBytes::InPlace(batches), leader_epoch, now_ms)
    }

    /// [`Log::append_as_leader`] for bytes the caller cannot let change (a request's shared
    /// buffer): they are not copied or modified; stamped copies of the 61-byte batch headers
    /// are written with the rest of each batch in one gathered write (`pwritev`). What lands
    /// in the file is byte for byte what `append_as_leader` would write.
    pub fn append_shared_as_leader(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        self.append_from_client(ClientBytes::Shared(batches), leader_epoch, now_ms)
    }

    fn append_from_client(
        &self,
        bytes: ClientBytes<'_>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        let config = self.cfg();
        let producer_batch = self.validate_client_batches(&config, bytes.as_slice(), now_ms)?;
        let mut inner = self.lock_inner()?;
        if let Some(header) = &producer_batch {
            if let Some(dup) = inner.producers.find_duplicate(header) {
                return Ok(AppendOutcome::Duplicate {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    timestamp: dup.timestamp,
                    log_start_offset: self.log_start_offset(),
                });
            }
            inner.producers.check(header, AppendOrigin::Client)?;
        }
        let log_append_time_ms =
            (config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let stamp = Stamp {
            base_offset: self.log_end_offset(),
            leader_epoch,
            log_append_time_ms,
        };
        let mut info =
            self.stamp_and_write(&mut inner, bytes, &stamp, now_ms, AppendOrigin::Client)?;
        info.log_append_time_ms = log_append_time_ms;
        Ok(AppendOutcome::Appended(info))
    }

    /// Appends batches replicated from the leader, keeping their offsets and epochs. The first
    /// batch must start at or after the log end offset and offsets must increase.
    pub fn append_as_follower(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo> {
        let mut expected = self.log_end_offset();
        let mut span = 0;
        for item in BatchIter::new(batches) {
            let (header, _) = item?;
            if header.base_offset < expected {
                return Err(LogError::UnexpectedAppendOffset {
                    first_offset: header.base_offset,
                    log_end_offset: expected,
                });
            }
            expected = header.next_offset();
            span += i64::from(header.last_offset_delta) + 1;
        }
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("no record batch in append".into()));
        }
        check_offset_span(span)?;
        let mut inner = self.lock_inner()?;
        let leo = self.log_end_offset();
        let first = BatchHeader::parse(batches)?;
        if first.base_offset < leo {
            return Err(LogError::UnexpectedAppendOffset {
                first_offset: first.base_offset,
                log_end_offset: leo,
            });
        }
        let mut plan = std::mem::take(&mut inner.plan);
        let written = append::plan_as_is(batches, &mut plan).and_then(|()| {
            self.write_locked(
                &mut inner,
                Payload::Whole(batches),
                &plan,
                now_ms,
                AppendOrigin::Replication,
                None,
            )
        });
        append::recycle(&mut plan);
        inner.plan = plan;
        written
    }

    /// Appends batches written by a coordinator of this broker: transaction markers (control
    /// batches) and transactional offset commits. Like a leader append, offsets and the leader
    /// epoch are assigned here; producer epochs are checked (an older epoch is fenced) but not
    /// sequences, and control batches are allowed. Kafka's `AppendOrigin.COORDINATOR`.
    pub fn append_as_coordinator(
        &self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("no record batch in append".into()));
        }
        let mut span = 0;
        for item in BatchIter::new(batches) {
            let (header, _) = item?;
            span += i64::from(header.last_offset_delta) + 1;
        }
        check_offset_span(span)?;
        let mut inner = self.lock_inner()?;
        for item in BatchIter::without_crc(batches) {
            let (header, _) = item?;
            if header.has_producer_id() {
                inner.producers.check(&header, AppendOrigin::Coordinator)?;
            }
        }
        let stamp = Stamp {
            base_offset: self.log_end_offset(),
            leader_epoch,
            log_append_time_ms: None,
        };
        self.stamp_and_write(
            &mut inner,
            ClientBytes::InPlace(batches),
            &stamp,
            now_ms,
            AppendOrigin::Coordinator,
        )
    }

    /// Stamps the (checked) batches into the append plan and writes them.
    fn stamp_and_write(
        &self,
        inner: &mut Inner,
        bytes: ClientBytes<'_>,
        stamp: &Stamp,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo> {
        let mut plan = std::mem::take(&mut inner.plan);
        let mut headers = std::mem::take(&mut inner.header_copies);
        let planned = match bytes {
            ClientBytes::InPlace(batches) => {
                append::stamp_in_place(batches, stamp, &mut plan).map(|()| Payload::Whole(batches))
            }
            ClientBytes::Shared(batches) => {
                append::stamp_copies(batches, stamp, &mut plan, &mut headers).map(|()| {
                    Payload::Split {
                        batches,
                        headers: &headers,
                    }
                })
            }
        };
        let written = planned.and_then(|payload| {
            self.write_locked(
                inner,
                payload,
                &plan,
                now_ms,
                origin,
                Some(stamp.leader_epoch),
            )
        });
        append::recycle(&mut plan);
        append::recycle(&mut headers);
        inner.plan = plan;
        inner.header_copies = headers;
        written
    }

    /// Producer-facing checks that need no lock, in one pass over the batches: structure, CRC,
    /// sizes, counts, timestamps, the offsets spanned. Returns the producer's batch, if the
    /// batches come from an idempotent producer (which sends one batch per partition).
    fn validate_client_batches(
        &self,
        config: &LogConfig,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<Option<BatchHeader>> {
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("no record batch in append".into()));
        }
        if batches.len() as u64 > config.segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size: batches.len(),
                max: config.segment_bytes,
            });
        }
        let mut producer_batch = None;
        let mut span = 0;
        for item in BatchIter::new(batches) {
            let (header, range) = item?;
            if range.len() > config.max_message_bytes {
                return Err(LogError::MessageTooLarge {
                    size: range.len(),
                    max: config.max_message_bytes,
                });
            }
            header.compression()?;
            if header.records_count <= 0
                || i64::from(header.records_count) != i64::from(header.last_offset_delta) + 1
            {
                return Err(LogError::InvalidRecord(format!(
                    "batch has {} records but lastOffsetDelta {}",
                    header.records_count, header.last_offset_delta
                )));
            }
            if header.is_control() {
                return Err(LogError::InvalidRecord(
                    "clients may not write control batches".into(),
                ));
            }
            check_timestamp(config, &header, now_ms)?;
            if header.has_producer_id() {
                if producer_batch.is_some() {
                    return Err(LogError::InvalidRecord(
                        "idempotent producers send one batch per partition".into(),
                    ));
                }
                producer_batch = Some(header);
            }
            span += i64::from(header.last_offset_delta) + 1;
        }
        check_offset_span(span)?;
        Ok(producer_batch)
    }

    /// Writes the planned batches at the log end with one write call, then indexes them and
    /// publishes the new end. Called with the append lock held; `plan` describes `payload`.
    fn write_locked(
        &self,
        inner: &mut Inner,
        payload: Payload<'_>,
        plan: &[PlannedBatch],
        now_ms: i64,
        origin: AppendOrigin,
        leader_epoch: Option<i32>,
    ) -> Result<AppendInfo> {
        if self.offline.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        let (Some(first), Some(last)) = (plan.first(), plan.last()) else {
            return Err(LogError::InvalidRecord("no record batch in append".into()));
        };
        let (first, last) = (first.header, last.header);
        let records_count: i64 = plan.iter().map(|b| i64::from(b.header.records_count)).sum();
        let config = self.cfg();
        let bytes = payload.len() as u64;
        let mut segment = self.active_segment();
        let rolled = self.maybe_roll(
            inner,
            &config,
            &segment,
            first.base_offset..=last.last_offset(),
            bytes,
            now_ms,
        )?;
        if rolled {
            segment = self.active_segment();
        }
        self.ensure_active_files(inner, &segment)?;
        let position = segment.size();
        let file = segment.file()?;
        self.preallocate(inner, &config, &file, position, position + bytes);
        if let Err(err) = append::write_payload(&*self.io, &file, payload, plan, position) {
            self.undo_write(&file, position);
            return Err(LogError::io(segment.log_path())(err));
        }
        self.index_written(inner, &config, &segment, plan, position);
        segment.set_size(position + bytes);
        self.log_end_offset
            .store(last.next_offset(), Ordering::Release);
        if inner
            .active_files
            .as_ref()
            .is_some_and(|f| f.pending_index.len() >= PENDING_INDEX_BYTES_MAX)
        {
            self.write_pending_index(inner)?;
        }
        self.after_write(
            inner,
            &segment,
            payload.records_source(),
            plan,
            origin,
            leader_epoch,
        )?;
        inner.unflushed_messages += records_count;
        let first_unflushed = *inner.first_unflushed_ms.get_or_insert(now_ms);
        let flush_due = rolled
            || inner.unflushed_messages >= config.flush_messages
            || now_ms.saturating_sub(first_unflushed) >= config.flush_ms;
        Ok(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset(),
            records_count,
            bytes: payload.len(),
            flush_due,
        })
    }

    /// Reserves blocks past the active segment's end before a write that would reach beyond
    /// those already reserved (see [`PREALLOCATE_FRACTION`]). Never past `segment.bytes`; a
    /// failure only means the writes up to the attempted end take the ordinary path.
    fn preallocate(
        &self,
        inner: &mut Inner,
        config: &LogConfig,
        file: &File,
        position: u64,
        write_end: u64,
    ) {
        let files = inner
            .active_files
            .as_mut()
            .expect("active files are open before a write");
        if write_end <= files.preallocated_end {
            return;
        }
        let ahead =
            (write_end / PREALLOCATE_FRACTION).clamp(PREALLOCATE_BYTES_MIN, PREALLOCATE_BYTES_MAX);
        let until = write_end
            .saturating_add(ahead)
            .min(config.segment_bytes.max(write_end));
        let from = files.preallocated_end.max(position);
        let _ = self.io.preallocate(file, from, until - from);
        files.preallocated_end = until;
    }

    /// Index entries and the segment's max timestamp for batches just written at `position`.
    /// Entries go to memory now and to the index files in groups (at roll, flush, close, or
    /// when enough accumulate): the in-memory index is authoritative, and recovery rebuilds
    /// the files past the recovery point anyway.
    fn index_written(
        &self,
        inner: &mut Inner,
        config: &LogConfig,
        segment: &Segment,
        plan: &[PlannedBatch],
        position: u64,
    ) {
        let Inner {
            entries_scratch,
            active_files,
            cursor,
            ..
        } = inner;
        entries_scratch.clear();
        for planned in plan {
            let header = &planned.header;
            let at = position + planned.start as u64;
            if let Some(entries) =
                cursor.observe(header, at, config.index_interval_bytes, segment.base_offset)
            {
                entries_scratch.push(entries);
            }
            segment.observe_timestamp(header.max_timestamp, header.last_offset());
        }
        if entries_scratch.is_empty() {
            return;
        }
        let files = active_files
            .as_mut()
            .expect("active files are open after a write");
        let mut indexes = segment.indexes_mut();
        for &(offset_entry, time_entry) in entries_scratch.iter() {
            if indexes.offset.accepts(offset_entry) {
                indexes.offset.push(offset_entry);
                OffsetIndex::encode_entry(offset_entry, &mut files.pending_index);
            }
            if indexes.time.maybe_push(time_entry) {
                TimeIndex::encode_entry(time_entry, &mut files.pending_time);
            }
        }
    }

    /// Cuts back a failed write so nothing partial stays; if even that fails the log goes
    /// offline (appends refused) rather than risk serving a torn batch.
    fn undo_write(&self, file: &File, position: u64) {
        if let Err(err) = self.io.set_len(file, position) {
            tracing::error!(dir = %self.dir.display(), %err, "cannot cut back a failed write; log offline");
            self.offline.store(true, Ordering::Release);
        }
    }

    /// Leader epochs, producer state and the transaction index after a successful write to
    /// `segment`. The high watermark, and so the last stable offset, moves only after this
    /// returns, so a `read_committed` reader never sees an abort marker before its index entry.
    /// If the index entry cannot be written the log goes offline: the batches are in the log
    /// but a reader could not tell their transaction aborted (recovery rebuilds the entry).
    fn after_write(
        &self,
        inner: &mut Inner,
        segment: &Segment,
        batches: &[u8],
        plan: &[PlannedBatch],
        origin: AppendOrigin,
        leader_epoch: Option<i32>,
    ) -> Result<()> {
        let mut epochs_changed = false;
        if let (Some(epoch), Some(first)) = (leader_epoch, plan.first()) {
            epochs_changed |= inner.epochs.assign(epoch, first.header.base_offset);
        }
        let mut index_result = Ok(());
        for planned in plan {
            let header = &planned.header;
            if origin == AppendOrigin::Replication {
                epochs_changed |= inner
                    .epochs
                    .assign(header.partition_leader_epoch, header.base_offset);
            }
            let control = header
                .is_control()
                .then(|| batch::control_type(&batches[planned.range()]))
                .flatten();
            let aborted = inner
                .producers
                .update(header, control)
                .and_then(|txn| txn.aborted_entry());
            if let (Some(entry), Ok(())) = (aborted, &index_result) {
                index_result = segment.append_aborted(&*self.io, entry);
            }
        }
        if epochs_changed {
            if let Err(err) = inner.epochs.persist() {
                tracing::error!(dir = %self.dir.display(), %err, "cannot write leader-epoch-checkpoint");
            }
        }
        // Only a transactional batch (which may open a transaction) or a marker (which ends
        // one) moves the first unstable offset; skip the scan over all producers otherwise.
        if plan
            .iter()
            .any(|b| b.header.is_transactional() || b.header.is_control())
        {
            self.publish_first_unstable(inner);
        }
        if let Err(err) = &index_result {
            tracing::error!(dir = %self.dir.display(), %err, "cannot write the transaction index; log offline");
            self.offline.store(true, Ordering::Release);
        }
        index_result
    }

    /// Opens the active segment's index files for appending if they are not open yet.
    pub(super) fn ensure_active_files(&self, inner: &mut Inner, segment: &Segment) -> Result<()> {
        if inner
            .active_files
            .as_ref()
            .is_some_and(|f| f.base_offset == segment.base_offset)
        {
            return Ok(());
        }
        let (index_len, time_index_len) = {
            let indexes = segment.indexes(self.cfg().index_interval_bytes)?;
            (indexes.offset.file_len(), indexes.time.file_len())
        };
        let open = |path: PathBuf| {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(LogError::io(path))
        };
        inner.active_files = Some(ActiveFiles {
            base_offset: segment.base_offset,
            index: open(segment.index_path())?,
            time_index: open(segment.time_index_path())?,
            index_len,
            time_index_len,
            pending_index: Vec::with_capacity(PENDING_INDEX_BYTES_MAX),
            pending_time: Vec::new(),
            preallocated_end: 0,
        });
        Ok(())
    }

    /// Writes buffered index entries of the active segment to its index files.
    pub(super) fn write_pending_index(&self, inner: &mut Inner) -> Result<()> {
        let Some(files) = inner.active_files.as_mut() else {
            return Ok(());
        };
        let dir = &self.dir;
        if !files.pending_index.is_empty() {
            self.io
                .write_at(&files.index, &files.pending_index, files.index_len)
                .map_err(LogError::io(dir))?;
            files.index_len += files.pending_index.len() as u64;
            files.pending_index.clear();
        }
        if !files.pending_time.is_empty() {
            self.io
                .write_at(&files.time_index, &files.pending_time, files.time_index_len)
                .map_err(LogError::io(dir))?;
            files.time_index_len += files.pending_time.len() as u64;
            files.pending_time.clear();
        }
        Ok(())
    }

    /// Rolls before an append of `offsets` and `bytes` that the active `segment` cannot take.
    fn maybe_roll(
        &self,
        inner: &mut Inner,
        config: &LogConfig,
        segment: &Segment,
        offsets: RangeInclusive<i64>,
        bytes: u64,
        now_ms: i64,
    ) -> Result<bool> {
        let (first_offset, last_offset) = offsets.into_inner();
        let size = segment.size();
        let index_full = segment.indexes(config.index_interval_bytes)?.offset.len()
            >= config.max_index_entries();
        let too_old = now_ms.saturating_sub(inner.active_created_ms)
            >= config.segment_ms.saturating_sub(inner.roll_jitter_ms);
        let offsets_overflow = last_offset - segment.base_offset > i64::from(i32::MAX);
        let full = size.saturating_add(bytes) > config.segment_bytes;
        if (size > 0 && (full || index_full || too_old)) || offsets_overflow {
            self.roll_locked(inner, first_offset, now_ms)?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn check_timestamp(config: &LogConfig, header: &BatchHeader, now_ms: i64) -> Result<()> {
    if config.message_timestamp_type == TimestampType::LogAppendTime {
        return Ok(());
    }
    let timestamp = header.max_timestamp;
    let too_old = now_ms.saturating_sub(timestamp) > config.message_timestamp_before_max_ms;
    let too_new = timestamp.saturating_sub(now_ms) > config.message_timestamp_after_max_ms;
    if too_old || too_new {
        return Err(LogError::InvalidTimestamp { timestamp, now_ms });
    }
    Ok(())
}

/// One append's offsets (`span` of them) must fit a segment's 32-bit relative offsets.
fn check_offset_span(span: i64) -> Result<()> {
    if span > i64::from(i32::MAX) {
        return Err(LogError::InvalidRecord(format!(
            "append spans {span} offsets"
        )));
    }
    Ok(())
}
