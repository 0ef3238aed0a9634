//! The partition log: an ordered list of segments plus offsets, leader epochs and producer state.
//!
//! Concurrency: one appender at a time (the `inner` mutex, held across the append's write), any
//! number of concurrent readers. Readers take a snapshot of the segment list (an `Arc` cloned
//! under a short read lock), read offsets from atomics and do positional I/O with no lock held.
//! The appender publishes a write by storing the segment size, then the log end offset.
//!
//! This module holds the log's types, [`Log::open`] and the offset and segment accessors; the
//! rest of `impl Log` is split by concern into submodules: `append` (writing batches), `read`
//! (reads and lookups), `recover` (bringing a log back at open), `truncate` (removing data),
//! `lifecycle` (rolling, flushing, closing) and `rewrite` (the log cleaner's segment swap).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_proto::batch::HEADER_SIZE;

use self::recover::{list_dir, load_clean_tail, recover};
use crate::append::PlannedBatch;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::index::TimeEntry;
use crate::io::{LogIo, OsIo};
use crate::producer::ProducerStateManager;
use crate::segment::{IndexCursor, Segment};

mod append;
mod lifecycle;
mod read;
mod recover;
mod rewrite;
mod truncate;

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

#[derive(Debug, Default)]
struct Listing {
    log_bases: Vec<(i64, u64)>,
    snapshot_offsets: Vec<i64>,
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

    fn publish_first_unstable(&self, inner: &Inner) {
        let offset = inner.producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable_offset.store(offset, Ordering::Release);
    }
}
