//! Leader-epoch cache: for each leader epoch, the first offset written in it, persisted in
//! `leader-epoch-checkpoint` (Kafka's text format). Followers use it, through
//! `OffsetForLeaderEpoch`, to find where their log diverges from the leader's.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::Result;

/// File name of the leader-epoch checkpoint inside a partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Epoch or offset meaning "unknown" in `OffsetForLeaderEpoch` answers.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Offset meaning "unknown" in `OffsetForLeaderEpoch` answers.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One epoch and the first offset its leader wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Epochs in increasing order with increasing start offsets.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`; a malformed file counts as empty (it is rebuilt by appends).
    pub fn load(dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let lines = checkpoint::read_lines(&path, 0)?.unwrap_or_default();
        let mut entries: Vec<EpochEntry> = Vec::with_capacity(lines.len());
        for line in lines {
            let mut fields = line.split_whitespace();
            let epoch = fields.next().and_then(|f| f.parse().ok());
            let start_offset = fields.next().and_then(|f| f.parse().ok());
            if let (Some(epoch), Some(start_offset)) = (epoch, start_offset) {
                let entry = EpochEntry {
                    epoch,
                    start_offset,
                };
                if entries
                    .last()
                    .is_none_or(|l| l.epoch < epoch && l.start_offset <= start_offset)
                {
                    entries.push(entry);
                }
            }
        }
        Ok(LeaderEpochCache { path, entries })
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest epoch.
    /// Returns whether the cache changed (the caller then persists it).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| latest >= epoch) {
            return false;
        }
        // Entries starting at or after this offset belong to a diverged history.
        self.entries.retain(|e| e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch `<= requested` and the end offset of that epoch
    /// (the start offset of the next epoch, or the log end offset for the latest epoch).
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> (i32, i64) {
        if requested_epoch == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return (requested_epoch, log_end_offset);
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested_epoch);
        let floor = self
            .entries
            .iter()
            .rev()
            .find(|e| e.epoch <= requested_epoch);
        match (floor, higher) {
            (_, None) => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            (None, Some(higher)) => (requested_epoch, higher.start_offset),
            (Some(floor), Some(higher)) => (floor.epoch, higher.start_offset),
        }
    }

    /// Drops epochs starting at or after `end_offset` (after a truncation of the log's tail).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops epochs wholly below `start_offset` and moves the first kept one up to it.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let first_kept = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(covering) = first_kept.checked_sub(1) else {
            return false;
        };
        let changed = covering > 0 || self.entries[covering].start_offset != start_offset;
        self.entries.drain(..covering);
        self.entries[0].start_offset = start_offset;
        changed
    }

    /// Forgets everything (the log was emptied).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Writes the checkpoint atomically.
    pub fn persist(&self) -> Result<()> {
        let lines = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset));
        checkpoint::write_atomic(&self.path, &checkpoint::encode_lines(0, lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path()).unwrap();
        for &(epoch, offset) in entries {
            assert!(cache.assign(epoch, offset));
        }
        (dir, cache)
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let (_dir, cache) = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(cache.end_offset_for(4, 40), (4, 40));
        assert_eq!(cache.end_offset_for(3, 40), (3, 25));
        assert_eq!(cache.end_offset_for(2, 40), (1, 10));
        assert_eq!(cache.end_offset_for(0, 40), (0, 0));
        assert_eq!(
            cache.end_offset_for(5, 40),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            cache.end_offset_for(-1, 40),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
    }

    #[test]
    fn assign_ignores_old_epochs_and_truncations_work() {
        let (dir, mut cache) = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(!cache.assign(3, 30));
        cache.truncate_from_end(25);
        assert_eq!(cache.latest_epoch(), Some(3));
        cache.truncate_from_start(12);
        assert_eq!(
            cache.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        cache.persist().unwrap();
        let loaded = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(loaded.entries(), cache.entries());
    }
}
