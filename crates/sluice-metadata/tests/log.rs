//! The metadata log keeps every acknowledged batch across reopen, snapshots and torn tails.
//! Method: build images through the controller's functions, append them, reopen the directory
//! and compare the rebuilt image with the one in memory.

use std::collections::BTreeMap;
use std::io::Write;

use sluice_metadata::controller::{self, Placement, PlacementStart, Registration};
use sluice_metadata::log::METADATA_DIR;
use sluice_metadata::{MetadataImage, MetadataLog};
use uuid::Uuid;

const NO_SNAPSHOTS: u64 = u64::MAX;

fn registered(log: &mut MetadataLog, image: MetadataImage) -> MetadataImage {
    let reg = Registration {
        broker_id: 1,
        incarnation_id: Uuid::new_v4(),
        endpoints: vec![],
        rack: None,
        log_dirs: vec![],
    };
    let epoch = log.next_offset();
    let image = log
        .append(&image, vec![controller::register_broker(&reg, epoch)])
        .unwrap();
    let records = controller::unfence_broker(&image, 1, epoch).unwrap();
    log.append(&image, records).unwrap()
}

fn add_topic(log: &mut MetadataLog, image: &MetadataImage, name: &str) -> MetadataImage {
    let records = controller::create_topic(
        image,
        name,
        Uuid::new_v4(),
        &Placement::auto(3, 1),
        PlacementStart::random(),
        &BTreeMap::from([("retention.ms".to_string(), "5".to_string())]),
    )
    .unwrap();
    log.append(image, records).unwrap()
}

#[test]
fn appended_batches_are_there_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(image.offset, -1);
    let mut image = registered(&mut log, image);
    for i in 0..20 {
        image = add_topic(&mut log, &image, &format!("t{i}"));
    }
    drop(log);
    let (log, reread) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(reread, image);
    assert_eq!(log.next_offset(), image.offset + 1);
}

#[test]
fn snapshots_bound_the_log_and_rebuild_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), 4096).unwrap();
    let mut image = registered(&mut log, image);
    for i in 0..60 {
        image = add_topic(&mut log, &image, &format!("topic-{i}"));
        if i % 7 == 0 {
            let r = controller::delete_topic(&image, &format!("topic-{i}")).unwrap();
            image = log.append(&image, vec![r]).unwrap();
        }
    }
    let meta = dir.path().join(METADATA_DIR);
    let log_len = std::fs::metadata(meta.join("metadata.log")).unwrap().len();
    assert!(log_len < 4096 + 2048, "log is {log_len} bytes");
    let snapshots = std::fs::read_dir(&meta)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(".checkpoint")
        })
        .count();
    assert_eq!(snapshots, 1, "older snapshots are removed");
    drop(log);
    let (mut log, reread) = MetadataLog::open(dir.path(), 4096).unwrap();
    assert_eq!(reread, image);
    // Offsets go on after the snapshot, never reused.
    let next = add_topic(&mut log, &reread, "after");
    assert_eq!(next.offset, image.offset + 1 + 4);
}

#[test]
fn a_torn_tail_is_cut_and_the_log_takes_appends_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    let image = registered(&mut log, image);
    let image = add_topic(&mut log, &image, "kept");
    drop(log);
    let path = dir.path().join(METADATA_DIR).join("metadata.log");
    let good_len = std::fs::metadata(&path).unwrap().len();
    // Half a frame, as a crash in the middle of a write leaves it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0, 0, 1, 0, 0xde, 0xad, b'{', b'"']).unwrap();
    drop(f);
    let (mut log, reread) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(reread, image);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    let image = add_topic(&mut log, &reread, "after-crash");
    drop(log);
    let (_, reread) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(reread, image);
    assert!(reread.topic("after-crash").is_some());
}

#[test]
fn a_batch_that_does_not_apply_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    let image = registered(&mut log, image);
    let image = add_topic(&mut log, &image, "t");
    let again = controller::delete_topic(&image, "t").unwrap();
    let image = log.append(&image, vec![again.clone()]).unwrap();
    // Removing it twice does not replay.
    assert!(log.append(&image, vec![again]).is_err());
    let next = log.next_offset();
    drop(log);
    let (log, reread) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(reread, image);
    assert_eq!(log.next_offset(), next);
}

#[test]
fn a_damaged_batch_before_good_ones_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    let image = registered(&mut log, image);
    add_topic(&mut log, &image, "t");
    drop(log);
    let path = dir.path().join(METADATA_DIR).join("metadata.log");
    let mut bytes = std::fs::read(&path).unwrap();
    // A flipped byte inside the first batch: its CRC fails, and acknowledged batches follow.
    bytes[10] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap_err();
    assert!(err.to_string().contains("damaged frame"), "{err}");
    // Nothing was cut: the file is as it was.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn zeros_after_the_last_batch_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, image) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    let image = registered(&mut log, image);
    drop(log);
    let path = dir.path().join(METADATA_DIR).join("metadata.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0u8; 4096]).unwrap();
    drop(f);
    let (_, reread) = MetadataLog::open(dir.path(), NO_SNAPSHOTS).unwrap();
    assert_eq!(reread, image);
}
