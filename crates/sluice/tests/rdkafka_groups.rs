//! Consumer groups with librdkafka (the `rdkafka` crate) against the real `sluice server`:
//! partition assignment across members, rebalances when members leave or die, committed
//! offsets resumed by new members and kept across a restart, cooperative-sticky incremental
//! rebalances, static membership, and the error codes of bad group requests; the same with the
//! consumer group protocol (KIP-848, `group.protocol=consumer`).
//!
//! Method: each test starts its own server with short group timeouts
//! (`group.min.session.timeout.ms`, `group.initial.rebalance.delay.ms=0`), runs consumers in
//! their own threads that poll continuously (as applications do), and polls their assignments
//! with a deadline rather than sleeping.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    ListGroupsRequest, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, wait_for, TestServer};

/// Session timeout the members use: short, so that a killed member is noticed quickly.
const SESSION_MS: &str = "3000";
/// Longest wait for a group to settle.
const SETTLE: Duration = Duration::from_secs(40);

/// Client settings of a member using the consumer group protocol (KIP-848).
const CONSUMER_PROTOCOL: [(&str, &str); 1] = [("group.protocol", "consumer")];

/// A server whose consumer groups (KIP-848) time out members after 3 s and ask for heartbeats
/// every 300 ms, as the classic members of these tests are configured.
fn consumer_protocol_server() -> TestServer {
    TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "group.consumer.session.timeout.ms=3000",
            "group.consumer.heartbeat.interval.ms=300",
            // For the classic members some tests mix in.
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            "offsets.topic.num.partitions=5",
        ],
    )
}

fn server() -> TestServer {
    TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000",
            "offsets.topic.num.partitions=5",
        ],
    )
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in block_on(admin.create_topics(&[topic], &AdminOptions::new())).expect("create") {
        r.expect("topic created");
    }
}

/// Produces `per_partition` records to each partition; values are `p-<partition>-<n>`.
fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for part in 0..partitions {
        for n in 0..per_partition {
            let value = format!("p-{part}-{n}");
            p.send(
                BaseRecord::<(), _>::to(topic)
                    .partition(part)
                    .payload(&value),
            )
            .expect("enqueue");
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn consumer_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("group.id", group);
    // With the consumer group protocol (KIP-848) the server sets these (librdkafka refuses them).
    if !extra.contains(&CONSUMER_PROTOCOL[0]) {
        c.set("session.timeout.ms", SESSION_MS)
            .set("heartbeat.interval.ms", "300");
    }
    c.set("max.poll.interval.ms", "10000")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// A consumer polling in its own thread, recording its assignment and what it read.
struct Member {
    /// Partitions currently assigned.
    assignment: Arc<Mutex<BTreeSet<i32>>>,
    /// (partition, offset) of every record read.
    seen: Arc<Mutex<Vec<(i32, i64)>>>,
    /// Tells the thread to stop; `close` says whether it leaves the group cleanly.
    stop: Arc<AtomicBool>,
    /// Set when the thread should drop its consumer without closing (a crash).
    crash: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> Member {
        Self::start_committing(bootstrap, group, topic, extra, None)
    }

    /// Like [`Member::start`]; with `commit_below`, commits each record below that offset.
    fn start_committing(
        bootstrap: &str,
        group: &str,
        topic: &str,
        extra: &[(&str, &str)],
        commit_below: Option<i64>,
    ) -> Member {
        let consumer: BaseConsumer = consumer_config(bootstrap, group, extra)
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let crash = Arc::new(AtomicBool::new(false));
        let (a, s, st, cr) = (
            assignment.clone(),
            seen.clone(),
            stop.clone(),
            crash.clone(),
        );
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    s.lock().unwrap().push((m.partition(), m.offset()));
                    if commit_below.is_some_and(|below| m.offset() < below) {
                        consumer
                            .commit_message(&m, CommitMode::Sync)
                            .expect("commit");
                    }
                }
                if let Ok(tpl) = consumer.assignment() {
                    *a.lock().unwrap() = tpl.elements().iter().map(|e| e.partition()).collect();
                }
            }
            if cr.load(Ordering::SeqCst) {
                // Leak the consumer: no LeaveGroup, no more heartbeats, as if the process died.
                std::mem::forget(consumer);
            } else {
                consumer.unsubscribe();
                drop(consumer);
            }
        });
        Member {
            assignment,
            seen,
            stop,
            crash,
            thread: Some(thread),
        }
    }

    fn assigned(&self) -> BTreeSet<i32> {
        self.assignment.lock().unwrap().clone()
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }

    fn kill(mut self) {
        self.crash.store(true, Ordering::SeqCst);
        self.close_inner();
    }

    fn close_inner(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("consumer thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.close_inner();
    }
}

