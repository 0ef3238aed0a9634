//! The partition log: an ordered list of segments plus offsets, leader epochs and producer state.
//!
//! Concurrency: one appender at a time (the `inner` mutex, held across the append's write), any
//! number of concurrent readers. Readers take a snapshot of the segment list (an `Arc` cloned
//! under a short read lock), read offsets from atomics and do positional I/O with no lock held.
//! The appender publishes a write by storing the segment size, then the log end offset.

use std::fs::{self, File, OpenOptions};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sluice_proto::batch::{self, BatchHeader, BatchIter, TimestampType, HEADER_SIZE};

use crate::append::{self, ClientBytes, Payload, PlannedBatch, Stamp};
use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::index::{OffsetIndex, TimeEntry, TimeIndex};
use crate::io::{LogIo, OsIo};
use crate::producer::{self, AppendOrigin, ProducerStateManager, SNAPSHOT_SUFFIX};
use crate::segment::{self, IndexCursor, Segment, DELETED_SUFFIX, LOG_SUFFIX};
use crate::txn_index::{self, AbortedTxn};

mod rewrite;

/// Index bytes buffered before they are written to the active segment's index files.
const PENDING_INDEX_BYTES_MAX: usize = 4096;
/// Producer snapshots kept on disk (older ones are removed at roll).
const SNAPSHOTS_RETAINED: usize = 3;
/// The active segment's file has blocks reserved ahead of its end (`fallocate`, length kept):
/// an eighth of what the segment already holds, at least the minimum and at most the maximum.
/// Writes into reserved blocks skip the file system's per-block reservation work (about 15 %
/// of a buffered write on ext4), while an idle partition reserves next to nothing and ten
/// thousand busy ones at most 4 MiB each. The reservation is given back when the segment rolls
/// or the log closes.
const PREALLOCATE_FRACTION: u64 = 8;
const PREALLOCATE_BYTES_MIN: u64 = 64 * 1024;
const PREALLOCATE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Current wall-clock time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How to open a log: what the log dir's checkpoints say about it.
#[derive(Debug, Clone)]
pub struct LogOpenOptions {
    /// Offset below which data is known to be flushed (from `recovery-point-offset-checkpoint`).
    pub recovery_point: i64,
    /// From `log-start-offset-checkpoint`.
    pub log_start_offset: i64,
    /// From `replication-offset-checkpoint`.
    pub high_watermark: i64,
    /// The log dir was shut down cleanly: skip the recovery scan.
    pub clean_shutdown: bool,
    /// File write seam (tests inject faults).
    pub io: Arc<dyn LogIo>,
    /// Clock reading used for segment ages.
    pub now_ms: i64,
}

impl Default for LogOpenOptions {
    fn default() -> Self {
        LogOpenOptions {
            recovery_point: 0,
            log_start_offset: 0,
            high_watermark: 0,
            clean_shutdown: false,
            io: Arc::new(OsIo),
            now_ms: now_ms(),
        }
    }
}

/// A byte range of a segment file, ready for sendfile or `pread`.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

/// Result of [`Log::read`]: whole batches as file slices, plus the offsets a fetch answer needs.
#[derive(Debug, Clone, Default)]
pub struct ReadInfo {
    /// Consecutive batches, possibly from several segments.
    pub slices: Vec<FileSlice>,
    /// Total bytes of `slices`.
    pub bytes: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
}

/// What a successful append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The timestamp stamped into the batches for `LogAppendTime` topics.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
    pub records_count: i64,
    pub bytes: usize,
    /// `flush.messages` / `flush.ms` asks for an fsync, or the append rolled a segment (as Kafka
    /// flushes a segment once it is finished, so that crash recovery only scans the active
    /// one): the caller should run [`Log::flush`] on a blocking thread (appends never fsync
    /// themselves).
    pub flush_due: bool,
}

/// Outcome of a leader append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Appended(AppendInfo),
    /// The batch repeats one of the producer's last five: nothing was written; answer with the
    /// original offsets.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
        log_start_offset: i64,
    },
}

/// The answer to a lookup by timestamp: the first batch whose max timestamp is `>= target`.
/// `batch` lets the caller refine to the exact record by decoding that one batch.
#[derive(Debug, Clone)]
pub struct TimestampOffset {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
    pub batch: FileSlice,
}

/// Per-segment facts for retention decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp: i64,
}

/// What recovery cut from a log when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Base offset of the segment that was cut.
    pub segment_base_offset: i64,
    /// Position in that segment where the valid data ends.
    pub position: u64,
    /// Bytes removed, including later segments.
    pub bytes_cut: u64,
    /// Whole segments removed after the cut one.
    pub segments_dropped: usize,
    /// Why the batch at `position` was rejected.
    pub reason: String,
}

