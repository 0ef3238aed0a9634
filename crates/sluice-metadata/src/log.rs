//! The durable metadata log of one controller: batches of [`MetadataRecord`]s appended with an
//! fsync before they count, and snapshots of the image that let the log start over. On a
//! one-voter quorum this is the whole story; the Raft layer of a larger quorum replicates the
//! same batches and keeps its own log beside it.
//!
//! Layout, in `<log dir>/__cluster_metadata-0/` as in Kafka:
//! - `metadata.log`: frames of `[u32 length][u32 crc32c][JSON batch]`, big-endian, where a batch
//!   is `{base_offset, epoch, records}` and record `i` has offset `base_offset + i`;
//! - `<offset>-<epoch>.checkpoint` (20 and 10 digits, Kafka's names): a snapshot, one frame
//!   holding every record that rebuilds the image up to `offset`.
//!
//! A torn or corrupt frame at the tail (a crash mid-append, before the fsync answered) is cut on
//! open; one in the middle is an error, since records after it were acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::image::{MetadataImage, ReplayError};
use crate::records::MetadataRecord;

/// The metadata log's directory name, Kafka's.
pub const METADATA_DIR: &str = "__cluster_metadata-0";
const LOG_FILE: &str = "metadata.log";
const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// Largest frame read back; bounds memory when a length field is corrupt.
const FRAME_BYTES_MAX: u32 = 256 << 20;
/// Kafka's default for `metadata.log.max.record.bytes.between.snapshots`.
pub const SNAPSHOT_BYTES_DEFAULT: u64 = 20 << 20;

/// What can go wrong with the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    /// A file operation failed.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The log or a snapshot is damaged where it cannot be a torn tail.
    #[error("metadata log {path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A batch does not apply to the image (refused before anything is written).
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

type Result<T> = std::result::Result<T, MetadataLogError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MetadataLogError + '_ {
    move |source| MetadataLogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One batch: records that commit together.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    base_offset: i64,
    epoch: i32,
    records: Vec<MetadataRecord>,
}