/// Waits until the members' assignments are disjoint, cover `0..partitions`, and each has
/// between `min` and `max` partitions.
fn wait_balanced(
    members: &[&Member],
    partitions: i32,
    min: usize,
    max: usize,
) -> Vec<BTreeSet<i32>> {
    let mut last = Vec::new();
    let ok = wait_for(SETTLE, || {
        last = members.iter().map(|m| m.assigned()).collect();
        let total: usize = last.iter().map(|a| a.len()).sum();
        let union: BTreeSet<i32> = last.iter().flatten().copied().collect();
        total == partitions as usize
            && union == (0..partitions).collect()
            && last.iter().all(|a| (min..=max).contains(&a.len()))
    });
    assert!(ok, "assignments never balanced: {last:?}");
    last
}

/// Goal: a group splits a topic's partitions among its members and rebalances when one closes
/// and when one dies without leaving. Method: three members on six partitions get two each;
/// one closes (LeaveGroup) and the other two cover all six; then one is killed (no LeaveGroup)
/// and the last one gets all six after the session timeout.
#[test]
fn members_share_partitions_and_rebalance_on_leave_and_death() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "shared", 6);
    let m1 = Member::start(&b, "g1", "shared", &[]);
    let m2 = Member::start(&b, "g1", "shared", &[]);
    let m3 = Member::start(&b, "g1", "shared", &[]);
    wait_balanced(&[&m1, &m2, &m3], 6, 2, 2);
    m3.close();
    wait_balanced(&[&m1, &m2], 6, 3, 3);
    let started = Instant::now();
    m2.kill();
    wait_balanced(&[&m1], 6, 6, 6);
    // Not before the session timeout could have expired (less the timer granularity).
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    m1.close();
}

/// Goal: committed offsets are resumed by a new member, and nothing before the commit point is
/// read again. Method: a member reads and commits the first half of each partition, closes; a
/// new member of the same group reads the rest and never an offset below the commit.
#[test]
fn committed_offsets_are_resumed_by_a_new_member() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "resume", 3);
    produce(&b, "resume", 3, 10);
    let first = Member::start_committing(&b, "g2", "resume", &[], Some(5));
    assert!(
        wait_for(SETTLE, || first.seen.lock().unwrap().len() >= 30),
        "first member read {:?}",
        first.seen.lock().unwrap()
    );
    first.close();
    // What the group committed: offset 5 (the next to read) on every partition.
    let check: BaseConsumer = consumer_config(&b, "g2", &[]).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("resume", p);
    }
    let committed = check
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    for e in committed.elements() {
        assert_eq!(e.offset(), Offset::Offset(5), "{e:?}");
    }
    drop(check);
    let second = Member::start(&b, "g2", "resume", &[]);
    assert!(
        wait_for(SETTLE, || second.seen.lock().unwrap().len() >= 15),
        "second member read {:?}",
        second.seen.lock().unwrap()
    );
    let seen = second.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, o)| *o >= 5),
        "re-read before the commit point: {seen:?}"
    );
    assert_eq!(seen.len(), 15, "{seen:?}");
}

/// Samples a member's assignment every few milliseconds until stopped; returns the samples.
fn sample(member: &Member, stop: &AtomicBool) -> Vec<BTreeSet<i32>> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        samples.push(member.assigned());
        std::thread::sleep(Duration::from_millis(5));
    }
    samples
}

