//! Goal: the log's everyday behaviour (append, read, roll, index, time lookup, offsets,
//! truncation, deletion, reopen) matches Kafka's rules. Method: small segments and index
//! intervals so every path runs on a few kilobytes.

mod common;

use common::*;
use sluice_log::error::codes;
use sluice_log::{AppendOutcome, LogConfig, LogError};
use sluice_proto::batch::{BatchHeader, BatchIter, TimestampType};

#[test]
fn append_assigns_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    assert_eq!(append(&log, batch(3, 10, 100)), 0);
    assert_eq!(append(&log, batch(2, 10, 200)), 3);
    assert_eq!(log.log_end_offset(), 5);
    log.set_high_watermark(5);
    let headers = read_all(&log, 0);
    assert_eq!(
        headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert_eq!(headers[1].partition_leader_epoch, 0);
    // Reading from the middle of a batch returns that whole batch.
    assert_eq!(read_all(&log, 4)[0].base_offset, 3);
    // The high watermark bounds the read.
    let info = log.read(0, 1 << 20, 3, true).unwrap();
    let size0 = BatchHeader::parse(&batch(3, 10, 100)).unwrap().total_size();
    assert_eq!(info.bytes, size0);
    assert_eq!(log.read(5, 100, 5, true).unwrap().bytes, 0);
}

#[test]
fn byte_limit_never_splits_a_batch_but_min_one_message_returns_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for _ in 0..4 {
        append(&log, batch(1, 100, 0));
    }
    let size = BatchHeader::parse(&batch(1, 100, 0)).unwrap().total_size();
    assert_eq!(
        log.read(0, size * 2 + 10, i64::MAX, false).unwrap().bytes,
        size * 2
    );
    assert_eq!(log.read(0, 10, i64::MAX, false).unwrap().bytes, 0);
    assert_eq!(log.read(0, 10, i64::MAX, true).unwrap().bytes, size);
}

#[test]
fn segments_roll_on_size_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for i in 0..40 {
        append(&log, batch(2, 100, i));
    }
    assert!(
        log.segment_count() >= 3,
        "rolled {} times",
        log.segment_count()
    );
    let headers = read_all(&log, 0);
    assert_eq!(headers.len(), 40);
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.base_offset, 2 * i as i64);
    }
    for offset in 0..80 {
        let first = read_all(&log, offset)[0];
        assert!(first.base_offset <= offset && offset <= first.last_offset());
    }
    assert!(std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name() == "00000000000000000012.log"
            || e.file_name().to_string_lossy().ends_with(".index")));
}

/// Goal: a roll asks the caller to flush (Kafka flushes finished segments), so the recovery
/// point follows the log and a crash only rescans the active segment.
#[test]
fn a_roll_asks_for_a_flush_that_moves_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    let mut rolls = 0;
    for i in 0..40 {
        let before = log.segment_count();
        let mut bytes = batch(2, 100, i);
        let AppendOutcome::Appended(info) = log.append_as_leader(&mut bytes, 0, 1_000).unwrap()
        else {
            panic!("not a duplicate");
        };
        let rolled = log.segment_count() > before;
        assert_eq!(info.flush_due, rolled, "append {i}");
        if rolled {
            rolls += 1;
            log.flush().unwrap();
            assert_eq!(log.recovery_point(), log.log_end_offset());
        }
    }
    assert!(rolls >= 2, "rolled {rolls} times");
}

#[test]
fn segments_roll_on_age_and_on_a_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1000,
        ..small_config()
    };
    let log = open(dir.path(), config, false);
    let mut b = batch(1, 10, 0);
    log.append_as_leader(&mut b, 0, 0).unwrap();
    let mut b = batch(1, 10, 0);
    log.append_as_leader(&mut b, 0, 500).unwrap();
    assert_eq!(log.segment_count(), 1);
    let mut b = batch(1, 10, 0);
    let now = sluice_log::now_ms() + 2000;
    log.append_as_leader(&mut b, 0, now).unwrap();
    assert_eq!(log.segment_count(), 2);

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 1,
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let log = open(dir.path(), config, false);
    for _ in 0..6 {
        append(&log, batch(1, 10, 0));
    }
    assert!(log.segment_count() >= 2, "a two-entry index must roll");
}

#[test]
fn offset_for_timestamp_finds_first_batch_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for i in 0..30 {
        append(&log, batch(2, 50, 1000 + 10 * i)); // max timestamp 1000 + 10i + 1
    }
    let found = log
        .offset_for_timestamp(1000 + 10 * 17 + 1)
        .unwrap()
        .unwrap();
    assert_eq!(found.offset, 34);
    assert_eq!(found.timestamp, 1171);
    let found = log.offset_for_timestamp(1172).unwrap().unwrap();
    assert_eq!(found.offset, 36);
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    assert!(log.offset_for_timestamp(5000).unwrap().is_none());
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((1291, 59)));
}

