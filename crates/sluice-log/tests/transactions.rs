//! Transactions in the log: open transactions hold back the last stable offset, abort markers
//! become `.txnindex` entries that `read_committed` fetches collect, and the index survives
//! reopen, crash recovery, truncation and deletion. Batches are written through the follower
//! path, which keeps the offsets they carry (markers come from a coordinator, never a client).

mod common;

use std::fs;
use std::path::Path;

use common::{batch_with, open, small_config};
use sluice_log::{AbortedTxn, Log, LogConfig};
use sluice_proto::batch::{encode_end_txn_marker, BatchSpec};

/// A transactional data batch of `records` records at `offset`.
fn txn_data(pid: i64, offset: i64, seq: i32, records: usize) -> Vec<u8> {
    batch_with(
        records,
        16,
        BatchSpec {
            base_offset: offset,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: seq,
            base_timestamp: 1_000 + offset,
            transactional: true,
            ..BatchSpec::default()
        },
    )
}

/// A commit or abort marker at `offset`.
fn marker(pid: i64, offset: i64, commit: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let spec = BatchSpec {
        base_offset: offset,
        producer_id: pid,
        producer_epoch: 0,
        base_timestamp: 1_000 + offset,
        ..BatchSpec::default()
    };
    encode_end_txn_marker(&mut out, &spec, commit, 5);
    out
}

fn write(log: &Log, bytes: Vec<u8>) {
    log.append_as_follower(&bytes, 1_000).unwrap();
    log.set_high_watermark(log.log_end_offset());
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn txn_index_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txnindex"))
        .collect();
    names.sort();
    names
}

/// Two producers interleave: P1 writes 0-2 and 5, P2 writes 3-4; P1 aborts at 6, P2 commits
/// at 7. Returns the log with everything written.
fn interleaved(dir: &Path, config: LogConfig) -> Log {
    let log = open(dir, config, false);
    write(&log, txn_data(1, 0, 0, 3));
    assert_eq!(
        log.last_stable_offset(),
        0,
        "P1's open transaction holds the LSO"
    );
    write(&log, txn_data(2, 3, 0, 2));
    write(&log, txn_data(1, 5, 3, 1));
    assert_eq!(log.last_stable_offset(), 0);
    write(&log, marker(1, 6, false));
    assert_eq!(
        log.last_stable_offset(),
        3,
        "P2's transaction is still open"
    );
    write(&log, marker(2, 7, true));
    assert_eq!(log.last_stable_offset(), 8);
    log
}

/// Goal: an abort marker becomes one `.txnindex` entry with Kafka's fields, a commit none, and
/// a fetch collects exactly the entries overlapping its range.
#[test]
fn aborted_transactions_are_indexed_and_collected() {
    let dir = tempfile::tempdir().unwrap();
    let log = interleaved(dir.path(), small_config());
    let expected = aborted(1, 0, 6, 3);
    assert_eq!(log.aborted_transactions(0, 8).unwrap(), vec![expected]);
    assert_eq!(log.aborted_transactions(6, 8).unwrap(), vec![expected]);
    assert_eq!(log.aborted_transactions(7, 8).unwrap(), vec![]);
    assert_eq!(
        txn_index_files(dir.path()),
        vec!["00000000000000000000.txnindex"]
    );
    let bytes = fs::read(dir.path().join("00000000000000000000.txnindex")).unwrap();
    assert_eq!(bytes.len(), 34, "one entry");
    assert_eq!(&bytes[..2], &[0, 0], "version 0");
    assert_eq!(i64::from_be_bytes(bytes[2..10].try_into().unwrap()), 1);
    assert_eq!(i64::from_be_bytes(bytes[26..34].try_into().unwrap()), 3);
    // A second transaction of P1, aborted with no other producer open: LSO is marker + 1.
    write(&log, txn_data(1, 8, 4, 2));
    assert_eq!(log.last_stable_offset(), 8);
    write(&log, marker(1, 10, false));
    assert_eq!(log.last_stable_offset(), 11);
    assert_eq!(
        log.aborted_transactions(0, 11).unwrap(),
        vec![expected, aborted(1, 8, 10, 11)]
    );
    assert_eq!(
        log.aborted_transactions(7, 9).unwrap(),
        vec![aborted(1, 8, 10, 11)]
    );
}