/// Goal: cooperative-sticky rebalances are incremental: a member keeps the partitions it
/// still owns throughout the rebalance. Method: two members share six partitions; a third
/// joins; the first member's assignment, sampled during the rebalance, always contains what it
/// keeps in the end.
#[test]
fn cooperative_sticky_keeps_unaffected_partitions() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "coop", 6);
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let m1 = Member::start(&b, "g3", "coop", &coop);
    let m2 = Member::start(&b, "g3", "coop", &coop);
    let before = wait_balanced(&[&m1, &m2], 6, 3, 3);
    let stop = AtomicBool::new(false);
    let (samples, after) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample(&m1, &stop));
        let m3 = Member::start(&b, "g3", "coop", &coop);
        let after = wait_balanced(&[&m1, &m2, &m3], 6, 2, 2);
        stop.store(true, Ordering::SeqCst);
        (sampler.join().expect("sampler"), after)
    });
    let kept: BTreeSet<i32> = after[0].intersection(&before[0]).copied().collect();
    assert_eq!(kept, after[0], "sticky: m1 only gives partitions away");
    for s in &samples {
        assert!(
            kept.is_subset(s),
            "m1 lost a kept partition mid-rebalance: {s:?} (kept {kept:?})"
        );
    }
}

/// Goal: a static member (`group.instance.id`) restarted within the session timeout gets its
/// partitions back without a rebalance of the others. Method: two static members; one is
/// killed and restarted with the same instance id; the other's assignment, sampled all along,
/// never changes, and the restarted one gets exactly its old partitions.
#[test]
fn static_member_restart_does_not_rebalance() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "static", 4);
    let conf = |id: &'static str| [("group.instance.id", id), ("session.timeout.ms", "10000")];
    let m1 = Member::start(&b, "g4", "static", &conf("one"));
    let m2 = Member::start(&b, "g4", "static", &conf("two"));
    let before = wait_balanced(&[&m1, &m2], 4, 2, 2);
    let stop = AtomicBool::new(false);
    let (samples, again) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| sample(&m1, &stop));
        m2.kill();
        let m2 = Member::start(&b, "g4", "static", &conf("two"));
        assert!(
            wait_for(SETTLE, || m2.assigned() == before[1]),
            "restarted member got {:?}, had {:?}",
            m2.assigned(),
            before[1]
        );
        stop.store(true, Ordering::SeqCst);
        (sampler.join().expect("sampler"), m2)
    });
    assert!(
        samples.iter().all(|a| *a == before[0]),
        "the other member was disturbed: {samples:?}"
    );
    drop(again);
}

/// Runs the `sluice` CLI and returns its standard output.
fn cli(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .output()
        .expect("run sluice");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The LAG column of `sluice group describe` for each partition of `topic`.
fn lags(text: &str, topic: &str) -> Vec<(i32, i64)> {
    text.lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&topic))
                .then(|| (cols[1].parse().unwrap(), cols[4].parse().unwrap()))
        })
        .collect()
}

