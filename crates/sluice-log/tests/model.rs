//! Goal: after any sequence of append / roll / truncate / flush / advance-start / reopen, the
//! log reads back exactly what a trivial in-memory model holds. Method: proptest generates the
//! operation sequences; the model is a list of stamped batches plus the log start offset.

mod common;

use proptest::prelude::*;
use sluice_log::{Log, LogConfig, LogOpenOptions};
use sluice_proto::batch::{BatchHeader, BatchIter};

#[derive(Debug, Clone)]
enum Op {
    /// One append request of several batches: (records, value size) each; from a shared
    /// buffer (gathered write) or stamped in place.
    Append(Vec<(usize, usize)>, bool),
    Roll,
    /// Truncate to a point chosen by the fraction of the live offset range.
    Truncate(u8),
    Flush,
    Reopen {
        clean: bool,
    },
    AdvanceStart(u8),
    /// Read from a chosen offset with a byte limit.
    Read(u8, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec((1usize..5, 0usize..200), 1..4), any::<bool>())
            .prop_map(|(specs, shared)| Op::Append(specs, shared)),
        1 => Just(Op::Roll),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => any::<u8>().prop_map(Op::AdvanceStart),
        2 => (any::<u8>(), any::<u16>()).prop_map(|(at, max)| Op::Read(at, max)),
    ]
}

#[derive(Debug, Default)]
struct Model {
    batches: Vec<(BatchHeader, Vec<u8>)>,
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn pick(&self, fraction: u8) -> i64 {
        self.log_start + (self.log_end - self.log_start) * i64::from(fraction) / 255
    }

    /// Bytes a read from `offset` without limits must return.
    fn bytes_from(&self, offset: i64) -> Vec<u8> {
        self.batches
            .iter()
            .filter(|(h, _)| h.last_offset() >= offset)
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 128,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn reopen(dir: &std::path::Path, log: Log, clean: bool) -> Log {
    let options = LogOpenOptions {
        recovery_point: log.recovery_point(),
        log_start_offset: log.log_start_offset(),
        high_watermark: log.high_watermark(),
        clean_shutdown: clean,
        ..LogOpenOptions::default()
    };
    if clean {
        log.close().unwrap();
    }
    drop(log);
    Log::open(dir, config(), options).unwrap()
}

fn check(log: &Log, model: &Model) {
    assert_eq!(log.log_end_offset(), model.log_end);
    assert_eq!(log.log_start_offset(), model.log_start);
    let (_, bytes) = log
        .read_bytes(model.log_start, usize::MAX / 2, i64::MAX, true)
        .unwrap();
    assert_eq!(bytes.as_ref(), model.bytes_from(model.log_start).as_slice());
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(), LogOpenOptions::default()).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(specs, shared) => {
                let mut request = Vec::new();
                for (records, size) in specs {
                    request.extend_from_slice(&common::batch(records, size, 1000));
                }
                if shared {
                    // The model stamps its own copy, as the log stamps what it writes.
                    log.append_shared_as_leader(&request, 1, 0).unwrap();
                    let mut next_offset = model.log_end;
                    let mut position = 0;
                    while position < request.len() {
                        let header = BatchHeader::parse(&request[position..]).unwrap();
                        let batch = &mut request[position..position + header.total_size()];
                        sluice_proto::batch::set_base_offset(batch, next_offset);
                        sluice_proto::batch::set_partition_leader_epoch(batch, 1);
                        next_offset += i64::from(header.last_offset_delta) + 1;
                        position += header.total_size();
                    }
                } else {
                    log.append_as_leader(&mut request, 1, 0).unwrap();
                }
                for item in BatchIter::new(&request) {
                    let (header, range) = item.unwrap();
                    model.log_end = header.next_offset();
                    model.batches.push((header, request[range].to_vec()));
                }
            }
            Op::Roll => log.roll(0).unwrap(),
            Op::Truncate(fraction) => {
                let offset = model.pick(fraction);
                log.truncate_to(offset, 0).unwrap();
                if let Some(cut) = model
                    .batches
                    .iter()
                    .position(|(h, _)| h.last_offset() >= offset)
                {
                    model.log_end = model.batches[cut].0.base_offset.min(offset);
                    model.batches.truncate(cut);
                }
                if model.log_end < model.log_start {
                    // The batch holding the log start was cut: the log restarts empty.
                    (model.log_start, model.log_end) = (offset, offset);
                }
            }
            Op::Flush => log.flush().unwrap(),
            Op::Reopen { clean } => log = reopen(dir.path(), log, clean),
            Op::AdvanceStart(fraction) => {
                let offset = model.pick(fraction);
                log.set_high_watermark(model.log_end);
                log.advance_log_start_offset(offset, 0).unwrap();
                model.log_start = model.log_start.max(offset);
                model
                    .batches
                    .retain(|(h, _)| h.last_offset() >= model.log_start);
            }
            Op::Read(fraction, max_bytes) => {
                let offset = model.pick(fraction);
                let (_, bytes) = log
                    .read_bytes(offset, usize::from(max_bytes), i64::MAX, true)
                    .unwrap();
                let expected = model.bytes_from(offset);
                assert!(
                    expected.starts_with(&bytes),
                    "a read is a prefix of the model"
                );
                if !expected.is_empty() {
                    assert!(!bytes.is_empty(), "min_one_message returns the first batch");
                }
                assert!(BatchIter::new(&bytes).all(|b| b.is_ok()));
            }
        }
        check(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}
