//! The state machine of the metadata quorum ([`StateMachine`], openraft's `RaftStateMachine`):
//! applies committed entries to the [`MetadataImage`], publishes each new image to the quorum,
//! and builds, persists and installs snapshots of the image (`image.to_records()` plus the last
//! record offset).
//!
//! The image itself is not written on every apply: on restart it is rebuilt from the newest
//! snapshot (`<node dir>/raft/snapshot`, one CRC frame, replaced atomically) and the committed
//! entries of the Raft log after it, which openraft applies again.
//!
//! A snapshot is asked for (through [`SnapshotTrigger`]) once the applied records since the last
//! one reach the configured byte count, Kafka's
//! `metadata.log.max.record.bytes.between.snapshots`; the quorum then calls openraft's
//! `trigger_snapshot`, and openraft purges the log behind it.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use super::durable;
use super::types::{
    ApplyOutcome, Entry, LogId, Node, NodeId, PlannedBatch, StorageError, TypeConfig,
};
use crate::image::{MetadataImage, ReplayError};
use crate::records::MetadataRecord;

const SNAPSHOT_FILE: &str = "snapshot";

/// A snapshot's data, as sent to a follower: every record that rebuilds the image, and the
/// offset of the last record the image had applied.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    /// The image's last record offset.
    offset: i64,
    /// `image.to_records()`.
    records: Vec<MetadataRecord>,
}

/// The snapshot file: openraft's metadata (last log id, membership) and the body.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    body: SnapshotBody,
}

/// Wakes the quorum's snapshot task when enough record bytes were applied since the last
/// snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotTrigger {
    /// Signalled when a snapshot is due.
    due: Arc<Notify>,
    /// Bytes of records (JSON) applied since the last snapshot.
    bytes_since_snapshot: Arc<AtomicU64>,
}

impl SnapshotTrigger {
    /// Waits until a snapshot is due.
    pub async fn wait(&self) {
        self.due.notified().await;
    }
}

/// Entries of the Raft log remembered in [`OffsetIndex`] (older ones are forgotten).
pub const OFFSET_INDEX_ENTRIES_MAX: usize = 4096;

/// Maps recent Raft log indexes to metadata record offsets: for DescribeQuorum, which reports
/// each voter's log end in record offsets while openraft tracks Raft log indexes.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    inner: Arc<Mutex<OffsetIndexInner>>,
}

#[derive(Debug, Default)]
struct OffsetIndexInner {
    /// Raft index of an applied entry that added records → the record offset after it.
    ends: BTreeMap<u64, i64>,
    /// The map is complete from this Raft index on (0: from the start of the log).
    known_from: u64,
}

impl OffsetIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetIndexInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, index: u64, end_offset: i64) {
        let mut inner = self.lock();
        inner.ends.insert(index, end_offset);
        while inner.ends.len() > OFFSET_INDEX_ENTRIES_MAX {
            inner.ends.pop_first();
            inner.known_from = inner.ends.first_key_value().map_or(index, |(i, _)| *i);
        }
    }

    fn reset(&self, index: u64, end_offset: i64) {
        let mut inner = self.lock();
        inner.ends.clear();
        inner.ends.insert(index, end_offset);
        inner.known_from = index;
    }

    /// The record offset after the Raft log up to `index` (the next record offset a voter
    /// holding that log would write); `None` when `index` is older than what is remembered.
    pub fn end_offset_at(&self, index: u64) -> Option<i64> {
        let inner = self.lock();
        if index < inner.known_from {
            return None;
        }
        let end = inner.ends.range(..=index).next_back().map(|(_, end)| *end);
        // Nothing at or before `index` in a map complete from the start: no records yet.
        Some(end.unwrap_or(0))
    }
}

/// What [`StateMachine::open`] hands back besides the state machine.
#[derive(Debug)]
pub struct Opened {
    /// The state machine, for openraft.
    pub state_machine: StateMachine,
    /// Every image the state machine applies.
    pub images: watch::Receiver<Arc<MetadataImage>>,
    /// Signals when a snapshot is due.
    pub trigger: SnapshotTrigger,
    /// Raft index → record offset.
    pub offsets: OffsetIndex,
}

/// The metadata image as openraft's state machine.
#[derive(Debug)]
pub struct StateMachine {
    /// `<node dir>/raft/snapshot`.
    snapshot_path: PathBuf,
    /// The image after the last applied entry.
    image: Arc<MetadataImage>,
    /// The last applied entry.
    last_applied: Option<LogId>,
    /// The last membership applied.
    membership: StoredMembership<NodeId, Node>,
    /// Where each new image is published.
    published: watch::Sender<Arc<MetadataImage>>,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    snapshot_bytes: u64,
    /// Shared with the quorum's snapshot task.
    trigger: SnapshotTrigger,
    /// Raft index → record offset, shared with the quorum.
    offsets: OffsetIndex,
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, AnyError::new(&e)).into()
}

/// Rebuilds an image from a snapshot body.
fn image_from(body: &SnapshotBody) -> Result<MetadataImage, ReplayError> {
    let mut image = MetadataImage::empty();
    // Snapshot records have no offsets of their own; only the last one is meaningful.
    let base = body.offset + 1 - body.records.len() as i64;
    for (i, record) in body.records.iter().enumerate() {
        image.replay(record, base + i as i64)?;
    }
    image.offset = body.offset;
    Ok(image)
}

fn read_snapshot(path: &Path) -> io::Result<Option<StoredSnapshot>> {
    match durable::read_file(path)? {
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        None => Ok(None),
    }
}

