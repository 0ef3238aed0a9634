//! One segment: a `.log` file of batches starting at `base_offset`, with its offset and time
//! indexes. Segments are shared (`Arc`) between the appender and readers; the appender is the
//! only writer and publishes new bytes by storing `size` after they are written, so readers
//! never see a partial batch and never take a lock across I/O.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard};

use sluice_proto::batch::{self, BatchError, BatchHeader, HEADER_SIZE};

use crate::error::{LogError, Result};
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::io::LogIo;
use crate::txn_index::{AbortedTxn, ENTRY_SIZE as TXN_ENTRY_SIZE};

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// Bytes read at a time when scanning batch headers (about one index interval).
const HEADER_SCAN_CHUNK: usize = 8 * 1024;
/// Bytes read at a time when recovering (validating whole batches).
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// File name stem of a segment: the base offset in 20 digits.
pub(crate) fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Both indexes of a segment, loaded lazily for old segments.
#[derive(Debug, Default)]
pub(crate) struct Indexes {
    pub(crate) loaded: bool,
    pub(crate) offset: OffsetIndex,
    pub(crate) time: TimeIndex,
}

/// What a full scan of a segment found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of valid batches from the start.
    pub(crate) valid_bytes: u64,
    /// Offset after the last valid batch (`None` if there is none).
    pub(crate) next_offset: Option<i64>,
    /// Why the scan stopped before the end of the file, if it did.
    pub(crate) stopped_by: Option<String>,
    pub(crate) indexes: Indexes,
    pub(crate) cursor: IndexCursor,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    dir: PathBuf,
    file: OnceLock<Arc<File>>,
    /// Bytes of complete batches visible to readers.
    size: AtomicU64,
    /// Largest batch max-timestamp in the segment (-1 if none or not loaded yet).
    max_timestamp: AtomicI64,
    /// Last offset of the batch holding `max_timestamp`.
    offset_of_max_timestamp: AtomicI64,
    indexes: RwLock<Indexes>,
    /// Entries of the `.txnindex` file, loaded on first use (most segments have none).
    aborted: RwLock<Option<Arc<Vec<AbortedTxn>>>>,
}

