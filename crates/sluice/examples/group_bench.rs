//! Consumer-group benchmark with librdkafka: how long a group of 10 members on 60 partitions
//! takes to rebalance after one member leaves, and how many OffsetCommits per second one
//! consumer gets through.
//!
//! Usage: `cargo run --release -p sluice --example group_bench -- [SLUICE_BINARY] [RUNS]`
//! (the binary defaults to the `sluice` next to this example), or with `BOOTSTRAP=host:port` against
//! a running broker such as Apache Kafka (`scripts/kafka-ref.sh`). Each run starts a fresh server
//! with `group.initial.rebalance.delay.ms=0`; consumers use librdkafka's defaults except
//! `session.timeout.ms=10000`. The survivors learn of a rebalance from their next heartbeat
//! (every 3 s by default, `HEARTBEAT_MS=…` to change), as with Kafka, so that interval
//! dominates the figure.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{wait_for, TestServer};

const MEMBERS: usize = 10;
const PARTITIONS: i32 = 60;
const COMMITS: usize = 20_000;

/// `heartbeat.interval.ms` of the members: `$HEARTBEAT_MS`, else librdkafka's default 3000.
fn heartbeat_ms() -> String {
    std::env::var("HEARTBEAT_MS").unwrap_or_else(|_| "3000".into())
}

/// A polling consumer thread publishing its assignment.
struct Member {
    assignment: Arc<Mutex<BTreeSet<i32>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, topic: &str) -> Member {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", heartbeat_ms())
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (assignment.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let _ = consumer.poll(Duration::from_millis(20));
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().expect("lock") =
                        tpl.elements().iter().map(|e| e.partition()).collect();
                }
            }
            consumer.unsubscribe();
        });
        Member {
            assignment,
            stop,
            thread: Some(thread),
        }
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether the members' assignments are disjoint and cover every partition.
fn covered(members: &[Member]) -> bool {
    let sets: Vec<BTreeSet<i32>> = members
        .iter()
        .map(|m| m.assignment.lock().expect("lock").clone())
        .collect();
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let union: BTreeSet<i32> = sets.into_iter().flatten().collect();
    total == PARTITIONS as usize && union.len() == PARTITIONS as usize
}

/// Where to run: a `sluice` binary started fresh for each measurement, or a broker already
/// running (`BOOTSTRAP=host:port`, e.g. Apache Kafka for the same run).
enum Target {
    Binary(String),
    Bootstrap(String),
}

impl Target {
    /// A server (kept alive by the returned guard) and its bootstrap address.
    fn serve(&self, overrides: &[&str]) -> (Option<TestServer>, String) {
        match self {
            Target::Binary(b) => {
                let s = TestServer::start(b, overrides);
                let addr = s.bootstrap();
                (Some(s), addr)
            }
            Target::Bootstrap(b) => (None, b.clone()),
        }
    }
}

/// A name no earlier run used (an external broker keeps its topics and groups).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos}")
}

fn rebalance_after_leave_ms(target: &Target) -> f64 {
    let (_server, b) = target.serve(&["group.initial.rebalance.delay.ms=0"]);
    let (topic_name, group) = (unique("bench"), unique("bench-group"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("admin");
    let topic = NewTopic::new(&topic_name, PARTITIONS, TopicReplication::Fixed(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for r in rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .expect("create")
    {
        r.expect("created");
    }
    let mut members: Vec<Member> = (0..MEMBERS)
        .map(|_| Member::start(&b, &group, &topic_name))
        .collect();
    let balanced = |ms: &[Member], n: usize| {
        covered(ms)
            && ms
                .iter()
                .all(|m| m.assignment.lock().expect("lock").len() == PARTITIONS as usize / n)
    };
    assert!(wait_for(Duration::from_secs(120), || balanced(
        &members, MEMBERS
    )));
    let leaving = members.pop().expect("a member");
    let started = Instant::now();
    leaving.close();
    // The nine survivors hold 54 partitions until the rebalance gives them all 60.
    assert!(wait_for(Duration::from_secs(120), || covered(&members)));
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    for m in members {
        m.close();
    }
    elapsed
}

fn commits_per_second(target: &Target) -> f64 {
    let (_server, b) = target.serve(&[]);
    let topic_name = unique("commits");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", unique("commit-bench"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let topic = NewTopic::new(&topic_name, 1, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics(&[topic], &AdminOptions::new()))
        .expect("create")
    {
        r.expect("created");
    }
    let started = Instant::now();
    for i in 0..COMMITS {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic_name, 0, Offset::Offset(i as i64 + 1))
            .expect("tpl");
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    COMMITS as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args.next().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current exe");
        let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
        dir.join("sluice").display().to_string()
    });
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let target = match std::env::var("BOOTSTRAP") {
        Ok(b) => Target::Bootstrap(b),
        Err(_) => Target::Binary(binary),
    };
    let mut times: Vec<f64> = (0..runs)
        .map(|_| rebalance_after_leave_ms(&target))
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "rebalance after one of {MEMBERS} members leaves ({PARTITIONS} partitions): median {:.0} ms, runs {:?}",
        times[times.len() / 2],
        times.iter().map(|t| t.round() as i64).collect::<Vec<_>>()
    );
    println!(
        "OffsetCommit (librdkafka, synchronous, 1 partition): {:.0} commits/s",
        commits_per_second(&target)
    );
}