/// Goal: committed offsets survive a restart, and `sluice group describe` shows lag equal to
/// produced minus consumed; `reset-offsets` moves them for an inactive group only. Method:
/// commit half of each partition, restart the server, check the commits and the lag, then
/// reset to earliest and to an offset.
#[test]
fn commits_survive_restart_and_cli_shows_lag() {
    let mut s = server();
    let b = s.bootstrap();
    create_topic(&b, "kept", 3);
    produce(&b, "kept", 3, 10);
    let m = Member::start_committing(&b, "g5", "kept", &[], Some(5));
    assert!(wait_for(SETTLE, || m.seen.lock().unwrap().len() >= 30));
    // While the member is active, resetting is refused.
    let (ok, text) = reset_kept(&b, &["--to-earliest"]);
    assert!(!ok, "reset of an active group: {text}");
    m.close();
    assert!(s.stop(), "clean stop");
    s.restart();
    let (ok, text) = cli(&b, &["group", "describe", "g5"]);
    assert!(ok, "{text}");
    assert_eq!(lags(&text, "kept"), vec![(0, 5), (1, 5), (2, 5)], "{text}");
    let (ok, text) = cli(&b, &["group", "list"]);
    assert!(
        ok && text.contains("g5") && text.contains("Empty"),
        "{text}"
    );
    let (ok, text) = reset_kept(&b, &["--to-offset", "8"]);
    assert!(ok, "{text}");
    let (_, text) = cli(&b, &["group", "describe", "g5"]);
    assert_eq!(lags(&text, "kept"), vec![(0, 2), (1, 2), (2, 2)], "{text}");
    let (ok, text) = reset_kept(&b, &["--to-earliest"]);
    assert!(ok, "{text}");
    let (_, text) = cli(&b, &["group", "describe", "g5"]);
    assert_eq!(
        lags(&text, "kept"),
        vec![(0, 10), (1, 10), (2, 10)],
        "{text}"
    );
    // A consumer of the group starts where the reset put it.
    let again = Member::start(&b, "g5", "kept", &[]);
    assert!(wait_for(SETTLE, || again.seen.lock().unwrap().len() >= 30));
    assert!(again.seen.lock().unwrap().iter().any(|(_, o)| *o == 0));
}

/// `sluice group reset-offsets g5 --topic kept ARGS...`: (success, output).
fn reset_kept(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["group", "reset-offsets", "g5", "--topic", "kept"];
    all.extend_from_slice(args);
    cli(bootstrap, &all)
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Goal: bad group requests get the error codes clients act on. Method: with a librdkafka
/// member in the group, send raw requests with the project's client: commits from an unknown
/// member and from a stale generation, a heartbeat from a stranger, a JoinGroup of another
/// protocol type, deleting a non-empty group, and a transaction coordinator lookup.
#[test]
fn bad_group_requests_get_kafka_error_codes() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "bad", 2);
    let m = Member::start(&b, "g6", "bad", &[]);
    wait_balanced(&[&m], 2, 2, 2);
    block_on(async {
        let mut c = sluice_client::Client::connect(&b).await.expect("connect");
        let d = c
            .send(
                &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("g6"))]),
                5,
            )
            .await
            .expect("describe");
        let group = &d.groups[0];
        assert_eq!(group.group_state.as_str(), "Stable");
        let member = group.members[0].member_id.clone();
        let commit = |member: StrBytes, generation: i32| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(sb("g6")))
                .with_member_id(member)
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("bad")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)])])
        };
        let code = |r: &kafka_protocol::messages::OffsetCommitResponse| {
            r.topics[0].partitions[0].error_code
        };
        // Find the generation from a heartbeat that succeeds.
        let mut generation = None;
        for g in 1..20 {
            let hb = HeartbeatRequest::default()
                .with_group_id(GroupId(sb("g6")))
                .with_member_id(member.clone())
                .with_generation_id(g);
            if c.send(&hb, 4).await.expect("heartbeat").error_code == 0 {
                generation = Some(g);
                break;
            }
        }
        let generation = generation.expect("a generation");
        let r = c
            .send(&commit(sb("nobody"), generation), 8)
            .await
            .expect("commit");
        assert_eq!(code(&r), ResponseError::UnknownMemberId.code());
        let r = c
            .send(&commit(member.clone(), generation - 1), 8)
            .await
            .expect("commit");
        assert_eq!(code(&r), ResponseError::IllegalGeneration.code());
        let r = c.send(&commit(sb(""), -1), 8).await.expect("commit");
        assert_eq!(
            code(&r),
            ResponseError::UnknownMemberId.code(),
            "member-less commit to an active group"
        );
        let r = c
            .send(&commit(member.clone(), generation), 8)
            .await
            .expect("commit");
        assert_eq!(code(&r), 0);
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(sb("g6")))
            .with_member_id(sb("stranger"))
            .with_generation_id(generation);
        assert_eq!(
            c.send(&hb, 4).await.expect("hb").error_code,
            ResponseError::UnknownMemberId.code()
        );
        let join = JoinGroupRequest::default()
            .with_group_id(GroupId(sb("g6")))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(6000)
            .with_protocol_type(sb("connect"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(sb("range"))
            ]);
        let r = c.send(&join, 9).await.expect("join");
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g6"))]);
        let r = c.send(&del, 2).await.expect("delete");
        assert_eq!(r.results[0].error_code, ResponseError::NonEmptyGroup.code());
        // Transactional ids have a coordinator too (this node); an empty one is invalid.
        let txn = |id: &str| {
            FindCoordinatorRequest::default()
                .with_key(sb(id))
                .with_key_type(1)
        };
        let r = c.send(&txn("tx"), 3).await.expect("find");
        assert_eq!(r.error_code, 0);
        assert_eq!(r.port, i32::from(s.port()));
        let r = c.send(&txn(""), 3).await.expect("find");
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    });
}

