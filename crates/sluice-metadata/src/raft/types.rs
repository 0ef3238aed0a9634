//! The openraft type configuration of the metadata quorum: what a Raft log entry carries
//! ([`PlannedBatch`]), what applying one answers ([`ApplyOutcome`]), and the node identity
//! (Kafka's `node.id` as openraft's `u64` id, the controller's RPC address as its node info).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// Openraft's node id: a controller's Kafka `node.id` (never negative), widened to `u64`.
pub type NodeId = u64;

/// Openraft's node info: [`openraft::BasicNode::addr`] is the controller's RPC address,
/// `host:port`.
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// The metadata quorum's openraft type configuration.
    pub TypeConfig:
        D = PlannedBatch,
        R = ApplyOutcome,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A Raft log entry of the metadata log in openraft's terms.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id in openraft's terms.
pub type LogId = openraft::LogId<NodeId>;
/// A vote in openraft's terms.
pub type Vote = openraft::Vote<NodeId>;
/// A storage error in openraft's terms.
pub type StorageError = openraft::StorageError<NodeId>;

/// The payload of a normal Raft entry: records the leader planned (with
/// [`crate::controller::plan`], which draws random topic ids and placements, so planning
/// happens once, on the leader, and the outcome is what replicates).
///
/// Every voter applies the entry the same way: if `base_offset` is set and is not the offset
/// the next record of its image would get, the plan was made against an older image (a new
/// leader that had not applied its whole log yet) and the entry is skipped on every voter, so
/// the leader plans again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBatch {
    /// Offset of the first record, as the plan assumed it; `None` appends wherever the log is
    /// (bootstrap records, planned by nobody).
    pub base_offset: Option<i64>,
    /// The records, applied together or not at all.
    pub records: Vec<MetadataRecord>,
}

/// What applying one entry did; the leader's `client_write` hands it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    /// The records were applied with offsets `base_offset..=last_offset`.
    Applied {
        /// Offset of the first record.
        base_offset: i64,
        /// Offset of the last record.
        last_offset: i64,
    },
    /// Skipped: planned against an image older than the one it reached.
    Stale {
        /// The image's last offset when the entry was applied.
        image_offset: i64,
    },
    /// Skipped: the records did not replay onto the image (the reason).
    Refused(String),
    /// The entry carried no records (a leader's blank entry or a membership change).
    Nothing,
}