impl Segment {
    /// A segment whose files exist; nothing is opened until needed.
    pub(crate) fn existing(dir: &Path, base_offset: i64, size: u64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: OnceLock::new(),
            size: AtomicU64::new(size),
            max_timestamp: AtomicI64::new(-1),
            offset_of_max_timestamp: AtomicI64::new(-1),
            indexes: RwLock::new(Indexes::default()),
            aborted: RwLock::new(None),
        }
    }

    /// Creates empty files for a new segment (replacing any leftovers).
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let segment = Segment::existing(dir, base_offset, 0);
        for path in [
            segment.log_path(),
            segment.index_path(),
            segment.time_index_path(),
        ] {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(LogError::io(&path))?;
        }
        segment.indexes.write().expect("index lock").loaded = true;
        let txn_path = segment.txn_index_path();
        match fs::remove_file(&txn_path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(LogError::io(&txn_path)(err))
            }
            _ => {}
        }
        *segment.aborted.write().expect("txn index lock") = Some(Arc::new(Vec::new()));
        Ok(segment)
    }

    pub(crate) fn path_with(&self, suffix: &str) -> PathBuf {
        self.dir
            .join(format!("{}{suffix}", file_stem(self.base_offset)))
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.path_with(LOG_SUFFIX)
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.path_with(INDEX_SUFFIX)
    }

    pub(crate) fn time_index_path(&self) -> PathBuf {
        self.path_with(TIME_INDEX_SUFFIX)
    }

    pub(crate) fn txn_index_path(&self) -> PathBuf {
        self.path_with(TXN_INDEX_SUFFIX)
    }

    /// The transactions aborted in this segment, oldest first, loading `.txnindex` if needed.
    /// A torn or unreadable tail of the file is dropped from the list (and rewritten when the
    /// next entry is added).
    pub(crate) fn aborted_txns(&self) -> Result<Arc<Vec<AbortedTxn>>> {
        if let Some(entries) = &*self.aborted.read().expect("txn index lock") {
            return Ok(entries.clone());
        }
        let mut guard = self.aborted.write().expect("txn index lock");
        if let Some(entries) = &*guard {
            return Ok(entries.clone());
        }
        let path = self.txn_index_path();
        let entries = match read_optional(&path)? {
            None => Vec::new(),
            Some(bytes) => {
                let (entries, problem) = AbortedTxn::decode_all(&bytes);
                if let Some(problem) = problem {
                    tracing::warn!(index = %path.display(), %problem, kept = entries.len(), "transaction index has a bad tail; dropping it");
                    write_txn_index(&path, &entries)?;
                }
                entries
            }
        };
        let entries = Arc::new(entries);
        *guard = Some(entries.clone());
        Ok(entries)
    }

    /// Adds an aborted transaction at the end of `.txnindex` (created on first use).
    pub(crate) fn append_aborted(&self, io: &dyn LogIo, entry: AbortedTxn) -> Result<()> {
        let current = self.aborted_txns()?;
        let path = self.txn_index_path();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let mut bytes = Vec::with_capacity(TXN_ENTRY_SIZE);
        entry.encode(&mut bytes);
        io.write_at(&file, &bytes, (current.len() * TXN_ENTRY_SIZE) as u64)
            .map_err(LogError::io(&path))?;
        let mut entries = current.to_vec();
        entries.push(entry);
        *self.aborted.write().expect("txn index lock") = Some(Arc::new(entries));
        Ok(())
    }

    /// Replaces the segment's aborted transactions (recovery, truncation); the file is
    /// rewritten, or removed when the list is empty. Nothing is written when nothing changed.
    pub(crate) fn set_aborted(&self, entries: Vec<AbortedTxn>) -> Result<()> {
        if *self.aborted_txns()? == entries {
            return Ok(());
        }
        write_txn_index(&self.txn_index_path(), &entries)?;
        *self.aborted.write().expect("txn index lock") = Some(Arc::new(entries));
        Ok(())
    }

    /// fsyncs `.txnindex` if it exists.
    pub(crate) fn sync_txn_index(&self, io: &dyn LogIo) -> Result<()> {
        let path = self.txn_index_path();
        match File::open(&path) {
            Ok(file) => io.sync_data(&file).map_err(LogError::io(&path)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(LogError::io(&path)(err)),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::Release);
    }

    pub(crate) fn max_timestamp(&self) -> (i64, i64) {
        (
            self.max_timestamp.load(Ordering::Acquire),
            self.offset_of_max_timestamp.load(Ordering::Acquire),
        )
    }

    pub(crate) fn observe_timestamp(&self, timestamp: i64, offset: i64) {
        if timestamp > self.max_timestamp.load(Ordering::Acquire) {
            self.offset_of_max_timestamp
                .store(offset, Ordering::Release);
            self.max_timestamp.store(timestamp, Ordering::Release);
        }
    }

    fn reset_max_timestamp(&self, timestamp: i64, offset: i64) {
        self.offset_of_max_timestamp
            .store(offset, Ordering::Release);
        self.max_timestamp.store(timestamp, Ordering::Release);
    }

    /// The `.log` file, opened on first use and then shared with readers.
    pub(crate) fn file(&self) -> Result<Arc<File>> {
        if let Some(file) = self.file.get() {
            return Ok(file.clone());
        }
        let path = self.log_path();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(LogError::io(&path))?;
        let _ = self.file.set(Arc::new(file));
        Ok(self.file.get().expect("file was just set").clone())
    }

    /// Read access to the indexes, loading them from their files first if needed.
    pub(crate) fn indexes(
        &self,
        index_interval_bytes: u64,
    ) -> Result<RwLockReadGuard<'_, Indexes>> {
        {
            let guard = self.indexes.read().expect("index lock");
            if guard.loaded {
                return Ok(guard);
            }
        }
        // Load without holding the lock; a concurrent loader's result is as good as ours.
        let loaded = self.load_indexes(index_interval_bytes)?;
        {
            let mut guard = self.indexes.write().expect("index lock");
            if !guard.loaded {
                if let Some(last) = loaded.time.last() {
                    self.observe_timestamp(
                        last.timestamp,
                        self.base_offset + i64::from(last.relative_offset),
                    );
                }
                *guard = loaded;
            }
        }
        Ok(self.indexes.read().expect("index lock"))
    }

    pub(crate) fn indexes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Indexes> {
        self.indexes.write().expect("index lock")
    }

    fn load_indexes(&self, index_interval_bytes: u64) -> Result<Indexes> {
        let size = self.size();
        let offset =
            read_optional(&self.index_path())?.and_then(|b| OffsetIndex::decode(&b, size.max(1)));
        let time = read_optional(&self.time_index_path())?.and_then(|b| TimeIndex::decode(&b));
        match (offset, time) {
            (Some(offset), Some(time)) => Ok(Indexes {
                loaded: true,
                offset,
                time,
            }),
            _ => {
                tracing::info!(segment = %self.log_path().display(), "rebuilding missing or inconsistent indexes");
                let outcome = self.scan(index_interval_bytes, false, self.base_offset)?;
                self.write_index_files(&outcome.indexes)?;
                Ok(outcome.indexes)
            }
        }
    }

    /// Rewrites both index files from `indexes`.
    pub(crate) fn write_index_files(&self, indexes: &Indexes) -> Result<()> {
        let mut bytes = Vec::with_capacity(indexes.offset.file_len() as usize);
        for entry in indexes.offset.entries() {
            OffsetIndex::encode_entry(*entry, &mut bytes);
        }
        let path = self.index_path();
        fs::write(&path, &bytes).map_err(LogError::io(&path))?;
        bytes.clear();
        for entry in indexes.time.entries() {
            TimeIndex::encode_entry(*entry, &mut bytes);
        }
        let path = self.time_index_path();
        fs::write(&path, &bytes).map_err(LogError::io(&path))
    }

    /// Scans every batch from the start, building fresh indexes. With `verify_crc` (recovery),
    /// stops at the first torn, corrupt or out-of-order batch; `first_offset_min` is the lowest
    /// base offset the first batch may have.
    pub(crate) fn scan(
        &self,
        index_interval_bytes: u64,
        verify_crc: bool,
        first_offset_min: i64,
    ) -> Result<ScanOutcome> {
        let file = self.file()?;
        let path = self.log_path();
        let file_len = file.metadata().map_err(LogError::io(&path))?.len();
        let mut reader = ChunkReader::new(&file, file_len, RECOVERY_CHUNK);
        let mut outcome = ScanOutcome {
            valid_bytes: 0,
            next_offset: None,
            stopped_by: None,
            indexes: Indexes {
                loaded: true,
                ..Indexes::default()
            },
            cursor: IndexCursor::default(),
        };
        let mut expected_min = first_offset_min;
        let mut position = 0u64;
        while position < file_len {
            let header = match reader.header_at(position).map_err(LogError::io(&path))? {
                Ok(header) => header,
                Err(err) => {
                    outcome.stopped_by = Some(err.to_string());
                    break;
                }
            };
            let size = header.total_size();
            if verify_crc {
                let bytes = reader
                    .get(position, size)
                    .map_err(LogError::io(&path))?
                    .unwrap_or(&[]);
                if !batch::validate_crc(bytes) {
                    let computed = if bytes.len() >= HEADER_SIZE {
                        batch::compute_crc(bytes)
                    } else {
                        0
                    };
                    outcome.stopped_by = Some(
                        BatchError::CrcMismatch {
                            position: position as usize,
                            stored: header.crc,
                            computed,
                        }
                        .to_string(),
                    );
                    break;
                }
            }
            let relative_last = header.last_offset() - self.base_offset;
            if header.base_offset < expected_min
                || !(0..=i64::from(i32::MAX)).contains(&relative_last)
            {
                outcome.stopped_by = Some(format!(
                    "batch at position {position} has offsets {}..={} out of order (expected at least {expected_min})",
                    header.base_offset,
                    header.last_offset()
                ));
                break;
            }
            add_index_entries(
                &mut outcome,
                &header,
                position,
                index_interval_bytes,
                self.base_offset,
            );
            position += size as u64;
            expected_min = header.next_offset();
            outcome.valid_bytes = position;
            outcome.next_offset = Some(expected_min);
        }
        if outcome.stopped_by.is_none() && position < file_len {
            outcome.stopped_by = Some("unreadable tail".to_string());
        }
        Ok(outcome)
    }

    /// Installs a scan's results as the segment's state.
    pub(crate) fn install_scan(&self, outcome: &mut ScanOutcome) {
        let indexes = std::mem::take(&mut outcome.indexes);
        *self.indexes_mut() = indexes;
        self.set_size(outcome.valid_bytes);
        self.reset_max_timestamp(
            outcome.cursor.max_timestamp,
            outcome.cursor.offset_of_max_timestamp,
        );
    }

    /// Position and header of the first batch whose last offset is `>= offset`, within the first
    /// `limit` bytes; `None` if every batch there ends before `offset`.
    pub(crate) fn find_batch(
        &self,
        offset: i64,
        limit: u64,
        index_interval_bytes: u64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let relative = u32::try_from((offset - self.base_offset).max(0)).unwrap_or(u32::MAX);
        let mut position = u64::from(self.indexes(index_interval_bytes)?.offset.lookup(relative));
        if position >= limit {
            position = 0;
        }
        let file = self.file()?;
        let mut reader = ChunkReader::new(&file, limit, HEADER_SCAN_CHUNK);
        while position < limit {
            let header = self.checked_header(&mut reader, position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// The last batch boundary in `[from, up_to]`, scanning from the nearest index entry.
    pub(crate) fn boundary_at_or_before(
        &self,
        from: u64,
        up_to: u64,
        limit: u64,
        index_interval_bytes: u64,
    ) -> Result<u64> {
        let floor = self
            .indexes(index_interval_bytes)?
            .offset
            .floor_position(u32::try_from(up_to).unwrap_or(u32::MAX));
        let mut position = u64::from(floor).max(from);
        let file = self.file()?;
        let mut reader = ChunkReader::new(&file, limit, HEADER_SCAN_CHUNK);
        while position < limit {
            let header = self.checked_header(&mut reader, position)?;
            let end = position + header.total_size() as u64;
            if end > up_to {
                break;
            }
            position = end;
        }
        Ok(position)
    }

    /// Calls `visit` with every batch header at or after `position` (no CRC check).
    pub(crate) fn for_each_header(
        &self,
        mut position: u64,
        mut visit: impl FnMut(u64, &BatchHeader),
    ) -> Result<()> {
        let limit = self.size();
        if position >= limit {
            return Ok(());
        }
        let file = self.file()?;
        let mut reader = ChunkReader::new(
            &file,
            limit,
            RECOVERY_CHUNK.min(limit as usize).max(HEADER_SIZE),
        );
        while position < limit {
            let header = self.checked_header(&mut reader, position)?;
            visit(position, &header);
            position += header.total_size() as u64;
        }
        Ok(())
    }

    /// The control record type of the control batch at `position` (reads its first bytes).
    pub(crate) fn control_type_at(
        &self,
        position: u64,
        header: &BatchHeader,
    ) -> Result<Option<batch::ControlType>> {
        if !header.is_control() {
            return Ok(None);
        }
        let len = header.total_size().min(HEADER_SIZE + 64);
        let mut buf = vec![0u8; len];
        let file = self.file()?;
        file.read_exact_at(&mut buf, position)
            .map_err(LogError::io(self.log_path()))?;
        Ok(batch::control_type(&buf))
    }

    fn checked_header(&self, reader: &mut ChunkReader<'_>, position: u64) -> Result<BatchHeader> {
        let path = self.log_path();
        reader
            .header_at(position)
            .map_err(LogError::io(&path))?
            .map_err(LogError::from)
    }

    /// Cuts the log file to `position` and drops index entries at or after it.
    pub(crate) fn truncate_to_position(
        &self,
        io: &dyn LogIo,
        position: u64,
        index_interval_bytes: u64,
    ) -> Result<()> {
        let file = self.file()?;
        io.set_len(&file, position)
            .map_err(LogError::io(self.log_path()))?;
        self.set_size(position);
        let mut outcome = self.scan(index_interval_bytes, false, i64::MIN)?;
        self.write_index_files(&outcome.indexes)?;
        self.install_scan(&mut outcome);
        Ok(())
    }

    /// Renames the segment's files to `*.deleted`; returns the new paths.
    pub(crate) fn rename_deleted(&self) -> Vec<PathBuf> {
        // Readers holding this segment keep reading through the open handle after the rename.
        let _ = self.file();
        let mut renamed = Vec::new();
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            let path = self.path_with(suffix);
            let mut target = path.clone().into_os_string();
            target.push(DELETED_SUFFIX);
            if fs::rename(&path, &target).is_ok() {
                renamed.push(PathBuf::from(target));
            }
        }
        renamed
    }
}

/// Decides where index entries go as batches are appended or scanned, with Kafka's rule: an
/// entry for a batch when more than `index.interval.bytes` were written since the last entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexCursor {
    pub(crate) bytes_since_last_index_entry: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: i64,
}

