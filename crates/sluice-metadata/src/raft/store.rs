//! The durable Raft log and vote of one voter ([`LogStore`], openraft's `RaftLogStorage`).
//!
//! Layout, in `<node dir>/raft/`:
//! - `raft.log`: CRC frames (the `durable` module), each a JSON `LogOp`: an entry appended,
//!   a truncation of the conflicting tail, or the purge point. Appends are fsynced before
//!   openraft is told they are flushed (and so before the voter acknowledges them to a leader).
//!   A purge (after a snapshot) rewrites the file with the entries it keeps, so the file does not
//!   grow without bound.
//! - `vote`: the last vote, one frame, replaced atomically and fsynced before it counts.
//! - `committed`: the last committed log id, one frame, replaced by rename but not fsynced: it
//!   is a hint that lets a restarted voter apply its committed entries at once, before it hears
//!   from a leader. A lost or stale hint only means less is applied at start; a damaged one is
//!   ignored.
//!
//! Entries are also held in memory (the metadata log is small and purged behind snapshots), so
//! reads never touch the file.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::durable;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";

/// One change to the Raft log, as written to `raft.log`.
#[derive(Debug, Serialize, Deserialize)]
enum LogOp {
    /// An entry appended at its index (replacing nothing: conflicts are truncated first).
    Entry(Entry),
    /// Entries at this index and above were removed (a conflicting tail).
    TruncateSince(u64),
    /// Entries up to and including this log id were removed (covered by a snapshot).
    Purged(LogId),
}

/// The Raft log and vote of one voter; clones share the same log (openraft reads through a
/// clone while it appends through another).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    /// `raft.log`.
    log_path: PathBuf,
    /// `vote`.
    vote_path: PathBuf,
    /// `committed`.
    committed_path: PathBuf,
    /// `raft.log`, opened for appending.
    file: File,
    /// Every entry not purged, by index.
    entries: BTreeMap<u64, Entry>,
    /// The last purged entry's id.
    last_purged: Option<LogId>,
    /// The last vote saved.
    vote: Option<Vote>,
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn vote_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_vote(AnyError::new(&e)).into()
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

