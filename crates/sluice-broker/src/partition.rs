//! A partition this broker leads: its log, high watermark and leader epoch. The one place the
//! broker calls the storage engine, so handlers speak in Kafka terms only.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, RwLock};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use sluice_log::AppendOutcome;
use sluice_proto::batch::{BatchIter, CompressionCodec, TimestampType};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::ApiError;
use crate::topic_config::TopicConfig;

/// Outcome of a successful append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    /// Offset of the first record written (or of the original write, for a duplicate).
    pub base_offset: i64,
    /// One past the last offset written: `acks=all` waits until the high watermark reaches it.
    pub end_offset: i64,
    /// Broker time stamped on the batches for `LogAppendTime` topics, else -1.
    pub log_append_time_ms: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
}

/// One partition.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// The partition's log, shared with the log manager (checkpoints, shutdown).
    log: Arc<sluice_log::Log>,
    /// Topic settings the append path reads; replaced when the topic's config changes.
    settings: RwLock<Settings>,
    /// Woken whenever the high watermark advances (parked `acks=all` produces wait on it).
    high_watermark_advanced: Notify,
    /// The leader epoch from the metadata image, stamped on every batch this leader writes.
    leader_epoch: AtomicI32,
    /// Whether this broker leads the partition (from the metadata image).
    leader: AtomicBool,
    /// Size of the in-sync replica set (from the metadata image).
    isr_len: AtomicI32,
}

/// Translates topic configs into the log's settings.
pub fn log_config(config: &TopicConfig) -> sluice_log::LogConfig {
    let ts_type = if config.string("message.timestamp.type") == "LogAppendTime" {
        TimestampType::LogAppendTime
    } else {
        TimestampType::CreateTime
    };
    sluice_log::LogConfig {
        segment_bytes: config.long("segment.bytes", 1 << 30) as u64,
        segment_ms: config.long("segment.ms", 604_800_000),
        segment_jitter_ms: config.long("segment.jitter.ms", 0),
        index_interval_bytes: config.long("index.interval.bytes", 4096) as u64,
        segment_index_bytes: config.long("segment.index.bytes", 10 << 20) as u64,
        max_message_bytes: config.long("max.message.bytes", 1_048_588) as usize,
        flush_messages: config.long("flush.messages", i64::MAX),
        flush_ms: config.long("flush.ms", i64::MAX),
        message_timestamp_type: ts_type,
        message_timestamp_before_max_ms: config.long("message.timestamp.before.max.ms", i64::MAX),
        message_timestamp_after_max_ms: config.long("message.timestamp.after.max.ms", i64::MAX),
        file_delete_delay_ms: config.long("file.delete.delay.ms", 60_000),
    }
}