impl Default for IndexCursor {
    fn default() -> Self {
        IndexCursor {
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
        }
    }
}

impl IndexCursor {
    /// Accounts for the batch at `position` and returns the entries it earns, if any.
    pub(crate) fn observe(
        &mut self,
        header: &BatchHeader,
        position: u64,
        interval: u64,
        base_offset: i64,
    ) -> Option<(OffsetEntry, TimeEntry)> {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        let mut entries = None;
        if self.bytes_since_last_index_entry > interval {
            let offset_entry = OffsetEntry {
                relative_offset: (header.last_offset() - base_offset) as u32,
                position: position as u32,
            };
            let time_entry = TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (self.offset_of_max_timestamp - base_offset).max(0) as u32,
            };
            entries = Some((offset_entry, time_entry));
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.total_size() as u64;
        entries
    }
}

fn add_index_entries(
    outcome: &mut ScanOutcome,
    header: &BatchHeader,
    position: u64,
    interval: u64,
    base: i64,
) {
    if let Some((offset_entry, time_entry)) =
        outcome.cursor.observe(header, position, interval, base)
    {
        if outcome.indexes.offset.accepts(offset_entry) {
            outcome.indexes.offset.push(offset_entry);
        }
        outcome.indexes.time.maybe_push(time_entry);
    }
}

