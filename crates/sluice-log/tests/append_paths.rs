//! Goal: a leader append from a shared buffer (stamped header copies gathered with the untouched
//! batches in one `pwritev`) stores exactly the bytes an in-place append stores and never
//! modifies the caller's buffer; and the blocks the log reserves past a segment's end change
//! nothing a reader or recovery sees, and are given back at roll and close. Method: the same
//! request stream goes through both paths into two logs whose files are compared byte for
//! byte; file lengths and allocated blocks are read from the file system.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use sluice_log::{AppendOutcome, Log, LogConfig};
use sluice_proto::batch::{BatchIter, BatchSpec, TimestampType};

/// Requests of one to seventy batches (more than one gathered write call's worth), with an
/// idempotent producer's batch among them.
fn requests() -> Vec<Vec<u8>> {
    let mut requests = Vec::new();
    for i in 0..40usize {
        let mut request = Vec::new();
        let batches = match i % 4 {
            0 => 1,
            1 => 3,
            2 => 70,
            _ => 2,
        };
        for j in 0..batches {
            request.extend_from_slice(&batch(1 + (i + j) % 4, (i * 37 + j * 11) % 300, 1_000));
        }
        requests.push(request);
    }
    for seq in 0..3 {
        requests.push(producer_batch(7, 0, seq * 5, 5));
    }
    requests
}

fn append_in_place(log: &Log, mut request: Vec<u8>, now_ms: i64) -> AppendOutcome {
    log.append_as_leader(&mut request, 2, now_ms).unwrap()
}

fn append_shared(log: &Log, request: &[u8], now_ms: i64) -> AppendOutcome {
    let before = request.to_vec();
    let outcome = log.append_shared_as_leader(request, 2, now_ms).unwrap();
    assert_eq!(request, before.as_slice(), "the shared buffer is untouched");
    outcome
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[test]
fn shared_and_in_place_appends_store_the_same_bytes() {
    for timestamp_type in [TimestampType::CreateTime, TimestampType::LogAppendTime] {
        let config = LogConfig {
            segment_bytes: 256 * 1024,
            message_timestamp_type: timestamp_type,
            ..small_config()
        };
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let in_place = open(dir_a.path(), config, false);
        let shared = open(dir_b.path(), config, false);
        for (i, request) in requests().into_iter().enumerate() {
            let now_ms = 5_000 + i as i64;
            let a = append_in_place(&in_place, request.clone(), now_ms);
            let b = append_shared(&shared, &request, now_ms);
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "request {i}");
        }
        // An idempotent retry is a duplicate on both paths.
        let retry = producer_batch(7, 0, 10, 5);
        assert!(matches!(
            append_shared(&shared, &retry, 9_999),
            AppendOutcome::Duplicate { .. }
        ));
        assert_eq!(in_place.log_end_offset(), shared.log_end_offset());
        assert!(
            in_place.segment_count() > 1,
            "the stream spans several segments"
        );
        let (_, bytes) = shared
            .read_bytes(0, usize::MAX / 2, i64::MAX, true)
            .unwrap();
        let mut next_offset = 0;
        for item in BatchIter::new(&bytes) {
            let (header, _) = item.expect("every stored batch has a valid CRC");
            assert_eq!(header.base_offset, next_offset);
            assert_eq!(header.partition_leader_epoch, 2);
            assert_eq!(header.timestamp_type(), timestamp_type);
            next_offset = header.next_offset();
        }
        assert_eq!(next_offset, shared.log_end_offset());
        let (files_a, files_b) = (segment_files(dir_a.path()), segment_files(dir_b.path()));
        assert_eq!(files_a.len(), files_b.len());
        for (a, b) in files_a.iter().zip(&files_b) {
            assert_eq!(a.file_name(), b.file_name());
            assert!(
                std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
                "{a:?}"
            );
        }
    }
}

/// Bytes the file system allocated to `path`.
fn allocated_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn reserved_blocks_are_invisible_to_readers_and_recovery_and_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024 * 1024,
        ..small_config()
    };
    let log = open(dir.path(), config, false);
    for i in 0..100 {
        let request = batch(2, 500, i);
        if i % 2 == 0 {
            append(&log, request);
        } else {
            append_shared(&log, &request, 1_000);
        }
    }
    let first = segment_files(dir.path())[0].clone();
    let size = log.size_bytes();
    assert_eq!(std::fs::metadata(&first).unwrap().len(), size);
    assert!(
        allocated_bytes(&first) > size + 4096,
        "blocks are reserved past the end: {} allocated for {size}",
        allocated_bytes(&first)
    );
    let before = read_all(&log, 0);
    // A crash (no close) leaves the reservation; recovery goes by the file's length.
    drop(log);
    let log = open(dir.path(), config, false);
    assert!(log.recovery_report().is_none());
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(append(&log, batch(1, 10, 0)), 200);
    // A roll gives the old segment's reservation back; so does a close for the new one.
    log.roll(0).unwrap();
    assert!(allocated_bytes(&first) < std::fs::metadata(&first).unwrap().len() + 16 * 1024);
    assert_eq!(append(&log, batch(1, 10, 0)), 201);
    let second = segment_files(dir.path())[1].clone();
    assert!(allocated_bytes(&second) >= 64 * 1024);
    log.close().unwrap();
    assert!(allocated_bytes(&second) < std::fs::metadata(&second).unwrap().len() + 16 * 1024);
    let log = open(dir.path(), config, true);
    assert_eq!(read_all(&log, 0).len(), 102);
    assert_eq!(append(&log, batch(1, 10, 0)), 202);
}

#[test]
fn a_follower_keeps_what_the_leader_wrote_from_a_shared_buffer() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = LogConfig {
        segment_bytes: 256 * 1024,
        ..small_config()
    };
    let leader = open(dir_a.path(), config, false);
    let follower = open(dir_b.path(), config, false);
    for request in requests().into_iter().take(12) {
        append_shared(&leader, &request, 1_000);
    }
    let (_, bytes) = leader
        .read_bytes(0, usize::MAX / 2, i64::MAX, true)
        .unwrap();
    follower.append_as_follower(&bytes, 1_000).unwrap();
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    let spec = BatchSpec {
        base_timestamp: 1,
        ..BatchSpec::default()
    };
    assert_eq!(
        append(&follower, batch_with(1, 1, spec)),
        leader.log_end_offset()
    );
}
