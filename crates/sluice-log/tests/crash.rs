//! Goal: a process killed at any point loses nothing it flushed, exposes no partial batch, and
//! its log accepts appends at the right offsets after reopen. Method: this test binary re-runs
//! itself as a child (`SLUICE_CRASH_DIR` set) that appends and flushes in a loop through a
//! LogManager (alternating the in-place and the shared-buffer append), printing each flushed
//! log end offset; the parent SIGKILLs it after a random
//! delay, reopens the log dir (alternating clean closes and plain drops), and checks every batch.
//! Rounds: `SLUICE_CRASH_ROUNDS` (default 50).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_log::{LogConfig, LogManager, TopicPartition};
use sluice_proto::batch::BatchSpec;

const RECORDS_PER_BATCH: i64 = 4;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    }
}

fn partition() -> TopicPartition {
    TopicPartition::new("crash", 0)
}

/// Batch `n` carries `n` as its base timestamp, so the parent can check content by offset.
fn numbered_batch(n: i64) -> Vec<u8> {
    common::batch_with(
        RECORDS_PER_BATCH as usize,
        200,
        BatchSpec {
            base_timestamp: n,
            ..BatchSpec::default()
        },
    )
}

/// The child: append forever, flushing and checkpointing every few batches.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("SLUICE_CRASH_DIR") else {
        return;
    };
    let manager = LogManager::open(Path::new(&dir), config(), &|_| None).unwrap();
    let log = manager.get_or_create(&partition(), None).unwrap();
    let mut stdout = std::io::stdout();
    let mut n = log.log_end_offset() / RECORDS_PER_BATCH;
    loop {
        // Both leader append paths: stamped in place, and gathered from a shared buffer.
        let mut bytes = numbered_batch(n);
        if n % 2 == 0 {
            log.append_as_leader(&mut bytes, 0, sluice_log::now_ms())
                .unwrap();
        } else {
            log.append_shared_as_leader(&bytes, 0, sluice_log::now_ms())
                .unwrap();
        }
        n += 1;
        if n % 7 == 0 {
            log.flush().unwrap();
            manager.checkpoint().unwrap();
            writeln!(stdout, "flushed {}", log.log_end_offset()).unwrap();
            stdout.flush().unwrap();
        }
    }
}

#[test]
fn sigkill_at_random_points_loses_no_flushed_batch() {
    if std::env::var("SLUICE_CRASH_DIR").is_ok() {
        return;
    }
    let rounds: u64 = std::env::var("SLUICE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ std::process::id() as u64;
    let mut cuts = 0;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("SLUICE_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(offset) = line.strip_prefix("flushed ") {
                    let _ = sender.send(offset.trim().parse::<i64>().unwrap());
                }
            }
        });
        // Wait for the child to have flushed at least once, then kill it at a random moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut flushed = receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("child made progress");
        let kill_at = Instant::now() + Duration::from_millis(seed % 40);
        while Instant::now() < kill_at && Instant::now() < deadline {
            if let Ok(offset) = receiver.recv_timeout(Duration::from_millis(1)) {
                flushed = offset;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        flushed = receiver.try_iter().last().unwrap_or(flushed);

        let manager = LogManager::open(dir.path(), config(), &|_| None).unwrap();
        let log = manager.get(&partition()).expect("partition survives");
        cuts += usize::from(log.recovery_report().is_some());
        let end = log.log_end_offset();
        assert!(
            end >= flushed,
            "round {round}: flushed up to {flushed} but the log ends at {end}"
        );
        assert_eq!(
            end % RECORDS_PER_BATCH,
            0,
            "round {round}: partial batch visible"
        );
        let headers = common::read_all(&log, 0);
        assert_eq!(headers.len() as i64, end / RECORDS_PER_BATCH);
        for (i, header) in headers.iter().enumerate() {
            assert_eq!(
                header.base_offset,
                i as i64 * RECORDS_PER_BATCH,
                "round {round}"
            );
            assert_eq!(
                header.base_timestamp, i as i64,
                "round {round}: batch content"
            );
        }
        assert_eq!(
            common::append(&log, numbered_batch(end / RECORDS_PER_BATCH)),
            end
        );
        if round % 2 == 0 {
            manager.close().unwrap();
        }
    }
    eprintln!("{rounds} rounds, {cuts} recoveries cut a torn tail");
}
