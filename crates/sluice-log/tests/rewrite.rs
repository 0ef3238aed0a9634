//! Rewriting a closed segment (the log cleaner's swap): the new contents replace the old at the
//! same offsets, indexes are rebuilt, reads and reopen (clean or after a crash) agree, a crash
//! before the swap leaves the old segment intact, and bad rewrites change nothing.

mod common;

use std::fs;

use common::{append, batch, open, read_all, small_config};
use sluice_proto::batch::BatchIter;

/// Three segments of 1 KiB batches (4 records each): returns the log and the closed segments.
fn three_segments(dir: &std::path::Path) -> (sluice_log::Log, Vec<(i64, i64)>) {
    let log = open(dir, small_config(), false);
    while log.closed_segments().len() < 2 {
        append(&log, batch(4, 200, 1_000));
    }
    log.set_high_watermark(log.log_end_offset());
    let closed = log.closed_segments();
    (log, closed)
}

/// The raw batches of offsets `from..to`.
fn raw(log: &sluice_log::Log, from: i64, to: i64) -> Vec<Vec<u8>> {
    let (_, bytes) = log.read_bytes(from, usize::MAX / 2, to, true).unwrap();
    BatchIter::new(&bytes)
        .map(|item| bytes[item.unwrap().1].to_vec())
        .filter(|b| {
            let h = sluice_proto::batch::BatchHeader::parse(b).unwrap();
            h.base_offset < to
        })
        .collect()
}

#[test]
fn a_rewritten_segment_serves_its_new_contents_at_the_same_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (log, closed) = three_segments(dir.path());
    let (base, end) = closed[0];
    let batches = raw(&log, base, end);
    assert!(batches.len() >= 3, "{}", batches.len());
    let before: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    // Keep every other batch of the first segment.
    let kept: Vec<u8> = batches.iter().step_by(2).flatten().copied().collect();
    assert!(log.rewrite_segment(base, &kept).unwrap());

    let after: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    let dropped: Vec<i64> = batches
        .iter()
        .skip(1)
        .step_by(2)
        .map(|b| {
            sluice_proto::batch::BatchHeader::parse(b)
                .unwrap()
                .base_offset
        })
        .collect();
    let expected: Vec<i64> = before
        .iter()
        .copied()
        .filter(|o| !dropped.contains(o))
        .collect();
    assert_eq!(after, expected);
    // Reading from a dropped batch's offset starts at the next kept batch.
    let from_dropped = read_all(&log, dropped[0]);
    assert_eq!(from_dropped[0].base_offset, dropped[0] + 4);
    assert_eq!(log.log_end_offset(), *before.last().unwrap() + 4);

    drop(log);
    let log = open(dir.path(), small_config(), false);
    let reopened: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    assert_eq!(reopened, expected, "after a crash the rewrite stands");
    log.close().unwrap();
    let log = open(dir.path(), small_config(), true);
    let reopened: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    assert_eq!(reopened, expected, "after a clean shutdown too");
}

#[test]
fn a_crash_before_the_swap_leaves_the_old_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (log, closed) = three_segments(dir.path());
    let before: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    drop(log);
    // What a crash between writing and renaming leaves behind.
    let cleaned = dir.path().join(format!("{:020}.log.cleaned", closed[0].0));
    fs::write(&cleaned, b"half-written").unwrap();
    let log = open(dir.path(), small_config(), false);
    assert!(!cleaned.exists(), "the leftover is removed");
    let after: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    assert_eq!(after, before);
}

#[test]
fn bad_rewrites_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (log, closed) = three_segments(dir.path());
    let before: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    let (base, end) = closed[0];
    let first = raw(&log, base, end);
    let second = raw(&log, closed[1].0, closed[1].1);
    // A batch of the next segment, empty contents, a corrupt batch, the active segment.
    assert!(log.rewrite_segment(base, &second[0]).is_err());
    assert!(log.rewrite_segment(base, &[]).is_err());
    let mut corrupt = first[0].clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(log.rewrite_segment(base, &corrupt).is_err());
    let active = log.segment_infos().unwrap().last().unwrap().base_offset;
    assert!(log.rewrite_segment(active, &first[0]).is_err());
    // Out of order.
    let mut reversed = first[1].clone();
    reversed.extend_from_slice(&first[0]);
    assert!(log.rewrite_segment(base, &reversed).is_err());
    let after: Vec<i64> = read_all(&log, 0).iter().map(|h| h.base_offset).collect();
    assert_eq!(after, before);
    // A segment retention deleted meanwhile is left alone.
    log.advance_log_start_offset(closed[1].0, 2_000).unwrap();
    assert!(!log.rewrite_segment(base, &first[0]).unwrap());
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".cleaned")), "{names:?}");
}
