//! Storage-engine benchmarks: append throughput beside a raw `std::fs` sequential write of the
//! same bytes, read throughput (page cache), offset lookup in a 1 GiB log, recovery per GiB.
//! The append group runs twice: timed by the wall clock, and by the benchmark thread's CPU time
//! (`_thread_cpu`, for a machine other work keeps busy).
//! Run: `cargo bench -p sluice-log --bench log`; figures go to `bench/RESULTS.md`. The large
//! logs the read and lookup benchmarks need are only written when those benchmarks run, so a
//! filtered run (`-- append_16k`) writes nothing else.

use std::cell::OnceCell;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_log::{Log, LogConfig, LogOpenOptions};
use sluice_proto::batch::{encode_batch, BatchSpec, SimpleRecord};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

/// A 16 KiB batch of sixteen 1 KiB records.
fn batch_16k() -> Vec<u8> {
    let value = vec![0x5Au8; RECORD_BYTES - 20];
    let records: Vec<SimpleRecord<'_>> = (0..RECORDS_PER_BATCH)
        .map(|i| SimpleRecord {
            timestamp_delta: i as i64,
            key: None,
            value: Some(&value),
        })
        .collect();
    let mut out = Vec::new();
    encode_batch(
        &mut out,
        &BatchSpec {
            base_timestamp: 1_700_000_000_000,
            ..BatchSpec::default()
        },
        &records,
    );
    out
}

fn bench_dir() -> tempfile::TempDir {
    // The same disk as the working tree (not a tmpfs), so raw and log writes compare fairly.
    let root = std::env::var("SLUICE_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    tempfile::tempdir_in(root).unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 * 1024 * 1024,
        ..LogConfig::default()
    }
}

/// What a timed loop measures.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Wall time: the throughput a quiet machine gives.
    Wall,
    /// CPU time of the benchmark thread, user and kernel (the write's copy into the page cache
    /// runs in the thread's system call): what an append costs, without the time other
    /// processes hold a busy machine's cores (their cache pollution still shows).
    ThreadCpu,
}

impl Clock {
    fn read(self) -> Duration {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        match self {
            Clock::Wall => EPOCH.get_or_init(Instant::now).elapsed(),
            Clock::ThreadCpu => thread_cpu_time(),
        }
    }
}

#[allow(unsafe_code)]
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn append(c: &mut Criterion) {
    append_group(c, "append_16k_batches", Clock::Wall);
    append_group(c, "append_16k_batches_thread_cpu", Clock::ThreadCpu);
}

fn append_group(c: &mut Criterion, name: &str, clock: Clock) {
    let batch = batch_16k();
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.measurement_time(Duration::from_secs(4));
    // The raw write runs before and after the log append, so that neither side gains from the
    // page-cache and writeback state the other leaves behind.
    let raw = |b: &mut criterion::Bencher<'_>| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let mut file = File::create(dir.path().join("raw")).unwrap();
            let started = clock.read();
            for _ in 0..iters {
                file.write_all(black_box(&batch)).unwrap();
            }
            clock.read() - started
        })
    };
    group.bench_function("raw_std_fs_write", raw);
    group.bench_function("log_append_as_leader", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let log = Log::open(dir.path(), config(), LogOpenOptions::default()).unwrap();
            let mut buf = batch.clone();
            // Steady state: the first append of a leader epoch writes (and fsyncs) the
            // leader-epoch checkpoint once, which is not the cost of an append.
            log.append_as_leader(&mut buf, 0, 1_700_000_000_000)
                .unwrap();
            let started = clock.read();
            for _ in 0..iters {
                log.append_as_leader(&mut buf, 0, 1_700_000_000_000)
                    .unwrap();
            }
            clock.read() - started
        })
    });
    group.bench_function("log_append_shared_as_leader", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let log = Log::open(dir.path(), config(), LogOpenOptions::default()).unwrap();
            log.append_shared_as_leader(&batch, 0, 1_700_000_000_000)
                .unwrap();
            let started = clock.read();
            for _ in 0..iters {
                log.append_shared_as_leader(black_box(&batch), 0, 1_700_000_000_000)
                    .unwrap();
            }
            clock.read() - started
        })
    });
    group.bench_function("raw_std_fs_write_again", raw);
    // Not the baseline: the raw write with the log's own trick, blocks reserved ahead with
    // fallocate(KEEP_SIZE) 4 MiB at a time, to show how much of the log's lead comes from it.
    group.bench_function("raw_std_fs_write_preallocated", |b| {
        b.iter_custom(|iters| {
            let dir = bench_dir();
            let mut file = File::create(dir.path().join("raw")).unwrap();
            let started = clock.read();
            let (mut written, mut reserved) = (0u64, 0u64);
            for _ in 0..iters {
                if written + batch.len() as u64 > reserved {
                    preallocate(&file, reserved, 4 << 20);
                    reserved += 4 << 20;
                }
                file.write_all(black_box(&batch)).unwrap();
                written += batch.len() as u64;
            }
            clock.read() - started
        })
    });
    // The CRC32C check every append must make: the floor of the append's own CPU cost.
    group.bench_function("crc32c_validate_only", |b| {
        b.iter_custom(|iters| {
            let started = clock.read();
            for _ in 0..iters {
                assert!(sluice_proto::batch::validate_crc(black_box(&batch)));
            }
            clock.read() - started
        })
    });
    group.finish();
}