#[test]
fn bad_batches_are_typed_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 500,
        ..small_config()
    };
    let log = open(dir.path(), config, false);
    append(&log, batch(1, 10, 0));
    let size = log.size_bytes();
    let mut corrupt = batch(2, 10, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let err = log.append_as_leader(&mut corrupt, 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), codes::CORRUPT_MESSAGE);
    let mut big = batch(1, 600, 0);
    assert_eq!(
        log.append_as_leader(&mut big, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::MESSAGE_TOO_LARGE
    );
    let mut torn = batch(1, 10, 0);
    torn.truncate(torn.len() - 1);
    assert_eq!(
        log.append_as_leader(&mut torn, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::CORRUPT_MESSAGE
    );
    let mut wrong_count = batch(3, 10, 0);
    wrong_count[57..61].copy_from_slice(&2i32.to_be_bytes());
    let crc = sluice_proto::batch::compute_crc(&wrong_count);
    wrong_count[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        log.append_as_leader(&mut wrong_count, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::INVALID_RECORD
    );
    let mut absurd = batch(1, 10, 0);
    absurd[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(log.append_as_leader(&mut absurd, 0, 0).is_err());
    let mut empty: Vec<u8> = Vec::new();
    assert_eq!(
        log.append_as_leader(&mut empty, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::INVALID_RECORD
    );
    // A good batch followed by a bad one: neither is written.
    let mut mixed = batch(1, 10, 0);
    mixed.extend_from_slice(&corrupt);
    assert!(log.append_as_leader(&mut mixed, 0, 0).is_err());
    let config = LogConfig {
        segment_bytes: 100,
        ..small_config()
    };
    let dir2 = tempfile::tempdir().unwrap();
    let small = open(dir2.path(), config, false);
    let mut list = batch(1, 10, 0);
    list.extend_from_slice(&batch(1, 10, 0));
    assert_eq!(
        small
            .append_as_leader(&mut list, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::RECORD_LIST_TOO_LARGE
    );

    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), 1);
    for bad in [-1, 2, i64::MAX, i64::MIN] {
        let err = log.read(bad, 100, i64::MAX, true).unwrap_err();
        assert!(
            matches!(err, LogError::OffsetOutOfRange { .. }),
            "{bad}: {err}"
        );
        assert_eq!(err.kafka_error_code(), codes::OFFSET_OUT_OF_RANGE);
    }
}

#[test]
fn log_append_time_stamps_batches() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let log = open(dir.path(), config, false);
    let mut b = batch(2, 10, 5);
    let AppendOutcome::Appended(info) = log.append_as_leader(&mut b, 3, 777_000).unwrap() else {
        panic!()
    };
    assert_eq!(info.log_append_time_ms, Some(777_000));
    let header = read_all(&log, 0)[0];
    assert_eq!(header.max_timestamp, 777_000);
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.partition_leader_epoch, 3);
}

#[test]
fn reopen_clean_and_unclean_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let log = open(dir.path(), small_config(), false);
        for i in 0..30 {
            append(&log, batch(3, 60, i));
        }
        before = read_all(&log, 0);
        log.close().unwrap();
        assert!(
            log.read(0, 10, 10, true).is_ok(),
            "reads still work after close"
        );
        assert!(matches!(
            log.append_as_leader(&mut batch(1, 1, 0), 0, 0),
            Err(LogError::Closed)
        ));
    }
    for clean in [true, false] {
        let log = open(dir.path(), small_config(), clean);
        assert_eq!(log.log_end_offset(), 90);
        assert_eq!(read_all(&log, 0), before);
        assert_eq!(read_all(&log, 45)[0].base_offset, 45);
        assert!(log.offset_for_timestamp(20).unwrap().is_some());
    }
    // Deleted indexes are rebuilt.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = open(dir.path(), small_config(), true);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(read_all(&log, 61)[0].base_offset, 60);
    assert_eq!(append(&log, batch(1, 1, 0)), 90);
}

#[test]
fn truncation_drops_the_tail_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for epoch in 0..3 {
        for _ in 0..10 {
            let mut b = batch(2, 80, 0);
            log.append_as_leader(&mut b, epoch, 0).unwrap();
        }
    }
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), (1, 40));
    log.set_high_watermark(60);
    log.truncate_to(30, 0).unwrap();
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.high_watermark(), 30);
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), (1, 30));
    assert_eq!(log.latest_epoch().unwrap(), Some(1));
    assert_eq!(read_all(&log, 0).len(), 15);
    assert_eq!(append(&log, batch(1, 1, 0)), 30);
    // Truncating inside a batch removes that batch.
    log.truncate_to(21, 0).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    log.truncate_fully_and_start_at(500, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(append(&log, batch(1, 1, 0)), 500);
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 501));
}