impl LogStore {
    /// Opens (or creates) the Raft log under `node_dir/raft`, cutting a torn tail.
    pub fn open(node_dir: &Path) -> io::Result<LogStore> {
        let dir = node_dir.join("raft");
        fs::create_dir_all(&dir)?;
        let log_path = dir.join(LOG_FILE);
        let vote_path = dir.join(VOTE_FILE);
        let mut bytes = Vec::new();
        match File::open(&log_path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let frames = durable::decode_all(&bytes)?;
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        for payload in &frames.payloads {
            let op: LogOp = serde_json::from_slice(payload).map_err(|e| invalid(&log_path, e))?;
            match op {
                LogOp::Entry(entry) => {
                    entries.insert(entry.log_id.index, entry);
                }
                LogOp::TruncateSince(index) => {
                    entries.split_off(&index);
                }
                LogOp::Purged(log_id) => {
                    entries = entries.split_off(&(log_id.index + 1));
                    last_purged = Some(log_id);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let len = file.metadata()?.len();
        if len > frames.good_bytes as u64 {
            tracing::warn!(path = %log_path.display(), cut = len - frames.good_bytes as u64, "cut a torn tail off the raft log");
            file.set_len(frames.good_bytes as u64)?;
            file.sync_all()?;
        }
        durable::sync_parent(&log_path)?;
        let vote = match durable::read_file(&vote_path)? {
            Some(bytes) => {
                Some(serde_json::from_slice(&bytes).map_err(|e| invalid(&vote_path, e))?)
            }
            None => None,
        };
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                log_path,
                vote_path,
                committed_path: dir.join(COMMITTED_FILE),
                file,
                entries,
                last_purged,
                vote,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // Nothing in LogInner is left half-changed across a panic that matters: the file is the
        // truth and is reread on the next open.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LogInner {
    /// Appends framed ops and fsyncs.
    fn write_ops(&mut self, ops: &[LogOp]) -> io::Result<()> {
        let mut buf = Vec::new();
        for op in ops {
            let payload = serde_json::to_vec(op).map_err(io::Error::other)?;
            buf.extend(durable::encode(&payload)?);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()
    }

    /// Rewrites `raft.log` with the purge point and the kept entries (temp file, fsync, rename).
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        if let Some(purged) = &self.last_purged {
            let payload = serde_json::to_vec(&LogOp::Purged(*purged)).map_err(io::Error::other)?;
            buf.extend(durable::encode(&payload)?);
        }
        for entry in self.entries.values() {
            let payload = serde_json::to_vec(&LogOpRef::Entry(entry)).map_err(io::Error::other)?;
            buf.extend(durable::encode(&payload)?);
        }
        let mut tmp_name = self.log_path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.log_path)?;
        durable::sync_parent(&self.log_path)?;
        self.file = OpenOptions::new().append(true).open(&self.log_path)?;
        Ok(())
    }
}

/// [`LogOp`] by reference, for writing entries without cloning them; same JSON shape.
#[derive(Serialize)]
enum LogOpRef<'a> {
    Entry(&'a Entry),
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let payload = serde_json::to_vec(vote).map_err(vote_err)?;
        durable::replace_file(&inner.vote_path, &payload).map_err(vote_err)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let inner = self.lock();
        let written = serde_json::to_vec(&committed)
            .map_err(io::Error::other)
            .and_then(|payload| {
                let frame = durable::encode(&payload)?;
                let mut tmp_name = inner.committed_path.as_os_str().to_owned();
                tmp_name.push(".tmp");
                let tmp = PathBuf::from(tmp_name);
                fs::write(&tmp, frame)?;
                fs::rename(&tmp, &inner.committed_path)
            });
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not save the committed hint");
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let inner = self.lock();
        let hint = durable::read_file(&inner.committed_path)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Option<LogId>>(&bytes).ok())
            .flatten();
        // Only a hint the log still backs is worth anything.
        Ok(hint.filter(|c| {
            inner.entries.get(&c.index).is_some_and(|e| e.log_id == *c)
                || inner.last_purged.is_some_and(|p| p.index >= c.index)
        }))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let ops: Vec<LogOp> = entries.into_iter().map(LogOp::Entry).collect();
        match inner.write_ops(&ops) {
            Ok(()) => {
                for op in ops {
                    if let LogOp::Entry(entry) = op {
                        inner.entries.insert(entry.log_id.index, entry);
                    }
                }
                drop(inner);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                let message = e.to_string();
                callback.log_io_completed(Err(e));
                Err(write_err(io::Error::new(kind, message)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner
            .write_ops(&[LogOp::TruncateSince(log_id.index)])
            .map_err(write_err)?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let kept = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = kept;
        inner.last_purged = Some(log_id);
        inner.rewrite().map_err(write_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn reopen_keeps_entries_vote_truncation_and_purge_and_cuts_a_torn_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(tmp.path()).unwrap();
        let ops: Vec<LogOp> = (1..=5).map(|i| LogOp::Entry(entry(1, i))).collect();
        store.lock().write_ops(&ops).unwrap();
        for op in ops {
            if let LogOp::Entry(e) = op {
                store.lock().entries.insert(e.log_id.index, e);
            }
        }
        store.truncate(entry(1, 5).log_id).await.unwrap();
        store.purge(entry(1, 2).log_id).await.unwrap();
        let vote = Vote::new(3, 2);
        store.save_vote(&vote).await.unwrap();
        store
            .save_committed(Some(entry(1, 4).log_id))
            .await
            .unwrap();
        drop(store);

        // A crash mid-append: half a frame at the tail.
        let log = tmp.path().join("raft").join(LOG_FILE);
        let whole = fs::metadata(&log).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        let torn = durable::encode(b"{\"Entry\": null}").unwrap();
        f.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(f);

        let mut store = LogStore::open(tmp.path()).unwrap();
        assert_eq!(indexes(&store), vec![3, 4]);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(entry(1, 4).log_id)
        );
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 2).log_id));
        assert_eq!(state.last_log_id, Some(entry(1, 4).log_id));
        assert_eq!(fs::metadata(&log).unwrap().len(), whole);
    }
}
