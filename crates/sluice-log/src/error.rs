//! The storage layer's one error type and its mapping to Kafka error codes.

use std::io;
use std::path::PathBuf;

use sluice_proto::batch::BatchError;

/// Kafka error codes this crate can produce (from Kafka's `Errors` enum).
pub mod codes {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
}

/// Everything that can go wrong in a partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed its structural or CRC check.
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] BatchError),
    /// A batch is larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// The batches of one append are larger than a segment.
    #[error("{size} bytes of batches exceed segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u64 },
    /// A batch is well formed but breaks a rule (count, offsets, empty request...).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A batch timestamp lies outside the allowed window.
    #[error("timestamp {timestamp} is out of range at {now_ms}")]
    InvalidTimestamp { timestamp: i64, now_ms: i64 },
    /// An offset outside `[log start, log end]` was asked for.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A producer's sequence does not follow its last one.
    #[error("out of order sequence for producer {producer_id}: got {sequence}, expected after {last_sequence}")]
    OutOfOrderSequence {
        producer_id: i64,
        sequence: i32,
        last_sequence: i32,
    },
    /// A producer wrote with an epoch older than the current one (fenced).
    #[error("producer {producer_id} epoch {epoch} is older than current epoch {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    /// Reserved for producers whose state was lost (Kafka's pre-KIP-360 rule).
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    /// A follower append does not continue the log.
    #[error(
        "follower append at offset {first_offset} does not continue the log end {log_end_offset}"
    )]
    UnexpectedAppendOffset {
        first_offset: i64,
        log_end_offset: i64,
    },
    /// A file operation failed; the log may be offline.
    #[error("i/o error on {path:?}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The log was closed or deleted.
    #[error("log is closed")]
    Closed,
}

impl LogError {
    /// The Kafka error code a response should carry for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::CorruptBatch(BatchError::InvalidCompression(_)) => codes::CORRUPT_MESSAGE,
            LogError::CorruptBatch(BatchError::InconsistentCount { .. }) => codes::INVALID_RECORD,
            LogError::CorruptBatch(_) => codes::CORRUPT_MESSAGE,
            LogError::MessageTooLarge { .. } => codes::MESSAGE_TOO_LARGE,
            LogError::RecordListTooLarge { .. } => codes::RECORD_LIST_TOO_LARGE,
            LogError::InvalidRecord(_) => codes::INVALID_RECORD,
            LogError::InvalidTimestamp { .. } => codes::INVALID_TIMESTAMP,
            LogError::OffsetOutOfRange { .. } => codes::OFFSET_OUT_OF_RANGE,
            LogError::OutOfOrderSequence { .. } => codes::OUT_OF_ORDER_SEQUENCE_NUMBER,
            LogError::InvalidProducerEpoch { .. } => codes::INVALID_PRODUCER_EPOCH,
            LogError::UnknownProducerId(_) => codes::UNKNOWN_PRODUCER_ID,
            LogError::UnexpectedAppendOffset { .. } => codes::UNKNOWN_SERVER_ERROR,
            LogError::Io { .. } | LogError::Closed => codes::KAFKA_STORAGE_ERROR,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }
}

/// Result alias for this crate.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