/// Goal: the consumer group protocol (KIP-848, `group.protocol=consumer`) splits partitions,
/// rebalances on leave and on death, and new members resume committed offsets. Method: as the
/// classic test above, with the server-side assignor: three members on six partitions get two
/// each; one closes (leave heartbeat) and two cover all six; one is killed (no leave) and the
/// last gets all six only after the 3 s session timeout. Then a member of a second group
/// commits the first half of each partition (OffsetCommit with its member epoch) and closes;
/// a new member reads the rest and nothing before the commit point.
#[test]
fn consumer_protocol_members_share_partitions_rebalance_and_resume_offsets() {
    let s = consumer_protocol_server();
    let b = s.bootstrap();
    create_topic(&b, "kip848", 6);
    let m1 = Member::start(&b, "c1", "kip848", &CONSUMER_PROTOCOL);
    let m2 = Member::start(&b, "c1", "kip848", &CONSUMER_PROTOCOL);
    let m3 = Member::start(&b, "c1", "kip848", &CONSUMER_PROTOCOL);
    wait_balanced(&[&m1, &m2, &m3], 6, 2, 2);
    m3.close();
    wait_balanced(&[&m1, &m2], 6, 3, 3);
    let started = Instant::now();
    m2.kill();
    wait_balanced(&[&m1], 6, 6, 6);
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
    m1.close();

    produce(&b, "kip848", 6, 10);
    let first = Member::start_committing(&b, "c2", "kip848", &CONSUMER_PROTOCOL, Some(5));
    assert!(
        wait_for(SETTLE, || first.seen.lock().unwrap().len() >= 60),
        "first member read {:?}",
        first.seen.lock().unwrap()
    );
    first.close();
    let second = Member::start(&b, "c2", "kip848", &CONSUMER_PROTOCOL);
    assert!(
        wait_for(SETTLE, || second.seen.lock().unwrap().len() >= 30),
        "second member read {:?}",
        second.seen.lock().unwrap()
    );
    let seen = second.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, o)| *o >= 5),
        "re-read before the commit point: {seen:?}"
    );
    assert_eq!(seen.len(), 30, "{seen:?}");
}