#[test]
fn follower_appends_keep_offsets_and_must_continue_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    let mut bytes = Vec::new();
    for (base, epoch) in [(0i64, 1), (2, 1), (10, 2)] {
        let mut b = batch(2, 10, 0);
        sluice_proto::batch::set_base_offset(&mut b, base);
        sluice_proto::batch::set_partition_leader_epoch(&mut b, epoch);
        bytes.extend_from_slice(&b);
    }
    log.append_as_follower(&bytes, 0).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), (1, 10));
    assert!(matches!(
        log.append_as_follower(&bytes, 0),
        Err(LogError::UnexpectedAppendOffset { .. })
    ));
    assert_eq!(read_all(&log, 11)[0].base_offset, 10);
}

#[test]
fn advancing_the_start_offset_deletes_whole_segments_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            file_delete_delay_ms: 1000,
            ..small_config()
        },
        false,
    );
    for _ in 0..40 {
        append(&log, batch(2, 100, 0));
    }
    let segments = log.segment_count();
    assert!(
        log.advance_log_start_offset(50, 0).is_err(),
        "above the high watermark"
    );
    log.set_high_watermark(80);
    let deleted = log.advance_log_start_offset(50, 0).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), segments - deleted);
    assert_eq!(log.log_start_offset(), 50);
    assert!(matches!(
        log.read(49, 100, 80, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log, 50)[0].base_offset, 50);
    let count_deleted = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".deleted")
            })
            .count()
    };
    assert!(count_deleted() > 0);
    assert_eq!(log.delete_expired_files(500), 0);
    assert!(log.delete_expired_files(1000) > 0);
    assert_eq!(count_deleted(), 0);
    drop(log);
    let log = sluice_log::Log::open(
        dir.path(),
        small_config(),
        sluice_log::LogOpenOptions {
            log_start_offset: 50,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(log.log_start_offset(), 50);
    log.delete().unwrap();
    assert!(!dir.path().exists());
}

#[test]
fn idempotent_producer_duplicates_and_fencing_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    assert_eq!(append(&log, producer_batch(7, 0, 0, 3)), 0);
    assert_eq!(append(&log, producer_batch(7, 0, 3, 2)), 3);
    let mut retry = producer_batch(7, 0, 0, 3);
    match log.append_as_leader(&mut retry, 0, 0).unwrap() {
        AppendOutcome::Duplicate {
            first_offset,
            last_offset,
            ..
        } => assert_eq!((first_offset, last_offset), (0, 2)),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(log.log_end_offset(), 5);
    let mut gap = producer_batch(7, 0, 9, 1);
    assert_eq!(
        log.append_as_leader(&mut gap, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(append(&log, producer_batch(7, 1, 0, 1)), 5);
    let mut fenced = producer_batch(7, 0, 5, 1);
    assert_eq!(
        log.append_as_leader(&mut fenced, 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        codes::INVALID_PRODUCER_EPOCH
    );
    // State survives both a clean close (snapshot) and an unclean reopen (rebuilt from batches).
    log.close().unwrap();
    for clean in [true, false] {
        let log = open(dir.path(), small_config(), clean);
        let state = log.producer_state(7).unwrap().unwrap();
        assert_eq!((state.producer_epoch, state.last_seq()), (1, 0));
        let mut retry = producer_batch(7, 1, 0, 1);
        assert!(matches!(
            log.append_as_leader(&mut retry, 0, 0).unwrap(),
            AppendOutcome::Duplicate {
                first_offset: 5,
                ..
            }
        ));
    }
}

#[test]
fn read_results_are_valid_batches_at_every_offset_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    for i in 0..25 {
        append(&log, batch(1 + i % 3, 20 + 7 * i, 0));
    }
    let leo = log.log_end_offset();
    for start in 0..leo {
        for max_bytes in [0usize, 50, 200, 1000, 5000] {
            for hw in [start, start + 1, leo] {
                let (info, bytes) = log
                    .read_bytes(start, max_bytes, hw, max_bytes == 50)
                    .unwrap();
                assert_eq!(info.bytes, bytes.len());
                let headers: Vec<_> = BatchIter::new(&bytes).map(|r| r.unwrap().0).collect();
                assert!(bytes.len() <= max_bytes || headers.len() == 1);
                for pair in headers.windows(2) {
                    assert_eq!(pair[0].next_offset(), pair[1].base_offset);
                }
                if let Some(first) = headers.first() {
                    assert!(first.base_offset <= start && start <= first.last_offset());
                    assert!(headers.last().unwrap().last_offset() < hw);
                }
            }
        }
    }
}
