//! Produce-to-ack latency at a fixed rate, with librdkafka (the `rdkafka` crate): one producer
//! sends 1 KiB records at `RATE` msgs/s (default 5,000) round-robin over the topic's
//! partitions and measures, per record, the time from `send` to its delivery report.
//!
//! The send loop keeps the schedule itself (record i is due at start + i/RATE; it sleeps
//! until a little before that and spins the rest), so the achieved rate is the target rate
//! unless the machine cannot run the loop; the achieved rate is printed beside the
//! percentiles, and a run that fell behind says so.
//!
//! Usage: `cargo run --release -p sluice --example latency_bench -- [SLUICE_BINARY]` starts a
//! fresh server (the binary defaults to the `sluice` next to this example); with
//! `BOOTSTRAP=host:port` it measures a running broker instead (e.g. Apache Kafka from
//! `scripts/kafka-ref.sh`). Knobs (environment): RATE (5000), COUNT (50000), WARMUP (2000),
//! ACKS (all), LINGER_MS (0: the broker's latency, not the client's batching), SIZE (1024),
//! PARTITIONS (6), TOPIC (latency-PID). Output: one line
//! `latency: n=… rate=… p50_ms=… p99_ms=… p99.9_ms=… max_ms=…`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use sluice_testkit::{block_on, TestServer};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Collects the latency of each acknowledged record (µs) and counts failures.
#[derive(Clone, Default)]
struct Latencies {
    acked_us: Arc<Mutex<Vec<u64>>>,
    failed: Arc<Mutex<u64>>,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: Self::DeliveryOpaque) {
        let us = sent_at.elapsed().as_micros() as u64;
        match result {
            Ok(_) => self.acked_us.lock().expect("lock").push(us),
            Err(_) => *self.failed.lock().expect("lock") += 1,
        }
    }
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results =
        block_on(admin.create_topics(&[new], &AdminOptions::new())).expect("create topics");
    for r in results {
        if let Err((name, code)) = r {
            assert_eq!(
                code,
                RDKafkaErrorCode::TopicAlreadyExists,
                "create topic {name}"
            );
        }
    }
}

/// Sends `count` records at `rate`/s; returns the seconds the send loop took.
fn run(producer: &ThreadedProducer<Latencies>, topic: &str, count: usize, rate: f64) -> f64 {
    let partitions: i32 = env_or("PARTITIONS", 6);
    let payload = vec![b'x'; env_or("SIZE", 1024)];
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            let left = due - now;
            if left > Duration::from_micros(300) {
                std::thread::sleep(left - Duration::from_micros(200));
            } else {
                std::hint::spin_loop();
            }
        }
        let mut opaque = Box::new(Instant::now());
        loop {
            let record = BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, opaque)
                .payload(&payload)
                .partition(i as i32 % partitions);
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                    opaque = record.delivery_opaque;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("send: {e}"),
            }
        }
    }
    start.elapsed().as_secs_f64()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn main() {
    let server = match std::env::var("BOOTSTRAP") {
        Ok(_) => None,
        Err(_) => {
            let binary = std::env::args().nth(1).unwrap_or_else(|| {
                let exe = std::env::current_exe().expect("current exe");
                let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
                dir.join("sluice").display().to_string()
            });
            Some(TestServer::start(binary, &[]))
        }
    };
    let bootstrap = match &server {
        Some(s) => s.bootstrap(),
        None => std::env::var("BOOTSTRAP").expect("BOOTSTRAP"),
    };
    let rate: f64 = env_or("RATE", 5000.0);
    let count: usize = env_or("COUNT", 50_000);
    let warmup: usize = env_or("WARMUP", 2_000);
    let topic =
        std::env::var("TOPIC").unwrap_or_else(|_| format!("latency-{}", std::process::id()));
    create_topic(&bootstrap, &topic, env_or("PARTITIONS", 6));

    let context = Latencies::default();
    let producer: ThreadedProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set(
            "acks",
            std::env::var("ACKS").unwrap_or_else(|_| "all".into()),
        )
        .set(
            "linger.ms",
            std::env::var("LINGER_MS").unwrap_or_else(|_| "0".into()),
        )
        .create_with_context(context.clone())
        .expect("producer");
    run(&producer, &topic, warmup, rate);
    producer
        .flush(Duration::from_secs(30))
        .expect("flush warm-up");
    context.acked_us.lock().expect("lock").clear();

    let seconds = run(&producer, &topic, count, rate);
    producer.flush(Duration::from_secs(60)).expect("flush");
    let mut acked = context.acked_us.lock().expect("lock").clone();
    let failed = *context.failed.lock().expect("lock");
    acked.sort_unstable();
    assert!(!acked.is_empty(), "nothing was acknowledged");
    let achieved = count as f64 / seconds;
    println!(
        "latency: n={} failed={failed} rate={achieved:.0} p50_ms={:.2} p99_ms={:.2} p99.9_ms={:.2} max_ms={:.2}",
        acked.len(),
        percentile(&acked, 50.0),
        percentile(&acked, 99.0),
        percentile(&acked, 99.9),
        percentile(&acked, 100.0),
    );
    if achieved < rate * 0.98 {
        println!("latency: the send loop fell behind ({achieved:.0} of {rate:.0} msgs/s)");
    }
}