/// Goal: bad consumer-group-protocol requests get Kafka's error codes, and the group APIs
/// treat a consumer group as Kafka does. Method: raw requests with the project's client: a
/// join with an unknown server assignor, a member that joins and then heartbeats with a wrong
/// epoch or an unknown id, commits with a stale epoch and with OffsetCommit v8, a classic
/// JoinGroup and a DeleteGroups while it has a member; ListGroups, DescribeGroups and
/// ConsumerGroupDescribe of it; and a consumer heartbeat to a classic group with members.
#[test]
fn consumer_protocol_bad_requests_get_kafka_error_codes() {
    let s = consumer_protocol_server();
    let b = s.bootstrap();
    create_topic(&b, "cbad", 2);
    let classic = Member::start(&b, "classic", "cbad", &[]);
    wait_balanced(&[&classic], 2, 2, 2);
    block_on(async {
        let mut c = sluice_client::Client::connect(&b).await.expect("connect");
        let join = |member: &str| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb("cg")))
                .with_member_id(sb(member))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(5000)
                .with_subscribed_topic_names(Some(vec![TopicName(sb("cbad"))]))
                .with_topic_partitions(Some(Vec::new()))
        };
        let r = c
            .send(&join("m1").with_server_assignor(Some(sb("sticky"))), 1)
            .await
            .expect("heartbeat");
        assert_eq!(r.error_code, ResponseError::UnsupportedAssignor.code());
        let r = c
            .send(&join("m1").with_server_assignor(Some(sb("range"))), 1)
            .await
            .expect("heartbeat");
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(r.heartbeat_interval_ms, 300);
        let epoch = r.member_epoch;
        assert!(epoch > 0);
        let assigned: usize = r
            .assignment
            .expect("assignment")
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        assert_eq!(assigned, 2);
        let beat = |member: &str, epoch: i32| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(sb("cg")))
                .with_member_id(sb(member))
                .with_member_epoch(epoch)
        };
        let r = c.send(&beat("m1", epoch + 1), 1).await.expect("hb");
        assert_eq!(r.error_code, ResponseError::FencedMemberEpoch.code());
        let r = c.send(&beat("nobody", 1), 1).await.expect("hb");
        assert_eq!(r.error_code, ResponseError::UnknownMemberId.code());
        let r = c.send(&beat("m1", -3), 1).await.expect("hb");
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());

        let commit = |epoch: i32| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(sb("cg")))
                .with_member_id(sb("m1"))
                .with_generation_id_or_member_epoch(epoch)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb("cbad")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)])])
        };
        let code = |r: &kafka_protocol::messages::OffsetCommitResponse| {
            r.topics[0].partitions[0].error_code
        };
        let r = c.send(&commit(epoch - 1), 9).await.expect("commit");
        assert_eq!(code(&r), ResponseError::StaleMemberEpoch.code());
        let r = c.send(&commit(epoch), 8).await.expect("commit");
        assert_eq!(code(&r), ResponseError::UnsupportedVersion.code());
        let r = c.send(&commit(epoch), 9).await.expect("commit");
        assert_eq!(code(&r), 0);

        let classic_join = JoinGroupRequest::default()
            .with_group_id(GroupId(sb("cg")))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(6000)
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(sb("range"))
            ]);
        let r = c.send(&classic_join, 9).await.expect("join");
        assert_eq!(
            r.error_code,
            ResponseError::InconsistentGroupProtocol.code()
        );
        let del = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("cg"))]);
        let r = c.send(&del, 2).await.expect("delete");
        assert_eq!(r.results[0].error_code, ResponseError::NonEmptyGroup.code());

        let l = c
            .send(
                &ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]),
                5,
            )
            .await
            .expect("list");
        let ids: Vec<(&str, &str)> = l
            .groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.group_type.as_str()))
            .collect();
        assert_eq!(ids, vec![("cg", "consumer")]);
        let d = c
            .send(
                &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("cg"))]),
                5,
            )
            .await
            .expect("describe");
        assert_eq!(d.groups[0].group_state.as_str(), "Dead");
        let d = c
            .send(
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(sb("cg")), GroupId(sb("classic"))]),
                1,
            )
            .await
            .expect("consumer group describe");
        let g = &d.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.assignor_name.as_str(), "range");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].member_epoch, epoch);
        assert_eq!(
            g.members[0].assignment.topic_partitions[0]
                .topic_name
                .as_str(),
            "cbad"
        );
        assert_eq!(
            d.groups[1].error_code,
            ResponseError::GroupIdNotFound.code()
        );

        // The classic group's id is taken.
        let r = c
            .send(&join("x").with_group_id(GroupId(sb("classic"))), 1)
            .await
            .expect("heartbeat");
        assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());

        // Leave; then the empty group can be deleted.
        let r = c.send(&beat("m1", -1), 1).await.expect("leave");
        assert_eq!((r.error_code, r.member_epoch), (0, -1));
        let r = c.send(&del, 2).await.expect("delete");
        assert_eq!(r.results[0].error_code, 0);
    });
    classic.close();
}