/// Goal: the index and the open transactions come back after a clean close, and a crash that
/// lost the `.txnindex` file (or tore it) gets it rebuilt from the markers in the log.
#[test]
fn the_index_survives_reopen_and_is_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = interleaved(dir.path(), small_config());
    write(&log, txn_data(3, 8, 0, 1)); // P3 left open
    log.close().unwrap();
    drop(log);
    let index = dir.path().join("00000000000000000000.txnindex");
    let expected = vec![aborted(1, 0, 6, 3)];
    for damage in ["none", "deleted", "torn", "garbage entry"] {
        match damage {
            "deleted" => fs::remove_file(&index).unwrap(),
            "torn" => {
                let mut bytes = fs::read(&index).unwrap();
                bytes.extend_from_slice(&[0, 0, 1, 2, 3]);
                fs::write(&index, bytes).unwrap();
            }
            "garbage entry" => {
                let mut bytes = fs::read(&index).unwrap();
                bytes.extend_from_slice(&[0xEE; 34]);
                fs::write(&index, bytes).unwrap();
            }
            _ => {}
        }
        let clean = damage == "none";
        let log = open(dir.path(), small_config(), clean);
        log.set_high_watermark(log.log_end_offset());
        assert_eq!(
            log.aborted_transactions(0, 9).unwrap(),
            expected,
            "{damage}"
        );
        assert_eq!(log.last_stable_offset(), 8, "P3 still open after {damage}");
        assert_eq!(
            fs::read(&index).unwrap().len(),
            34,
            "{damage}: file repaired"
        );
        // Not closed: the next open is unclean unless it is the first round's.
    }
}

/// Goal: truncating below an abort marker removes its entry and reopens the transaction;
/// truncating below the transaction's start forgets it.
#[test]
fn truncation_drops_entries_past_the_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = interleaved(dir.path(), small_config());
    log.truncate_to(7, 2_000).unwrap();
    assert_eq!(
        log.aborted_transactions(0, 7).unwrap(),
        vec![aborted(1, 0, 6, 3)]
    );
    log.truncate_to(6, 2_000).unwrap();
    assert_eq!(log.aborted_transactions(0, 6).unwrap(), vec![]);
    assert!(txn_index_files(dir.path()).is_empty());
    log.set_high_watermark(6);
    assert_eq!(
        log.last_stable_offset(),
        0,
        "P1's transaction is open again"
    );
    // The log goes on: the abort is written again and indexed again.
    write(&log, marker(1, 6, false));
    assert_eq!(
        log.aborted_transactions(0, 7).unwrap(),
        vec![aborted(1, 0, 6, 3)]
    );
    log.truncate_to(0, 2_000).unwrap();
    log.set_high_watermark(0);
    assert_eq!(log.aborted_transactions(0, 1).unwrap(), vec![]);
    assert_eq!(log.last_stable_offset(), 0);
    write(&log, txn_data(9, 0, 0, 1));
    write(&log, marker(9, 1, true));
    assert_eq!(log.last_stable_offset(), 2, "no stale open transaction");
}

/// Goal: a transaction spanning segments is indexed in its marker's segment and still found
/// by a fetch of its first records; deleting segments deletes their index.
#[test]
fn transactions_across_segments_and_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    write(&log, txn_data(1, 0, 0, 2));
    log.roll(2_000).unwrap();
    write(&log, txn_data(1, 2, 2, 2));
    log.roll(2_000).unwrap();
    write(&log, marker(1, 4, false));
    assert_eq!(log.segment_count(), 3);
    assert_eq!(
        txn_index_files(dir.path()),
        vec!["00000000000000000004.txnindex"]
    );
    let entry = aborted(1, 0, 4, 5);
    assert_eq!(log.aborted_transactions(0, 2).unwrap(), vec![entry]);
    assert_eq!(log.aborted_transactions(2, 4).unwrap(), vec![entry]);
    // A later transaction in the last segment is not reported for an earlier range that an
    // entry's last stable offset already closes.
    write(&log, txn_data(2, 5, 0, 1));
    write(&log, marker(2, 6, false));
    assert_eq!(log.aborted_transactions(0, 2).unwrap(), vec![entry]);
    assert_eq!(
        log.aborted_transactions(0, 7).unwrap(),
        vec![entry, aborted(2, 5, 6, 7)]
    );
    log.roll(2_000).unwrap();
    write(
        &log,
        batch_with(
            1,
            8,
            BatchSpec {
                base_offset: 7,
                ..BatchSpec::default()
            },
        ),
    );
    log.advance_log_start_offset(7, 3_000).unwrap();
    assert!(
        txn_index_files(dir.path()).is_empty(),
        "deleted with its segment"
    );
    assert_eq!(log.aborted_transactions(7, 8).unwrap(), vec![]);
}

