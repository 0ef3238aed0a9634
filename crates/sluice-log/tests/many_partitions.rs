//! Goal: a log dir with 10,000 partitions opens in seconds, after a crash and after a clean
//! shutdown, without holding file descriptors for idle partitions. Method: create 10,000 logs
//! (a few with data) through a LogManager and drop it without closing (a crash), reopen
//! (recovery), close cleanly, reopen again (no recovery), timing each step. The directory lives
//! on /dev/shm when there is one: creating 40,000 files costs ~40 s on the CI machines' disk,
//! which is the disk's cost, not the open path's (measured on disk in bench/RESULTS.md).

use std::time::Instant;

use sluice_log::{LogConfig, LogManager, TopicPartition};
use sluice_proto::batch::{encode_batch, SimpleRecord};

const PARTITIONS: i32 = 10_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(&format!("topic-{}", p % 100), p / 100)
}

#[test]
fn ten_thousand_partitions_open_in_seconds() {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let started = Instant::now();
    {
        let manager = LogManager::open(dir.path(), LogConfig::default(), &|_| None).unwrap();
        for p in 0..PARTITIONS {
            let log = manager.get_or_create(&tp(p), None).unwrap();
            if p % 1000 == 0 {
                let mut bytes = Vec::new();
                let value = [7u8; 100];
                let record = SimpleRecord {
                    timestamp_delta: 0,
                    key: None,
                    value: Some(&value),
                };
                encode_batch(&mut bytes, &Default::default(), &[record; 3]);
                log.append_as_leader(&mut bytes, 0, 0).unwrap();
            }
        }
    }
    let created = started.elapsed();

    let fds_before = open_fds();
    let started = Instant::now();
    let manager = LogManager::open(dir.path(), LogConfig::default(), &|_| None).unwrap();
    let unclean_open = started.elapsed();
    assert_eq!(manager.partitions().len(), PARTITIONS as usize);
    assert_eq!(manager.get(&tp(1000)).unwrap().log_end_offset(), 3);
    assert_eq!(manager.get(&tp(1001)).unwrap().log_end_offset(), 0);
    let started = Instant::now();
    manager.close().unwrap();
    let close = started.elapsed();
    drop(manager);

    let started = Instant::now();
    let manager = LogManager::open(dir.path(), LogConfig::default(), &|_| None).unwrap();
    let clean_open = started.elapsed();
    assert_eq!(manager.partitions().len(), PARTITIONS as usize);
    assert!(
        open_fds() < fds_before + 100,
        "idle partitions hold no descriptors"
    );
    assert_eq!(manager.get(&tp(3000)).unwrap().log_end_offset(), 3);
    eprintln!(
        "{PARTITIONS} partitions: create {created:?}, unclean open {unclean_open:?}, \
         close {close:?}, clean open {clean_open:?}"
    );
    assert!(clean_open.as_secs() < 10, "clean open took {clean_open:?}");
    assert!(
        unclean_open.as_secs() < 20,
        "unclean open took {unclean_open:?}"
    );
}
