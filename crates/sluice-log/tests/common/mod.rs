//! Helpers shared by this crate's integration tests: batch builders and log setup.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use sluice_log::{FaultyIo, Log, LogConfig, LogIo, LogOpenOptions};
use sluice_proto::batch::{encode_batch, BatchHeader, BatchIter, BatchSpec, SimpleRecord};

/// An uncompressed batch of `records` records with `value_size`-byte values, timestamps
/// `base_timestamp + i`.
pub fn batch(records: usize, value_size: usize, base_timestamp: i64) -> Vec<u8> {
    batch_with(
        records,
        value_size,
        BatchSpec {
            base_timestamp,
            ..BatchSpec::default()
        },
    )
}

pub fn batch_with(records: usize, value_size: usize, spec: BatchSpec) -> Vec<u8> {
    let value = vec![0xAB; value_size];
    let recs: Vec<SimpleRecord<'_>> = (0..records)
        .map(|i| SimpleRecord {
            timestamp_delta: i as i64,
            key: None,
            value: Some(&value),
        })
        .collect();
    let mut out = Vec::new();
    encode_batch(&mut out, &spec, &recs);
    out
}

/// A batch from an idempotent producer.
pub fn producer_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    batch_with(
        records,
        8,
        BatchSpec {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            base_timestamp: 1,
            ..BatchSpec::default()
        },
    )
}

/// A small config so tests roll and index often.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

pub fn open(dir: &Path, config: LogConfig, clean: bool) -> Log {
    Log::open(
        dir,
        config,
        LogOpenOptions {
            clean_shutdown: clean,
            ..LogOpenOptions::default()
        },
    )
    .unwrap()
}

pub fn open_faulty(dir: &Path, config: LogConfig, io: Arc<FaultyIo>) -> Log {
    let io: Arc<dyn LogIo> = io;
    Log::open(
        dir,
        config,
        LogOpenOptions {
            io,
            ..LogOpenOptions::default()
        },
    )
    .unwrap()
}

/// Appends as leader (epoch 0) and returns the first offset.
pub fn append(log: &Log, mut bytes: Vec<u8>) -> i64 {
    match log.append_as_leader(&mut bytes, 0, 1_000).unwrap() {
        sluice_log::AppendOutcome::Appended(info) => info.first_offset,
        other => panic!("unexpected {other:?}"),
    }
}

/// All batch headers readable from `from` up to the log end.
pub fn read_all(log: &Log, from: i64) -> Vec<BatchHeader> {
    let (_, bytes) = log
        .read_bytes(from, usize::MAX / 2, i64::MAX, true)
        .unwrap();
    BatchIter::new(&bytes)
        .map(|item| item.expect("reads never return a bad batch").0)
        .collect()
}