/// Goal: `producer.id.expiration.ms`: idle producers are forgotten, ones with an open
/// transaction are kept, and the state after expiry survives a snapshot.
#[test]
fn idle_producers_expire_unless_a_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    write(&log, txn_data(1, 0, 0, 1)); // timestamp 1_000, open
    write(
        &log,
        batch_with(
            1,
            8,
            BatchSpec {
                base_offset: 1,
                producer_id: 2,
                producer_epoch: 0,
                base_sequence: 0,
                base_timestamp: 5_000,
                ..BatchSpec::default()
            },
        ),
    );
    assert_eq!(log.remove_expired_producers(5_999, 1_000).unwrap(), 0);
    assert_eq!(log.remove_expired_producers(6_000, 1_000).unwrap(), 1);
    assert!(log.producer_state(2).unwrap().is_none());
    assert!(
        log.producer_state(1).unwrap().is_some(),
        "open transaction kept"
    );
    write(&log, marker(1, 2, true));
    assert_eq!(log.remove_expired_producers(6_000, 1_000).unwrap(), 1);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), true);
    assert!(log.producer_state(1).unwrap().is_none());
    assert!(log.producer_state(2).unwrap().is_none());
}

/// A batch of producer `pid` at `epoch` (offset 0: the log assigns offsets).
fn at_epoch(mut bytes: Vec<u8>, epoch: i16) -> Vec<u8> {
    // producerEpoch sits at byte 51 of a v2 batch; it is covered by the CRC, so re-encode.
    let header = sluice_proto::batch::BatchHeader::parse(&bytes).unwrap();
    let mut spec = BatchSpec {
        producer_id: header.producer_id,
        producer_epoch: epoch,
        base_timestamp: header.base_timestamp,
        ..BatchSpec::default()
    };
    if header.is_control() {
        let commit = sluice_proto::batch::control_type(&bytes)
            == Some(sluice_proto::batch::ControlType::Commit);
        bytes.clear();
        encode_end_txn_marker(&mut bytes, &spec, commit, 5);
        return bytes;
    }
    spec.base_sequence = header.base_sequence;
    spec.transactional = header.is_transactional();
    batch_with(header.records_count as usize, 16, spec)
}

/// Goal: the coordinator path assigns offsets to markers (which a client append refuses),
/// fences an older producer epoch, skips sequence checks, and a marker at a bumped epoch fences
/// the producer's old epoch for later client appends.
#[test]
fn coordinator_appends_markers_and_fences_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_config(), false);
    let mut data = at_epoch(txn_data(7, 0, 0, 3), 0);
    log.append_as_leader(&mut data, 0, 1_000).unwrap();
    assert_eq!(log.last_stable_offset(), 0);

    let mut client_marker = marker(7, 0, true);
    assert!(
        log.append_as_leader(&mut client_marker, 0, 1_000).is_err(),
        "clients may not write control batches"
    );

    // Commit at the producer's epoch: offset 3, LSO past it.
    let mut commit = marker(7, 0, true);
    let info = log.append_as_coordinator(&mut commit, 0, 1_000).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 3));
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 4);

    // The next transaction continues the sequence at the same epoch.
    let mut next = at_epoch(txn_data(7, 0, 3, 2), 0);
    log.append_as_leader(&mut next, 0, 1_000).unwrap();
    assert_eq!(log.last_stable_offset(), 4);

    // A timed-out transaction is aborted at a bumped epoch 1, which fences epoch 0.
    let mut abort = at_epoch(marker(7, 0, false), 1);
    let info = log.append_as_coordinator(&mut abort, 0, 1_000).unwrap();
    assert_eq!(info.first_offset, 6);
    log.set_high_watermark(log.log_end_offset());
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(
        log.aborted_transactions(0, 7).unwrap(),
        vec![aborted(7, 4, 6, 7)]
    );
    let mut stale = at_epoch(txn_data(7, 0, 5, 1), 0);
    assert!(matches!(
        log.append_as_leader(&mut stale, 0, 1_000),
        Err(sluice_log::LogError::InvalidProducerEpoch { .. })
    ));
    let mut stale_marker = at_epoch(marker(7, 0, true), 0);
    assert!(log
        .append_as_coordinator(&mut stale_marker, 0, 1_000)
        .is_err());
    assert_eq!(log.log_end_offset(), 7, "rejected appends wrote nothing");

    // The re-initialised producer starts epoch 2 at sequence 0.
    let mut fresh = at_epoch(txn_data(7, 0, 0, 1), 2);
    log.append_as_leader(&mut fresh, 0, 1_000).unwrap();
    assert_eq!(log.log_end_offset(), 8);
}