/// Writes a whole `.txnindex` file, or removes it for an empty list.
fn write_txn_index(path: &Path, entries: &[AbortedTxn]) -> Result<()> {
    if entries.is_empty() {
        return match fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(LogError::io(path)(err)),
            _ => Ok(()),
        };
    }
    let mut bytes = Vec::with_capacity(entries.len() * TXN_ENTRY_SIZE);
    for entry in entries {
        entry.encode(&mut bytes);
    }
    fs::write(path, &bytes).map_err(LogError::io(path))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(LogError::io(path)(err)),
    }
}

/// Positional reads through a reusable chunk, bounded by `limit` (the visible size).
pub(crate) struct ChunkReader<'a> {
    file: &'a File,
    limit: u64,
    chunk: Vec<u8>,
    chunk_start: u64,
    chunk_size: usize,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(file: &'a File, limit: u64, chunk_size: usize) -> ChunkReader<'a> {
        ChunkReader {
            file,
            limit,
            chunk: Vec::new(),
            chunk_start: 0,
            chunk_size,
        }
    }

    /// `len` bytes at `position`, or `None` if they lie past the limit.
    pub(crate) fn get(&mut self, position: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = position.saturating_add(len as u64);
        if end > self.limit {
            return Ok(None);
        }
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if position < self.chunk_start || end > chunk_end {
            let want = (self.limit - position).min(len.max(self.chunk_size) as u64) as usize;
            self.chunk.resize(want, 0);
            self.file.read_exact_at(&mut self.chunk, position)?;
            self.chunk_start = position;
        }
        let from = (position - self.chunk_start) as usize;
        Ok(Some(&self.chunk[from..from + len]))
    }

    /// The checked header of the batch at `position` (length within the limit, sane counts).
    pub(crate) fn header_at(
        &mut self,
        position: u64,
    ) -> io::Result<Result<BatchHeader, BatchError>> {
        let remaining = (self.limit - position.min(self.limit)) as usize;
        let Some(bytes) = self.get(position, HEADER_SIZE)? else {
            return Ok(Err(BatchError::TooShort {
                position: position as usize,
                remaining,
            }));
        };
        let header = match BatchHeader::parse(bytes) {
            Ok(header) => header,
            Err(BatchError::UnsupportedMagic { magic, .. }) => {
                return Ok(Err(BatchError::UnsupportedMagic {
                    position: position as usize,
                    magic,
                }))
            }
            Err(err) => return Ok(Err(err)),
        };
        Ok(batch::check_header(&header, position as usize, remaining).map(|()| header))
    }
}
