//! The metadata quorum of several controllers, on openraft: Kafka's KRaft in spirit (the
//! metadata log replicated by a Raft quorum of controllers), openraft's Raft underneath.
//!
//! - [`types`]: openraft's type configuration; a log entry carries a batch of records planned
//!   by the leader.
//! - [`store`]: the durable Raft log and vote (CRC frames, fsync before acknowledging).
//! - [`state_machine`]: applies committed batches to the metadata image; snapshots.
//! - [`network`]: the controllers' TCP RPC (Raft messages and forwarded requests).
//! - [`quorum`]: [`RaftQuorum`], the [`crate::quorum::MetadataQuorum`] of several voters.

mod durable;
pub mod network;
pub mod quorum;
pub mod state_machine;
pub mod store;
pub mod types;

pub use quorum::{RaftQuorum, RaftQuorumError, RaftQuorumOptions, RaftStatus, RaftVoterStatus};
