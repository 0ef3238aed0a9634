//! Goal: damaged logs are found, cut at the first bad batch, reported, and never served; failed
//! writes leave nothing behind. Method: write a log, damage its files (flipped byte, torn tail,
//! garbage, lost index) or make the I/O seam fail mid-append, then reopen and read everything.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use sluice_log::error::codes;
use sluice_log::{FaultyIo, Log};

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// A closed log of 40 two-record batches in several segments; returns its batch count.
fn write_log(dir: &Path) -> usize {
    let log = open(dir, small_config(), false);
    for i in 0..40 {
        append(&log, batch(2, 90, i));
    }
    log.close().unwrap();
    40
}

fn assert_prefix_intact(log: &Log, batches: usize) {
    let headers = read_all(log, 0);
    assert_eq!(headers.len(), batches);
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.base_offset, 2 * i as i64);
    }
    assert_eq!(log.log_end_offset(), 2 * batches as i64);
}

#[test]
fn flipped_byte_in_the_middle_of_the_last_segment_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path());
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&last)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, len / 2).unwrap();
    file.write_all_at(&[byte[0] ^ 0x10], len / 2).unwrap();
    drop(file);

    let log = open(dir.path(), small_config(), false);
    let report = log.recovery_report().expect("the cut is reported").clone();
    assert!(
        report.position < len / 2 + 1 && report.bytes_cut > 0,
        "{report:?}"
    );
    let kept = read_all(&log, 0);
    assert!(!kept.is_empty());
    assert_prefix_intact(&log, kept.len());
    assert!(fs::metadata(&last).unwrap().len() <= len / 2);
    // The log goes on at the right offset.
    assert_eq!(append(&log, batch(1, 5, 0)), 2 * kept.len() as i64);
    assert_eq!(read_all(&log, 0).len(), kept.len() + 1);
}

#[test]
fn torn_tail_and_trailing_garbage_are_cut() {
    let dir = tempfile::tempdir().unwrap();
    let batches = write_log(dir.path());
    let last = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    // A torn final write: the last batch lost its final 7 bytes.
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let log = open(dir.path(), small_config(), false);
    assert!(log.recovery_report().is_some());
    assert_prefix_intact(&log, batches - 1);
    log.close().unwrap();

    // Half a header of zeros after the last batch (preallocated or torn space).
    let mut file = OpenOptions::new().append(true).open(&last).unwrap();
    file.write_all(&[0u8; 30]).unwrap();
    drop(file);
    let log = open(dir.path(), small_config(), false);
    assert_eq!(log.recovery_report().unwrap().bytes_cut, 30);
    assert_prefix_intact(&log, batches - 1);
}

#[test]
fn corruption_in_an_earlier_segment_drops_the_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path());
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let target = &files[1];
    let file = OpenOptions::new().write(true).open(target).unwrap();
    file.write_all_at(&[0xFF; 4], 8).unwrap(); // the first batch's length
    drop(file);
    let log = open(dir.path(), small_config(), false);
    let report = log.recovery_report().unwrap();
    assert_eq!(report.position, 0);
    assert_eq!(report.segments_dropped, files.len() - 2);
    let kept = read_all(&log, 0);
    assert_prefix_intact(&log, kept.len());
    assert_eq!(log.segment_count(), 2);
    assert_eq!(append(&log, batch(1, 5, 0)), log.log_end_offset() - 1);
}

#[test]
fn recovery_never_scans_below_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path());
    let files = segment_files(dir.path());
    // Damage the first segment; with the recovery point past it, recovery leaves it alone
    // (it was flushed, so the damage is not a crash artefact).
    let file = OpenOptions::new().write(true).open(&files[0]).unwrap();
    file.write_all_at(&[0xFF; 1], 200).unwrap();
    drop(file);
    let second_base: i64 = files[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let options = sluice_log::LogOpenOptions {
        recovery_point: second_base,
        ..Default::default()
    };
    let log = Log::open(dir.path(), small_config(), options).unwrap();
    assert!(log.recovery_report().is_none());
    assert_eq!(log.log_end_offset(), 80);
}

#[test]
fn failed_and_torn_writes_leave_nothing_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let log = open_faulty(dir.path(), small_config(), io.clone());
    for _ in 0..5 {
        append(&log, batch(2, 50, 0));
    }
    let size = log.size_bytes();
    for tear in [false, true] {
        io.fail_after(0, tear);
        let mut b = batch(2, 50, 0);
        let err = log.append_as_leader(&mut b, 0, 0).unwrap_err();
        assert_eq!(err.kafka_error_code(), codes::KAFKA_STORAGE_ERROR);
        io.heal();
        assert_eq!(log.size_bytes(), size);
        assert_eq!(log.log_end_offset(), 10);
    }
    assert_eq!(append(&log, batch(2, 50, 0)), 10);
    assert_eq!(read_all(&log, 0).len(), 6);
    // Buffered index entries that cannot be written fail the flush, not the data.
    io.fail_after(0, true);
    assert!(log.flush().is_err());
    io.heal();
    log.flush().unwrap();
    assert_eq!(read_all(&log, 0).len(), 6);
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert!(log.recovery_report().is_none());
    assert_eq!(read_all(&log, 0).len(), 6);
}

#[test]
fn failed_and_torn_gathered_writes_from_a_shared_buffer_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let log = open_faulty(dir.path(), small_config(), io.clone());
    for _ in 0..5 {
        append(&log, batch(2, 50, 0));
    }
    let size = log.size_bytes();
    // Forty batches take two gathered writes: fail the first, or the second after the first
    // landed, whole or torn.
    let mut request = Vec::new();
    for _ in 0..40 {
        request.extend_from_slice(&batch(1, 5, 0));
    }
    for (writes_ok, tear) in [(0, false), (0, true), (1, false), (1, true)] {
        io.fail_after(writes_ok, tear);
        let err = log.append_shared_as_leader(&request, 0, 0).unwrap_err();
        assert_eq!(err.kafka_error_code(), codes::KAFKA_STORAGE_ERROR);
        io.heal();
        assert_eq!(log.size_bytes(), size);
        assert_eq!(log.log_end_offset(), 10);
        let on_disk: u64 = segment_files(dir.path())
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(on_disk, size, "files cut back to the last whole batch");
    }
    log.append_shared_as_leader(&request, 0, 0).unwrap();
    assert_eq!(read_all(&log, 0).len(), 45);
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert!(log.recovery_report().is_none());
    assert_eq!(read_all(&log, 0).len(), 45);
    assert_eq!(append(&log, batch(1, 5, 0)), 50);
}

#[test]
fn a_dead_disk_takes_the_log_offline_instead_of_serving_torn_data() {
    let dir = tempfile::tempdir().unwrap();
    let io = Arc::new(FaultyIo::new());
    let log = open_faulty(dir.path(), small_config(), io.clone());
    append(&log, batch(2, 50, 0));
    io.fail_after(0, true);
    io.fail_everything(true);
    let mut b = batch(2, 50, 0);
    assert!(log.append_as_leader(&mut b, 0, 0).is_err());
    io.heal();
    let mut b = batch(2, 50, 0);
    assert!(
        log.append_as_leader(&mut b, 0, 0).is_err(),
        "offline until reopened"
    );
    assert_eq!(
        read_all(&log, 0).len(),
        1,
        "reads only see published batches"
    );
    drop(log);
    let log = open(dir.path(), small_config(), false);
    assert!(
        log.recovery_report().is_some(),
        "the torn half batch is cut"
    );
    assert_eq!(append(&log, batch(1, 5, 0)), 2);
}