fn write_snapshot(path: &Path, stored: &StoredSnapshot) -> io::Result<()> {
    let payload = serde_json::to_vec(stored).map_err(io::Error::other)?;
    durable::replace_file(path, &payload)
}

impl StateMachine {
    /// Opens the state machine of the voter in `node_dir`: the image of its newest snapshot, or
    /// an empty one.
    pub fn open(node_dir: &Path, snapshot_bytes: u64) -> io::Result<Opened> {
        let dir = node_dir.join("raft");
        std::fs::create_dir_all(&dir)?;
        let snapshot_path = dir.join(SNAPSHOT_FILE);
        let (image, last_applied, membership) = match read_snapshot(&snapshot_path)? {
            Some(stored) => {
                let image = image_from(&stored.body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                (image, stored.meta.last_log_id, stored.meta.last_membership)
            }
            None => (MetadataImage::empty(), None, StoredMembership::default()),
        };
        let image = Arc::new(image);
        let (published, receiver) = watch::channel(image.clone());
        let trigger = SnapshotTrigger::default();
        let offsets = OffsetIndex::default();
        if let Some(applied) = &last_applied {
            offsets.reset(applied.index, image.offset + 1);
        }
        let sm = StateMachine {
            snapshot_path,
            image,
            last_applied,
            membership,
            published,
            snapshot_bytes: snapshot_bytes.max(1),
            trigger: trigger.clone(),
            offsets: offsets.clone(),
        };
        Ok(Opened {
            state_machine: sm,
            images: receiver,
            trigger,
            offsets,
        })
    }

    fn apply_batch(&mut self, batch: &PlannedBatch) -> ApplyOutcome {
        if batch.records.is_empty() {
            return ApplyOutcome::Nothing;
        }
        let base = self.image.offset + 1;
        if batch.base_offset.is_some_and(|b| b != base) {
            return ApplyOutcome::Stale {
                image_offset: self.image.offset,
            };
        }
        // Apply to a copy: a batch that does not replay leaves the image as it was, the same on
        // every voter.
        let mut next = MetadataImage::clone(&self.image);
        for (i, record) in batch.records.iter().enumerate() {
            if let Err(e) = next.replay(record, base + i as i64) {
                tracing::error!(error = %e, "a committed metadata batch does not apply; skipped");
                return ApplyOutcome::Refused(e.to_string());
            }
        }
        let last = base + batch.records.len() as i64 - 1;
        self.image = Arc::new(next);
        let bytes = serde_json::to_vec(&batch.records).map_or(0, |v| v.len() as u64);
        let total = self
            .trigger
            .bytes_since_snapshot
            .fetch_add(bytes, Ordering::Relaxed)
            + bytes;
        if total >= self.snapshot_bytes {
            self.trigger.due.notify_one();
        }
        ApplyOutcome::Applied {
            base_offset: base,
            last_offset: last,
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Node>), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let outcome = match &entry.payload {
                EntryPayload::Blank => ApplyOutcome::Nothing,
                EntryPayload::Normal(batch) => {
                    let outcome = self.apply_batch(batch);
                    if let ApplyOutcome::Applied { last_offset, .. } = outcome {
                        self.offsets.record(entry.log_id.index, last_offset + 1);
                    }
                    outcome
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    ApplyOutcome::Nothing
                }
            };
            out.push(outcome);
        }
        self.published.send_replace(self.image.clone());
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            snapshot_path: self.snapshot_path.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            bytes_since_snapshot: self.trigger.bytes_since_snapshot.clone(),
            bytes_covered: self.trigger.bytes_since_snapshot.load(Ordering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let body: SnapshotBody = serde_json::from_slice(&bytes).map_err(read_err)?;
        let image = image_from(&body).map_err(read_err)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            body,
        };
        write_snapshot(&self.snapshot_path, &stored).map_err(write_err)?;
        tracing::info!(snapshot = %meta, offset = image.offset, "installed a metadata snapshot");
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.trigger
            .bytes_since_snapshot
            .store(0, Ordering::Relaxed);
        if let Some(applied) = &meta.last_log_id {
            self.offsets.reset(applied.index, self.image.offset + 1);
        }
        self.published.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(stored) = read_snapshot(&self.snapshot_path).map_err(read_err)? else {
            return Ok(None);
        };
        let data = serde_json::to_vec(&stored.body).map_err(read_err)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot of the image as it was when openraft asked for the builder.
#[derive(Debug)]
pub struct SnapshotBuilder {
    snapshot_path: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, Node>,
    /// Shared with the state machine.
    bytes_since_snapshot: Arc<AtomicU64>,
    /// The bytes this snapshot covers, subtracted once it is written.
    bytes_covered: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let body = SnapshotBody {
            offset: self.image.offset,
            records: self.image.to_records(),
        };
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let snapshot_id = match &self.last_applied {
            Some(id) => format!("{}-{}-{millis}", id.leader_id.term, id.index),
            None => format!("0-0-{millis}"),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, body };
        write_snapshot(&self.snapshot_path, &stored).map_err(write_err)?;
        let covered = self.bytes_covered;
        // Applies that went on meanwhile stay counted toward the next snapshot.
        let _ = self
            .bytes_since_snapshot
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(covered))
            });
        tracing::info!(snapshot = %stored.meta, offset = stored.body.offset, "wrote a metadata snapshot");
        let data = serde_json::to_vec(&stored.body).map_err(write_err)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