/// What opening found, passed through the recovery helpers.
#[derive(Debug, Default)]
struct OpenState {
    cursor: IndexCursor,
    report: Option<RecoveryReport>,
}

/// State only the appender touches.
#[derive(Debug)]
struct Inner {
    closed: bool,
    producers: ProducerStateManager,
    epochs: LeaderEpochCache,
    /// Index files of the active segment, opened on first append.
    active_files: Option<ActiveFiles>,
    cursor: IndexCursor,
    active_created_ms: i64,
    roll_jitter_ms: i64,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    pending_deletes: Vec<(i64, PathBuf)>,
    entries_scratch: Vec<(crate::index::OffsetEntry, TimeEntry)>,
    /// The batches of the append in progress (reused, so appends do not allocate).
    plan: Vec<PlannedBatch>,
    /// Stamped header copies of an append from a shared buffer (reused likewise).
    header_copies: Vec<[u8; HEADER_SIZE]>,
}

/// The active segment's index files and the entries not yet written to them.
#[derive(Debug)]
struct ActiveFiles {
    base_offset: i64,
    index: File,
    time_index: File,
    /// Bytes of each file already written.
    index_len: u64,
    time_index_len: u64,
    pending_index: Vec<u8>,
    pending_time: Vec<u8>,
    /// End of the blocks reserved in the segment's `.log` file (see [`PREALLOCATE_FRACTION`]).
    preallocated_end: u64,
}

