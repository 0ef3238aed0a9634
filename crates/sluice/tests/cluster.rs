//! Several `sluice server` processes as one cluster: a Raft metadata quorum of three combined
//! nodes on loopback, brokers registered with it, topics placed across them, and a new active
//! controller after the old one is killed.
//!
//! Method: `sluice_testkit::TestCluster` formats and starts real processes with their own ports
//! and data dirs; librdkafka (the `rdkafka` crate) and `sluice cluster status` look at them from
//! outside, through one node at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, wait_for, TestCluster};

const TIMEOUT: Duration = Duration::from_secs(30);
const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cluster-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// A partition as one broker's Metadata answer shows it: (leader, replicas, isr).
type PartitionView = (i32, Vec<i32>, Vec<i32>);

/// Topic `topic` as the broker at `bootstrap` alone describes it, if it knows it.
fn topic_view(bootstrap: &str, topic: &str) -> Option<Vec<PartitionView>> {
    let c = consumer(bootstrap);
    let md = c.fetch_metadata(Some(topic), TIMEOUT).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() {
        return None;
    }
    let mut parts: Vec<_> = t
        .partitions()
        .iter()
        .map(|p| {
            (
                p.id(),
                (p.leader(), p.replicas().to_vec(), p.isr().to_vec()),
            )
        })
        .collect();
    parts.sort();
    Some(parts.into_iter().map(|(_, v)| v).collect())
}

/// Broker ids the broker at `bootstrap` lists.
fn broker_ids(bootstrap: &str) -> BTreeSet<i32> {
    let c = consumer(bootstrap);
    c.fetch_metadata(None, TIMEOUT)
        .map(|md| md.brokers().iter().map(|b| b.id()).collect())
        .unwrap_or_default()
}