#[allow(unsafe_code)]
fn preallocate(file: &File, position: u64, len: u64) {
    // SAFETY: a plain system call on a descriptor `file` keeps open; no memory is passed.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            position as libc::off_t,
            len as libc::off_t,
        )
    };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
}

/// A log of `bytes` bytes of 16 KiB batches.
fn filled_log(dir: &std::path::Path, bytes: u64) -> Log {
    let log = Log::open(dir, config(), LogOpenOptions::default()).unwrap();
    let mut buf = batch_16k();
    while log.size_bytes() < bytes {
        log.append_as_leader(&mut buf, 0, 1_700_000_000_000)
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    log
}

fn read(c: &mut Criterion) {
    let dir = bench_dir();
    let log = OnceCell::new();
    let filled = || log.get_or_init(|| filled_log(dir.path(), 256 * 1024 * 1024));
    let mut group = c.benchmark_group("read_1mib_fetch");
    group.throughput(Throughput::Bytes(1024 * 1024));
    group.measurement_time(Duration::from_secs(3));
    let mut next = 0i64;
    group.bench_function("read_bytes_copy", |b| {
        let log = filled();
        let end = log.log_end_offset();
        b.iter(|| {
            next = (next + 7919 * RECORDS_PER_BATCH as i64) % end;
            black_box(log.read_bytes(next, 1024 * 1024, end, true).unwrap());
        })
    });
    group.bench_function("read_slices_only", |b| {
        let log = filled();
        let end = log.log_end_offset();
        b.iter(|| {
            next = (next + 7919 * RECORDS_PER_BATCH as i64) % end;
            black_box(log.read(next, 1024 * 1024, end, true).unwrap());
        })
    });
    group.finish();
}

fn lookup_and_recovery(c: &mut Criterion) {
    let dir = bench_dir();
    let gib = 1024 * 1024 * 1024;
    let log = OnceCell::new();
    let filled = || log.get_or_init(|| filled_log(dir.path(), gib));
    let mut group = c.benchmark_group("one_gib_log");
    group.measurement_time(Duration::from_secs(3));
    let mut next = 0i64;
    group.bench_function("find_offset", |b| {
        let log = filled();
        let end = log.log_end_offset();
        b.iter(|| {
            next = (next + 104_729) % end;
            black_box(log.read(next, 1, end, true).unwrap());
        })
    });
    group.sample_size(10);
    group.throughput(Throughput::Bytes(gib));
    group.bench_function("recover_unclean_open", |b| {
        filled().close().unwrap();
        b.iter_batched(
            || (),
            |()| {
                let log = Log::open(dir.path(), config(), LogOpenOptions::default()).unwrap();
                assert!(log.recovery_report().is_none());
                black_box(log.log_end_offset())
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, append, read, lookup_and_recovery);
criterion_main!(benches);