/// One partition's log. See the module comment for the concurrency rules.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    /// Settings; replaced whole when a topic's configuration changes at run time.
    config: RwLock<LogConfig>,
    io: Arc<dyn LogIo>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    recovery_point: AtomicI64,
    /// First offset of the oldest open transaction, or i64::MAX.
    first_unstable_offset: AtomicI64,
    offline: AtomicBool,
    /// Whether the partition directory was fsynced since open (new files are then durable).
    dir_synced: AtomicBool,
    /// What recovery cut at open, if anything.
    recovery_report: Option<RecoveryReport>,
    inner: Mutex<Inner>,
    flush_lock: Mutex<()>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it if it was not shut down cleanly.
    pub fn open(dir: &Path, config: LogConfig, options: LogOpenOptions) -> Result<Log> {
        fs::create_dir_all(dir).map_err(LogError::io(dir))?;
        let listing = list_dir(dir)?;
        let mut bases = listing.log_bases;
        bases.sort_unstable();
        let start_hint = options.log_start_offset.max(0);
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        for (base, size) in bases {
            segments.push(Arc::new(Segment::existing(dir, base, size)));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(dir, start_hint)?));
        }
        let mut state = OpenState::default();
        let log_end_offset = if options.clean_shutdown {
            load_clean_tail(&mut segments, &config, &*options.io, &mut state)?
        } else {
            recover(
                dir,
                &mut segments,
                &config,
                &*options.io,
                options.recovery_point,
                &mut state,
            )?
        };
        let log_start_offset = start_hint.max(segments[0].base_offset).min(log_end_offset);
        let mut epochs = LeaderEpochCache::load(dir)?;
        let changed =
            epochs.truncate_from_end(log_end_offset) | epochs.truncate_from_start(log_start_offset);
        if changed {
            epochs.persist()?;
        }
        let log = Log {
            dir: dir.to_path_buf(),
            io: options.io.clone(),
            segments: RwLock::new(Arc::new(segments)),
            log_start_offset: AtomicI64::new(log_start_offset),
            log_end_offset: AtomicI64::new(log_end_offset),
            high_watermark: AtomicI64::new(
                options
                    .high_watermark
                    .clamp(log_start_offset, log_end_offset),
            ),
            recovery_point: AtomicI64::new(options.recovery_point.clamp(0, log_end_offset)),
            first_unstable_offset: AtomicI64::new(i64::MAX),
            offline: AtomicBool::new(false),
            dir_synced: AtomicBool::new(false),
            recovery_report: state.report,
            inner: Mutex::new(Inner {
                closed: false,
                producers: ProducerStateManager::new(),
                epochs,
                active_files: None,
                cursor: state.cursor,
                active_created_ms: options.now_ms,
                roll_jitter_ms: 0,
                unflushed_messages: 0,
                first_unflushed_ms: None,
                pending_deletes: Vec::new(),
                entries_scratch: Vec::new(),
                plan: Vec::new(),
                header_copies: Vec::new(),
            }),
            flush_lock: Mutex::new(()),
            config: RwLock::new(config),
        };
        {
            let mut inner = log.lock_inner()?;
            inner.roll_jitter_ms = log.jitter_for(log.active_segment().base_offset);
            // After a crash only data below the recovery point is known durable, and with it
            // the snapshots and transaction index entries written before it: replay from there.
            let trusted = if options.clean_shutdown {
                log.log_end_offset()
            } else {
                log.recovery_point()
            };
            log.rebuild_producer_state(&mut inner, &listing.snapshot_offsets, trusted)?;
        }
        Ok(log)
    }

    /// What recovery cut when this log was opened (`None`: nothing).
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.recovery_report.as_ref()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> LogConfig {
        self.cfg()
    }

    fn cfg(&self) -> LogConfig {
        *self.config.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a changed topic configuration (AlterConfigs). Appends, rolls and flushes that
    /// start afterwards use it; existing segments are not rewritten.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Offset the next appended record will get (LEO).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Offset up to which data is known flushed to disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// Sets the high watermark. It never exceeds the log end offset (a caller bug otherwise).
    pub fn set_high_watermark(&self, offset: i64) {
        let leo = self.log_end_offset();
        assert!(
            offset <= leo,
            "high watermark {offset} above log end offset {leo}"
        );
        self.high_watermark
            .store(offset.max(self.log_start_offset()), Ordering::Release);
    }

    /// Last stable offset: the high watermark, held back by the oldest open transaction.
    pub fn last_stable_offset(&self) -> i64 {
        self.high_watermark()
            .min(self.first_unstable_offset.load(Ordering::Acquire))
    }

    /// Bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments_snapshot().iter().map(|s| s.size()).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments_snapshot().len()
    }

    /// Base offset, size and max timestamp of every segment (for retention).
    pub fn segment_infos(&self) -> Result<Vec<SegmentInfo>> {
        let interval = self.cfg().index_interval_bytes;
        self.segments_snapshot()
            .iter()
            .map(|s| {
                drop(s.indexes(interval)?);
                Ok(SegmentInfo {
                    base_offset: s.base_offset,
                    size_bytes: s.size(),
                    max_timestamp: s.max_timestamp().0,
                })
            })
            .collect()
    }

    fn segments_snapshot(&self) -> Arc<Vec<Arc<Segment>>> {
        self.segments.read().expect("segments lock").clone()
    }

    fn active_segment(&self) -> Arc<Segment> {
        self.segments_snapshot()
            .last()
            .expect("a log always has a segment")
            .clone()
    }

    fn replace_segments(&self, segments: Vec<Arc<Segment>>) {
        assert!(!segments.is_empty(), "a log always has a segment");
        assert!(segments
            .windows(2)
            .all(|w| w[0].base_offset < w[1].base_offset));
        *self.segments.write().expect("segments lock") = Arc::new(segments);
    }

    fn lock_inner(&self) -> Result<MutexGuard<'_, Inner>> {
        let inner = self.inner.lock().expect("log lock poisoned");
        if inner.closed {
            return Err(LogError::Closed);
        }
        Ok(inner)
    }

    fn jitter_for(&self, base_offset: i64) -> i64 {
        if self.cfg().segment_jitter_ms <= 0 {
            return 0;
        }
        let seed = self.dir.as_os_str().len() as u64
            ^ (base_offset as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (seed.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 17) as i64 % self.cfg().segment_jitter_ms
    }

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

    fn publish_first_unstable(&self, inner: &Inner) {
        let offset = inner.producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable_offset.store(offset, Ordering::Release);
    }

    /// Opens the active segment's index files for appending if they are not open yet.
    fn ensure_active_files(&self, inner: &mut Inner, segment: &Segment) -> Result<()> {
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
    fn write_pending_index(&self, inner: &mut Inner) -> Result<()> {
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

    /// Starts a new segment at the log end offset.
    pub fn roll(&self, now_ms: i64) -> Result<()> {
        let mut inner = self.lock_inner()?;
        self.roll_locked(&mut inner, self.log_end_offset(), now_ms)
    }

    fn roll_locked(&self, inner: &mut Inner, new_base: i64, now_ms: i64) -> Result<()> {
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

    /// Rebuilds producer state from the newest usable snapshot at or below `trusted_offset`,
    /// then the batch headers after it, re-deriving the transaction index of what it replays.
    /// Snapshots past the log end offset are deleted.
    fn rebuild_producer_state(
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
    fn schedule_delete(&self, inner: &mut Inner, segment: &Segment, now_ms: i64) {
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

/// Index cursor for continuing appends to a segment after open or truncation.
fn cursor_for(segment: &Segment, interval: u64) -> Result<IndexCursor> {
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
fn load_clean_tail(
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
fn recover(
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

#[derive(Debug, Default)]
struct Listing {
    log_bases: Vec<(i64, u64)>,
    snapshot_offsets: Vec<i64>,
}

/// Lists segments and snapshots, and removes leftovers of interrupted work (`.deleted`,
/// temp files, indexes without a log).
fn list_dir(dir: &Path) -> Result<Listing> {
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

fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>> {
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