/// Creates a topic, retrying while the quorum is briefly unavailable (an election on a loaded
/// machine answers REQUEST_TIMED_OUT); a retry that finds the topic made by an earlier attempt
/// counts as done. Gives up after `TIMEOUT` with the last error.
fn create(bootstrap: &str, name: &str, partitions: i32, rf: i32) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut attempt = 0;
    loop {
        match create_once(bootstrap, name, partitions, rf) {
            Ok(()) => return Ok(()),
            Err(e) if attempt > 0 && e.contains("TopicAlreadyExists") => return Ok(()),
            Err(e) if e.contains("RequestTimedOut") || e.contains("NotController") => {
                if Instant::now() > deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
        attempt += 1;
    }
}

fn create_once(bootstrap: &str, name: &str, partitions: i32, rf: i32) -> Result<(), String> {
    let a = admin(bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    match block_on(a.create_topics([&topic], &opts)) {
        Ok(results) => match &results[0] {
            Ok(_) => Ok(()),
            Err((_, code)) => Err(format!("{code:?}")),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// `sluice cluster status` against one node: (leader id, leader epoch).
fn quorum_leader(bootstrap: &str) -> Option<(i32, i32)> {
    let out = Command::new(SLUICE)
        .args(["cluster", "status", "--bootstrap-server", bootstrap])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<i32> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    let leader = field("LeaderId:")?;
    (leader >= 0).then_some((leader, field("LeaderEpoch:")?))
}

/// Three nodes on three racks: every broker registers, a topic of 6 partitions with RF=3
/// created through one node is described the same by all three (3 distinct replicas on
/// distinct racks per partition, ISR = replicas, each broker leading 2), and each broker's data
/// dir holds exactly the partitions it is a replica of.
#[test]
fn three_nodes_share_one_metadata_image_with_rack_aware_replicas() {
    let cluster = TestCluster::start(SLUICE, 3, Some(&["rack-a", "rack-b", "rack-c"]), &[]);
    for i in 0..3 {
        let b = cluster.node_bootstrap(i);
        assert!(
            wait_for(TIMEOUT, || broker_ids(&b) == BTreeSet::from([1, 2, 3])),
            "node {} does not list 3 brokers:\n{}",
            i + 1,
            cluster.log(i)
        );
    }
    create(&cluster.node_bootstrap(1), "rf3", 6, 3).expect("create rf3");
    let mut views = Vec::new();
    for i in 0..3 {
        let b = cluster.node_bootstrap(i);
        let mut view = None;
        assert!(
            wait_for(TIMEOUT, || {
                view = topic_view(&b, "rf3");
                view.as_ref().is_some_and(|v| v.len() == 6)
            }),
            "node {} does not describe rf3",
            i + 1
        );
        views.push(view.unwrap());
    }
    assert_eq!(views[0], views[1], "nodes 1 and 2 disagree");
    assert_eq!(views[0], views[2], "nodes 1 and 3 disagree");
    let racks: BTreeMap<i32, &str> = BTreeMap::from([(1, "rack-a"), (2, "rack-b"), (3, "rack-c")]);
    let mut led = BTreeMap::new();
    for (leader, replicas, isr) in &views[0] {
        let on_racks: BTreeSet<&str> = replicas.iter().map(|r| racks[r]).collect();
        assert_eq!(on_racks.len(), 3, "replicas {replicas:?} share a rack");
        assert_eq!(isr, replicas);
        assert_eq!(*leader, replicas[0], "the preferred replica leads");
        *led.entry(*leader).or_insert(0) += 1;
    }
    assert_eq!(
        led,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders spread"
    );

    create(&cluster.node_bootstrap(0), "rf1", 6, 1).expect("create rf1");
    let b = cluster.node_bootstrap(2);
    let mut rf1 = None;
    assert!(wait_for(TIMEOUT, || {
        rf1 = topic_view(&b, "rf1");
        rf1.as_ref().is_some_and(|v| v.len() == 6)
    }));
    for i in 0..3 {
        let dir = cluster.data_dir(i);
        wait_for(TIMEOUT, || {
            (0..6).all(|p| {
                dir.join(format!("rf1-{p}")).exists()
                    == (rf1.as_ref().unwrap()[p].0 == i as i32 + 1)
            })
        });
        for (p, (leader, _, _)) in rf1.as_ref().unwrap().iter().enumerate() {
            assert_eq!(
                dir.join(format!("rf1-{p}")).exists(),
                *leader == i as i32 + 1,
                "node {} and rf1-{p} (led by {leader})",
                i + 1
            );
            assert!(
                dir.join(format!("rf3-{p}")).exists(),
                "node {} lacks rf3-{p}",
                i + 1
            );
        }
    }
}

/// Records produced through a bootstrap list of all three nodes reach each partition's leader
/// and are read back whole and in order, partitions led by different brokers.
#[test]
fn records_go_to_each_partitions_leader_and_come_back() {
    let cluster = TestCluster::start(SLUICE, 3, None, &[]);
    let all = cluster.bootstrap();
    assert!(wait_for(TIMEOUT, || broker_ids(&all).len() == 3));
    create(&all, "spread", 6, 1).expect("create");
    assert!(wait_for(TIMEOUT, || (0..3).all(|i| topic_view(
        &cluster.node_bootstrap(i),
        "spread"
    )
    .is_some())));
    let leaders: BTreeSet<i32> = topic_view(&all, "spread")
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(leaders.len(), 3, "partitions are led by every broker");

    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &all)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let count = 600;
    for i in 0..count {
        let key = format!("k{}", i % 37);
        let value = format!("{i}");
        loop {
            match producer.send(BaseRecord::to("spread").key(&key).payload(&value)) {
                Ok(()) => break,
                Err((_, _)) => producer.poll(Duration::from_millis(10)),
            }
        }
    }
    producer.flush(TIMEOUT).expect("flush");

    let c = consumer(&all);
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset("spread", p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut total = 0;
    let deadline = Instant::now() + TIMEOUT;
    while total < count && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
            let value: i64 = String::from_utf8_lossy(m.payload().unwrap())
                .parse()
                .unwrap();
            seen.entry(key).or_default().push(value);
            total += 1;
        }
    }
    assert_eq!(total, count, "records read back");
    for (key, values) in &seen {
        let mut sorted = values.clone();
        sorted.sort();
        assert_eq!(values, &sorted, "{key}: order within the partition kept");
    }

    // A consumer group: FindCoordinator names the leader of the group's partition of
    // __consumer_offsets, wherever it is, and commits made there are read back.
    for group in ["g-one", "g-two", "g-three", "g-four"] {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &all)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("group consumer");
        let mut commit = TopicPartitionList::new();
        for p in 0..6 {
            commit
                .add_partition_offset("spread", p, Offset::Offset(i64::from(p) + 1))
                .unwrap();
        }
        let deadline = Instant::now() + TIMEOUT;
        while let Err(e) = c.commit(&commit, rdkafka::consumer::CommitMode::Sync) {
            assert!(Instant::now() < deadline, "{group}: commit failed: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut ask = TopicPartitionList::new();
        for p in 0..6 {
            ask.add_partition("spread", p);
        }
        let committed = c.committed_offsets(ask, TIMEOUT).expect("committed");
        for p in 0..6 {
            assert_eq!(
                committed.find_partition("spread", p).unwrap().offset(),
                Offset::Offset(i64::from(p) + 1),
                "{group}: partition {p}"
            );
        }
    }
}

/// SIGKILL of the active controller: the two others elect a new one (a higher epoch) and
/// topic creation goes on; the time from the kill to the next created topic is printed. The
/// killed node, restarted, catches up with the 20 topics created while it was down, which with
/// a 2 KiB snapshot threshold the others hold in a snapshot, their log truncated behind it.
#[test]
fn a_new_controller_is_elected_after_the_active_one_is_killed() {
    let mut cluster = TestCluster::start(
        SLUICE,
        3,
        None,
        &["metadata.log.max.record.bytes.between.snapshots=2048"],
    );
    let all = cluster.bootstrap();
    assert!(wait_for(TIMEOUT, || broker_ids(&all).len() == 3));
    let mut before = None;
    assert!(wait_for(TIMEOUT, || {
        before = quorum_leader(&cluster.node_bootstrap(0));
        before.is_some()
    }));
    let (leader, epoch) = before.unwrap();
    create(&all, "before-kill", 1, 1).expect("create before the kill");
    let victim = (leader - 1) as usize;
    let survivor = (victim + 1) % 3;
    let killed_at = Instant::now();
    cluster.kill(victim);
    let survivor_bootstrap = cluster.node_bootstrap(survivor);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match create_once(&survivor_bootstrap, "after-kill", 1, 1) {
            Ok(()) => break,
            Err(e) if e.contains("TopicAlreadyExists") => break,
            Err(e) => {
                assert!(
                    killed_at.elapsed() < TIMEOUT,
                    "no topic created {TIMEOUT:?} after the kill: {e}\n{}",
                    cluster.log(survivor)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    println!(
        "controller failover: node {leader} killed, next CreateTopics committed after {} ms ({attempts} attempts)",
        killed_at.elapsed().as_millis()
    );
    let mut after = None;
    assert!(wait_for(TIMEOUT, || {
        after = quorum_leader(&survivor_bootstrap);
        after.is_some_and(|(l, _)| l != leader)
    }));
    let (new_leader, new_epoch) = after.unwrap();
    assert_ne!(new_leader, leader);
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");

    for i in 0..20 {
        create(&survivor_bootstrap, &format!("while-down-{i}"), 2, 1).expect("create while down");
    }
    let snapshot = cluster
        .data_dir(survivor)
        .join("__cluster_metadata-0/raft/snapshot");
    assert!(
        wait_for(TIMEOUT, || snapshot.exists()),
        "no metadata snapshot on node {}",
        survivor + 1
    );
    cluster.restart(victim);
    let back = cluster.node_bootstrap(victim);
    assert!(
        wait_for(TIMEOUT, || topic_view(&back, "after-kill").is_some()
            && topic_view(&back, "while-down-19")
                .is_some_and(|v| v.len() == 2)),
        "the restarted node does not know the topics created while it was down:\n{}",
        cluster.log(victim)
    );
}

/// `sluice cluster status` against one node: broker id → "active" or "fenced".
fn broker_states(bootstrap: &str) -> BTreeMap<i32, String> {
    let Ok(out) = Command::new(SLUICE)
        .args(["cluster", "status", "--bootstrap-server", bootstrap])
        .output()
    else {
        return BTreeMap::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip_while(|l| *l != "Brokers:")
        .skip(1)
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some((fields.first()?.parse().ok()?, fields.last()?.to_string()))
        })
        .collect()
}

/// A node stopped with SIGSTOP loses its session: after `broker.session.timeout.ms` the
/// controller fences it, Metadata stops listing it and its partitions have no leader (their
/// only replica); after SIGCONT it is unfenced and leads them again.
#[test]
fn a_paused_broker_is_fenced_after_its_session_and_unfenced_when_it_resumes() {
    let mut cluster = TestCluster::start(
        SLUICE,
        3,
        None,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
        ],
    );
    let all = cluster.bootstrap();
    assert!(wait_for(TIMEOUT, || broker_ids(&all).len() == 3));
    create(&all, "solo", 6, 1).expect("create");
    let mut leader = None;
    assert!(wait_for(TIMEOUT, || {
        leader = quorum_leader(&cluster.node_bootstrap(0));
        leader.is_some()
    }));
    let controller = leader.unwrap().0;
    // Pause a node that is not the active controller.
    let victim = (1..=3).find(|id| *id != controller).unwrap();
    let witness = (1..=3).find(|id| *id != victim).unwrap();
    let witness_bootstrap = cluster.node_bootstrap((witness - 1) as usize);
    let mut view = None;
    assert!(wait_for(TIMEOUT, || {
        view = topic_view(&witness_bootstrap, "solo");
        view.is_some()
    }));
    let led: Vec<usize> = view
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.0 == victim)
        .map(|(i, _)| i)
        .collect();
    assert!(!led.is_empty(), "node {victim} leads some partition");

    let paused_at = Instant::now();
    cluster.pause((victim - 1) as usize);
    assert!(
        wait_for(TIMEOUT, || broker_states(&witness_bootstrap)
            .get(&victim)
            .is_some_and(|s| s == "fenced")),
        "node {victim} was not fenced:\n{}",
        cluster.log((controller - 1) as usize)
    );
    println!(
        "node {victim} fenced {} ms after SIGSTOP (session 3000 ms)",
        paused_at.elapsed().as_millis()
    );
    assert!(wait_for(TIMEOUT, || !broker_ids(&witness_bootstrap)
        .contains(&victim)));
    assert!(wait_for(TIMEOUT, || topic_view(&witness_bootstrap, "solo")
        .is_some_and(|v| led.iter().all(|i| v[*i].0 == -1))));

    cluster.resume((victim - 1) as usize);
    assert!(
        wait_for(TIMEOUT, || broker_states(&witness_bootstrap)
            .get(&victim)
            .is_some_and(|s| s == "active")),
        "node {victim} was not unfenced"
    );
    assert!(wait_for(TIMEOUT, || topic_view(&witness_bootstrap, "solo")
        .is_some_and(|v| led.iter().all(|i| v[*i].0 == victim))));
}

/// SIGTERM is a controlled shutdown: before the node exits, the controller moves the
/// leaderships it held to other in-sync replicas, so clients see new leaders at once.
#[test]
fn sigterm_moves_leaderships_away_before_the_node_stops() {
    let mut cluster = TestCluster::start(SLUICE, 3, None, &[]);
    let all = cluster.bootstrap();
    assert!(wait_for(TIMEOUT, || broker_ids(&all).len() == 3));
    create(&all, "moving", 3, 3).expect("create");
    let mut view = None;
    assert!(wait_for(TIMEOUT, || {
        view = topic_view(&cluster.node_bootstrap(0), "moving");
        view.as_ref().is_some_and(|v| v.len() == 3)
    }));
    let before = view.unwrap();
    let victim = before[0].0;
    assert!(cluster.stop((victim - 1) as usize), "clean exit");
    let witness = (1..=3).find(|id| *id != victim).unwrap();
    let witness_bootstrap = cluster.node_bootstrap((witness - 1) as usize);
    let mut after = None;
    assert!(
        wait_for(TIMEOUT, || {
            after = topic_view(&witness_bootstrap, "moving");
            after
                .as_ref()
                .is_some_and(|v| v.iter().all(|p| p.0 != victim && p.0 >= 0))
        }),
        "leaderships did not move off node {victim}: {after:?}"
    );
    for (p, (leader, replicas, isr)) in after.unwrap().iter().enumerate() {
        assert!(!isr.contains(&victim), "partition {p}: {isr:?}");
        assert!(isr.contains(leader));
        assert_eq!(replicas, &before[p].1);
    }
}

/// A node whose quorum has no majority yet waits for it instead of exiting, and says so; SIGTERM
/// ends the wait with a clean exit; once a second voter starts, the quorum forms and both
/// brokers register and serve.
#[test]
fn a_node_waits_for_its_quorum_instead_of_exiting() {
    let mut cluster = TestCluster::start_some(SLUICE, 3, None, &[], &[0]);
    assert!(
        wait_for(TIMEOUT, || cluster
            .log(0)
            .contains("waiting for the metadata quorum")),
        "node 1 does not say it waits:\n{}",
        cluster.log(0)
    );
    assert!(cluster.is_running(0), "node 1 exited:\n{}", cluster.log(0));
    assert!(cluster.stop(0), "SIGTERM while waiting is a clean exit");
    cluster.restart(0);
    cluster.restart(1);
    let first = cluster.node_bootstrap(0);
    assert!(
        wait_for(TIMEOUT, || broker_ids(&first) == BTreeSet::from([1, 2])),
        "brokers 1 and 2 do not serve:\n{}",
        cluster.log(0)
    );
    create(&first, "with-two-of-three", 2, 1).expect("create with a majority up");
}
