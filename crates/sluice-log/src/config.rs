//! Per-log configuration, with Kafka's topic-level names and defaults.

use sluice_proto::batch::TimestampType;

/// Configuration of one partition log. Field names follow Kafka's topic configs
/// (`segment.bytes` → `segment_bytes`), defaults are Kafka's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `segment.jitter.ms`: up to this much is subtracted from `segment_ms` per segment, so that
    /// many partitions created together do not all roll at once.
    pub segment_jitter_ms: i64,
    /// `index.interval.bytes`: bytes of batches between two offset-index entries.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: maximum size of an offset index; a full index rolls the segment.
    pub segment_index_bytes: u64,
    /// `max.message.bytes`: largest batch accepted from a producer.
    pub max_message_bytes: usize,
    /// `flush.messages`: fsync after this many appended records (default: never).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when the oldest unflushed append is older than this (default: never).
    pub flush_ms: i64,
    /// `message.timestamp.type`: keep the producer's timestamps or stamp the append time.
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: how far in the past a batch timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: how far in the future a batch timestamp may be.
    pub message_timestamp_after_max_ms: i64,
    /// `file.delete.delay.ms`: how long `.deleted` files stay before they are removed.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_jitter_ms: 0,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            max_message_bytes: 1024 * 1024 + 12,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

impl LogConfig {
    /// Most entries an offset index may hold before the segment must roll.
    pub fn max_index_entries(&self) -> usize {
        usize::try_from(self.segment_index_bytes / crate::index::OFFSET_ENTRY_SIZE as u64)
            .unwrap_or(usize::MAX)
            .max(1)
    }
}