/// The codec a topic's `compression.type` forces, or `None` for `producer` (keep the producer's).
fn topic_compression(name: &str) -> Option<Compression> {
    Some(match name {
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

fn codec_matches(codec: CompressionCodec, target: Compression) -> bool {
    matches!(
        (codec, target),
        (CompressionCodec::None, Compression::None)
            | (CompressionCodec::Gzip, Compression::Gzip)
            | (CompressionCodec::Snappy, Compression::Snappy)
            | (CompressionCodec::Lz4, Compression::Lz4)
            | (CompressionCodec::Zstd, Compression::Zstd)
    )
}

/// Re-encodes batches whose codec differs from the topic's `compression.type`, keeping offsets
/// deltas, timestamps and producer fields. `None` when every batch already matches (the common
/// case, which costs one pass over the batch headers).
fn recompress(records: &Bytes, target: Compression) -> Result<Option<BytesMut>, ApiError> {
    let corrupt = |e: String| ApiError::new(ResponseError::CorruptMessage, e);
    let mut batches = Vec::new();
    let mut all_match = true;
    for item in BatchIter::new(records) {
        let (header, range) = item.map_err(|e| corrupt(e.to_string()))?;
        let codec = header.compression().map_err(|e| corrupt(e.to_string()))?;
        all_match &= codec_matches(codec, target) || header.is_control();
        batches.push((codec, range, header.is_control()));
    }
    if all_match {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for (codec, range, control) in batches {
        if control || codec_matches(codec, target) {
            out.extend_from_slice(&records[range]);
            continue;
        }
        let mut slice = records.slice(range.clone());
        let set = RecordBatchDecoder::decode(&mut slice).map_err(|e| corrupt(e.to_string()))?;
        if set.records.is_empty() {
            out.extend_from_slice(&records[range]);
            continue;
        }
        let options = RecordEncodeOptions {
            version: 2,
            compression: target,
        };
        RecordBatchEncoder::encode(&mut out, set.records.iter(), &options)
            .map_err(|e| corrupt(format!("cannot recompress: {e}")))?;
    }
    Ok(Some(out))
}

/// The topic settings the append path needs, derived from the topic config.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Whether the topic is compacted (records need keys).
    compacted: bool,
    /// The topic's `compression.type` when it is not `producer`: batches in another codec are
    /// recompressed before they are written.
    compression: Option<Compression>,
    /// `min.insync.replicas`: `acks=all` writes need at least this many in-sync replicas.
    min_insync_replicas: i64,
}

impl Settings {
    fn from_config(config: &TopicConfig) -> Settings {
        Settings {
            compacted: config.is_compacted(),
            compression: topic_compression(config.string("compression.type")),
            min_insync_replicas: config.long("min.insync.replicas", 1),
        }
    }
}

/// Checks that every record of every batch has a key (compacted topics), decoding the batches.
/// Each keyless record is reported by its index in its batch, as Kafka's `record_errors`.
fn check_keys_present(records: &Bytes) -> Result<(), ApiError> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf)
        .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
    let mut keyless = Vec::new();
    for set in sets {
        for (i, r) in set.records.iter().enumerate() {
            if r.key.is_none() && !r.control {
                keyless.push(i as i32);
            }
        }
    }
    if keyless.is_empty() {
        return Ok(());
    }
    let message = "Compacted topic cannot accept message without key.";
    Err(
        ApiError::new(ResponseError::InvalidRecord, message).with_record_errors(
            keyless
                .into_iter()
                .map(|i| (i, message.to_string()))
                .collect(),
        ),
    )
}

impl Partition {
    /// Wraps the partition's log and records the topic id beside it (`partition.metadata`).
    pub fn new(
        log: Arc<sluice_log::Log>,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: &TopicConfig,
    ) -> Result<Partition, ApiError> {
        let meta = log.dir().join("partition.metadata");
        if !meta.exists() {
            std::fs::write(&meta, format!("version: 0\ntopic_id: {topic_id}\n"))?;
        }
        // As Kafka's leader does on taking leadership with itself the only in-sync replica, the
        // high watermark starts at the log end: after a crash the checkpointed one may be stale,
        // and records the log recovered would otherwise stay unreadable until the next append.
        log.set_high_watermark(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log,
            settings: RwLock::new(Settings::from_config(config)),
            high_watermark_advanced: Notify::new(),
            leader_epoch: AtomicI32::new(0),
            leader: AtomicBool::new(true),
            isr_len: AtomicI32::new(1),
        })
    }

    fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a changed topic configuration to the append path and the log.
    pub fn apply_config(&self, config: &TopicConfig) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Settings::from_config(config);
        self.log.set_config(log_config(config));
    }

    /// The current leader epoch, as the metadata image has it.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Takes the role, leader epoch and ISR of a newly published image for node `node`.
    /// Epochs never move backwards.
    pub fn apply_image(&self, node: i32, image: &sluice_metadata::PartitionImage) {
        self.leader_epoch
            .fetch_max(image.leader_epoch, Ordering::AcqRel);
        self.leader.store(image.leader == node, Ordering::Release);
        self.isr_len
            .store(image.isr.len() as i32, Ordering::Release);
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// The log.
    pub fn log(&self) -> &Arc<sluice_log::Log> {
        &self.log
    }

    /// Validates and appends a producer's record batches as leader. A batch the producer already
    /// wrote (an idempotent retry) is acknowledged with its original offset and not written again.
    pub fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, ApiError> {
        let settings = self.settings();
        if settings.compacted {
            check_keys_present(records)?;
        }
        // The request's bytes are shared and immutable and are written as they are, beside
        // stamped copies of the batch headers; only recompressed batches, new bytes of our
        // own, are stamped in place.
        let recompressed = match settings.compression {
            Some(target) => recompress(records, target)?,
            None => None,
        };
        let leader_epoch = self.leader_epoch();
        let outcome = match recompressed {
            Some(mut buf) => self.log.append_as_leader(&mut buf, leader_epoch, now_ms)?,
            None => self
                .log
                .append_shared_as_leader(records, leader_epoch, now_ms)?,
        };
        let appended = match outcome {
            AppendOutcome::Appended(info) => {
                self.flush_if_due(info.flush_due);
                Appended {
                    base_offset: info.first_offset,
                    end_offset: info.last_offset + 1,
                    log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
                    log_start_offset: info.log_start_offset,
                }
            }
            AppendOutcome::Duplicate {
                first_offset,
                log_start_offset,
                last_offset,
                ..
            } => Appended {
                base_offset: first_offset,
                end_offset: last_offset + 1,
                log_append_time_ms: -1,
                log_start_offset,
            },
        };
        self.advance_high_watermark();
        Ok(appended)
    }

    /// Starts a flush off the caller's thread when `flush.messages` / `flush.ms` say one is due
    /// (fsync never runs on an async worker).
    fn flush_if_due(&self, due: bool) {
        if due {
            let log = self.log.clone();
            std::thread::spawn(move || {
                if let Err(e) = log.flush() {
                    tracing::error!(error = %e, "flush failed");
                }
            });
        }
    }

    /// With the leader alone in sync the high watermark is the log end offset; parked
    /// `acks=all` produces are woken. With followers in the ISR it waits for their fetches,
    /// which replication brings ("Cluster 2/3"): until then it does not move, rather than
    /// count writes as replicated that are not.
    fn advance_high_watermark(&self) {
        if self.isr_len.load(Ordering::Acquire) <= 1 {
            self.log.set_high_watermark(self.log.log_end_offset());
        }
        self.high_watermark_advanced.notify_waiters();
    }

    /// Appends batches a coordinator of this broker wrote: transaction markers and
    /// transactional offset commits (`sluice_log::Log::append_as_coordinator`).
    pub fn append_from_coordinator(&self, batches: &mut [u8], now_ms: i64) -> Result<(), ApiError> {
        let info = self
            .log
            .append_as_coordinator(batches, self.leader_epoch(), now_ms)?;
        self.flush_if_due(info.flush_due);
        self.advance_high_watermark();
        Ok(())
    }

    /// Writes the marker that ends producer `producer_id`'s transaction in this partition: a
    /// commit or abort control batch at the coordinator's `epoch` for the producer.
    pub fn write_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let spec = sluice_proto::batch::BatchSpec {
            producer_id,
            producer_epoch,
            base_timestamp: now_ms,
            ..Default::default()
        };
        let mut batch = Vec::with_capacity(80);
        sluice_proto::batch::encode_end_txn_marker(&mut batch, &spec, commit, coordinator_epoch);
        self.append_from_coordinator(&mut batch, now_ms)
    }

    /// Refuses an `acks=all` write when fewer replicas are in sync than `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS), checked before anything is written, as Kafka does.
    pub fn check_min_insync(&self) -> Result<(), ApiError> {
        let isr_len = i64::from(self.isr_len.load(Ordering::Acquire));
        let min_insync_replicas = self.settings().min_insync_replicas;
        if isr_len < min_insync_replicas {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "The size of the current ISR {isr_len} is insufficient to satisfy the \
                     min.isr requirement of {} for partition {}-{}",
                    min_insync_replicas, self.topic, self.index
                ),
            ));
        }
        Ok(())
    }

    /// The delayed-produce wait of `acks=all`: completes once the high watermark reaches
    /// `end_offset`, or fails with REQUEST_TIMED_OUT at `deadline`. With one node the high
    /// watermark moves with each append, so this returns at once; replication makes it wait.
    pub async fn await_high_watermark(
        &self,
        end_offset: i64,
        deadline: tokio::time::Instant,
    ) -> Result<(), ApiError> {
        loop {
            let advanced = self.high_watermark_advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            if self.high_watermark() >= end_offset {
                return Ok(());
            }
            tokio::select! {
                _ = &mut advanced => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ApiError::new(
                        ResponseError::RequestTimedOut,
                        "timed out waiting for the in-sync replicas",
                    ));
                }
            }
        }
    }

    /// Finds batches from `offset`, at most `max_bytes` (but at least one batch if `min_one`),
    /// up to the high watermark, or the last stable offset when `committed`, as file slices.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        committed: bool,
        min_one: bool,
    ) -> Result<sluice_log::ReadInfo, ApiError> {
        let end = if committed {
            self.last_stable_offset()
        } else {
            self.high_watermark()
        };
        Ok(self.log.read(offset, max_bytes, end, min_one)?)
    }

    /// Copies file slices into memory (the path for responses that cannot be sent zero-copy).
    pub fn copy_slices(&self, slices: &[sluice_log::FileSlice]) -> Result<Bytes, ApiError> {
        let total = slices.iter().map(|s| s.len).sum();
        let mut buf = BytesMut::zeroed(total);
        let mut at = 0;
        for s in slices {
            s.file.read_exact_at(&mut buf[at..at + s.len], s.position)?;
            at += s.len;
        }
        Ok(buf.freeze())
    }

    /// High watermark.
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    /// Last stable offset.
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }

    /// Log start offset.
    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Log end offset.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// First record whose timestamp is at least `timestamp`: (timestamp, offset, leader epoch).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64, i32)>, ApiError> {
        let Some(found) = self.log.offset_for_timestamp(timestamp)? else {
            return Ok(None);
        };
        // The log finds the batch; decode that one batch to find the exact record.
        let mut buf = BytesMut::zeroed(found.batch.len);
        found
            .batch
            .file
            .read_exact_at(&mut buf, found.batch.position)?;
        let mut bytes = buf.freeze();
        if let Ok(set) = RecordBatchDecoder::decode(&mut bytes) {
            if let Some(r) = set
                .records
                .iter()
                .find(|r| r.timestamp >= timestamp && !r.control)
            {
                return Ok(Some((r.timestamp, r.offset, found.leader_epoch)));
            }
        }
        Ok(Some((found.timestamp, found.offset, found.leader_epoch)))
    }

    /// The record with the largest timestamp: (timestamp, offset, leader epoch).
    pub fn max_timestamp_offset(&self) -> Result<Option<(i64, i64, i32)>, ApiError> {
        Ok(self
            .log
            .max_timestamp_offset()?
            .map(|(ts, offset)| (ts, offset, self.leader_epoch())))
    }

    /// End offset of `epoch` for OffsetForLeaderEpoch: (epoch, end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Result<(i32, i64), ApiError> {
        Ok(self.log.end_offset_for_epoch(epoch)?)
    }
}
