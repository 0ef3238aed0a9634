//! Sluice's storage engine: partition logs in Kafka's on-disk layout.
//!
//! A [`LogManager`] owns one log directory and its checkpoint files; each partition is a
//! [`Log`] in `<topic>-<partition>/`, made of segments (`<base offset>.log` with `.index`,
//! `.timeindex` and, once a transaction aborts in it, `.txnindex`), a `leader-epoch-checkpoint`
//! and producer-state `.snapshot` files. Batches are stored exactly as received (record batch
//! v2), with the base offset and leader epoch the leader stamped on them, either in place or, for
//! a caller's immutable buffer, in copies of the headers written beside it. Reads return file
//! slices that a network layer can hand to sendfile.
//!
//! This crate knows nothing of sockets or Kafka request types; errors map to Kafka error codes
//! through [`LogError::kafka_error_code`].

mod append;
mod checkpoint;
pub mod config;
pub mod epoch;
pub mod error;
pub mod index;
pub mod io;
mod log;
pub mod manager;
pub mod producer;
mod segment;
pub mod txn_index;

pub use crate::config::LogConfig;
pub use crate::error::{LogError, Result};
pub use crate::io::{FaultyIo, LogIo, OsIo};
pub use crate::log::{
    now_ms, AppendInfo, AppendOutcome, FileSlice, Log, LogOpenOptions, ReadInfo, RecoveryReport,
    SegmentInfo, TimestampOffset,
};
pub use crate::manager::{LogManager, TopicPartition};
pub use crate::producer::{AppendOrigin, BatchMetadata, ProducerStateEntry, ProducerStateManager};
pub use crate::txn_index::AbortedTxn;