/// The metadata log.
#[derive(Debug)]
pub struct MetadataLog {
    /// `__cluster_metadata-0`.
    dir: PathBuf,
    /// The log file, opened for appending.
    file: File,
    /// Offset of the next record.
    next_offset: i64,
    /// The quorum epoch batches are written in.
    epoch: i32,
    /// Bytes appended since the last snapshot.
    bytes_since_snapshot: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    snapshot_bytes: u64,
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `log_dir` and rebuilds the image: the newest
    /// snapshot, then every batch after it.
    pub fn open(log_dir: &Path, snapshot_bytes: u64) -> Result<(MetadataLog, MetadataImage)> {
        let dir = log_dir.join(METADATA_DIR);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut image = MetadataImage::empty();
        let mut epoch = 0;
        if let Some((snapshot_offset, snapshot_epoch, path)) = snapshots(&dir)?.pop() {
            let bytes = fs::read(&path).map_err(io(&path))?;
            let (frame, _) = read_frame(&bytes, &path)?.ok_or_else(|| corrupt(&path, "empty"))?;
            let batch: Batch =
                serde_json::from_slice(frame).map_err(|e| corrupt(&path, &e.to_string()))?;
            replay(&mut image, &batch)?;
            image.offset = snapshot_offset;
            epoch = snapshot_epoch.max(batch.epoch);
        }
        let path = dir.join(LOG_FILE);
        let bytes_kept = replay_log(&path, &mut image, &mut epoch)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        if len > bytes_kept {
            tracing::warn!(path = %path.display(), cut = len - bytes_kept, "cut a torn tail off the metadata log");
            file.set_len(bytes_kept).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        let log = MetadataLog {
            dir,
            file,
            next_offset: image.offset + 1,
            epoch,
            bytes_since_snapshot: bytes_kept,
            snapshot_bytes: snapshot_bytes.max(1),
        };
        Ok((log, image))
    }

    /// The quorum epoch batches are written in.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Sets the quorum epoch of later batches (never lower).
    pub fn set_epoch(&mut self, epoch: i32) {
        self.epoch = self.epoch.max(epoch);
    }

    /// Offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Appends `records` as one batch: replays them into a copy of `image` first (a batch that
    /// does not apply is refused and nothing is written), writes and fsyncs, and returns the new
    /// image. Takes a snapshot when enough bytes have gone by since the last one.
    pub fn append(
        &mut self,
        image: &MetadataImage,
        records: Vec<MetadataRecord>,
    ) -> Result<MetadataImage> {
        if records.is_empty() {
            return Ok(image.clone());
        }
        let batch = Batch {
            base_offset: self.next_offset,
            epoch: self.epoch,
            records,
        };
        let mut next = image.clone();
        replay(&mut next, &batch)?;
        let frame = encode_frame(&batch);
        let path = self.dir.join(LOG_FILE);
        self.file.write_all(&frame).map_err(io(&path))?;
        self.file.sync_data().map_err(io(&path))?;
        self.next_offset += batch.records.len() as i64;
        self.bytes_since_snapshot += frame.len() as u64;
        if self.bytes_since_snapshot >= self.snapshot_bytes {
            self.snapshot(&next)?;
        }
        Ok(next)
    }

    /// Writes a snapshot of `image` and starts the log over after it. Crash-safe: the snapshot
    /// is durable before the log is emptied, and batches at or below a snapshot are skipped.
    pub fn snapshot(&mut self, image: &MetadataImage) -> Result<()> {
        if image.offset < 0 {
            return Ok(());
        }
        write_snapshot(&self.dir, image, self.epoch)?;
        let path = self.dir.join(LOG_FILE);
        let fresh = self.dir.join("metadata.log.new");
        let file = File::create(&fresh).map_err(io(&fresh))?;
        file.sync_all().map_err(io(&fresh))?;
        fs::rename(&fresh, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        self.bytes_since_snapshot = 0;
        remove_old_snapshots(&self.dir, image.offset);
        tracing::info!(offset = image.offset, "wrote a metadata snapshot");
        Ok(())
    }
}

/// Writes `image` as the snapshot `<offset>-<epoch>.checkpoint`: temp file, fsync, rename.
pub fn write_snapshot(dir: &Path, image: &MetadataImage, epoch: i32) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let records = image.to_records();
    let base_offset = image.offset + 1 - records.len() as i64;
    let frame = encode_frame(&Batch {
        base_offset,
        epoch,
        records,
    });
    let name = format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", image.offset, epoch);
    let tmp = dir.join(format!("{name}.part"));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&frame).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Replays a batch, record by record, into `image`; the snapshot's batch may start below zero
/// offsets it does not really hold, so only the last record's offset is meaningful there.
fn replay(image: &mut MetadataImage, batch: &Batch) -> Result<()> {
    for (i, record) in batch.records.iter().enumerate() {
        image.replay(record, batch.base_offset + i as i64)?;
    }
    Ok(())
}

/// Replays the log's batches above the image's offset; returns the length of the good prefix.
fn replay_log(path: &Path, image: &mut MetadataImage, epoch: &mut i32) -> Result<u64> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io(path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(path)(e)),
    }
    let mut at = 0usize;
    while let Some((frame, len)) = read_frame(&bytes[at..], path)? {
        let batch: Batch = match serde_json::from_slice(frame) {
            Ok(b) => b,
            // The CRC matched, so this is not a torn write: refuse rather than drop data.
            Err(e) => return Err(corrupt(path, &format!("batch at byte {at}: {e}"))),
        };
        let last = batch.base_offset + batch.records.len() as i64 - 1;
        if last > image.offset {
            if batch.base_offset != image.offset + 1 {
                return Err(corrupt(
                    path,
                    &format!(
                        "batch at byte {at} starts at offset {} after offset {}",
                        batch.base_offset, image.offset
                    ),
                ));
            }
            replay(image, &batch)?;
        }
        *epoch = (*epoch).max(batch.epoch);
        at += len;
    }
    Ok(at as u64)
}

/// The next whole, intact frame of `bytes` and its length; `None` at the end or at a torn tail.
/// A tail is torn when the bad frame reaches the end of the file, or only zeros follow it (a
/// crash after the file grew but before the data reached the disk). A bad frame with data after
/// it is corruption of acknowledged batches, reported rather than cut.
fn read_frame<'a>(bytes: &'a [u8], path: &Path) -> Result<Option<(&'a [u8], usize)>> {
    if bytes.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let end = 8 + len as usize;
    // Every batch encodes to a non-empty payload, so a zero length is unwritten space.
    if len > 0
        && len <= FRAME_BYTES_MAX
        && bytes.len() >= end
        && crc32c::crc32c(&bytes[8..end]) == crc
    {
        return Ok(Some((&bytes[8..end], end)));
    }
    let rest = bytes.get(end..).unwrap_or(&[]);
    if len == 0 || rest.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    Err(corrupt(
        path,
        &format!("a damaged frame ({len} bytes) is followed by more data"),
    ))
}

fn encode_frame(batch: &Batch) -> Vec<u8> {
    // Serialising plain data types to a Vec cannot fail.
    let payload = serde_json::to_vec(batch).unwrap_or_default();
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

fn corrupt(path: &Path, why: &str) -> MetadataLogError {
    MetadataLogError::Corrupt {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Snapshots in `dir` as (offset, epoch, path), oldest first.
fn snapshots(dir: &Path) -> Result<Vec<(i64, i32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) else {
            continue;
        };
        let Some((offset, epoch)) = stem.split_once('-') else {
            continue;
        };
        if let (Ok(o), Ok(e)) = (offset.parse(), epoch.parse()) {
            out.push((o, e, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn remove_old_snapshots(dir: &Path, keep_offset: i64) {
    if let Ok(list) = snapshots(dir) {
        for (offset, _, path) in list {
            if offset < keep_offset {
                let _ = fs::remove_file(path);
            }
        }
    }
}
