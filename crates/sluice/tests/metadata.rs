//! The node's metadata on disk: the metadata log and its snapshots, `meta.properties` and the
//! cluster id, `sluice storage`, and the upgrade of a data directory written by the release
//! before the metadata log.
//!
//! Method: real `sluice server` processes on free ports with temp data dirs, driven by
//! librdkafka (the `rdkafka` crate) and the `sluice` binary's own commands; restarts in between
//! to show what was kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, TestServer};

const TIMEOUT: Duration = Duration::from_secs(30);
const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// Topic name → partition count, as librdkafka's Metadata request sees them.
fn topics(bootstrap: &str) -> BTreeMap<String, usize> {
    let c = consumer(bootstrap, "metadata-test");
    let md = c.fetch_metadata(None, TIMEOUT).expect("metadata");
    md.topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

fn meta_properties(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(dir.join("meta.properties"))
        .expect("meta.properties")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every record of `topic` as (partition, offset, key, value), read with manual assignment.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, String, String)> {
    let c = consumer(bootstrap, "reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => panic!("consume: {e}"),
            None if !out.is_empty() => break,
            None => {}
        }
    }
    out.sort();
    out
}

/// The release before the metadata log wrote `tests/fixtures/data-dir-4e7cbb9.tar.gz` (commit
/// 4e7cbb9's binary: topic `orders` with 3 partitions and two config overrides, 30 keyed records
/// and one idempotent one, group `fixture-group` committed at 11/10/9, then a clean shutdown).
/// The current server opens it: same topic id and configs, every record at its offset, the
/// group's commits, the old cluster id; and it keeps them across a second restart.
#[test]
fn a_data_dir_of_the_previous_release_opens_and_is_upgraded_in_place() {
    let mut server = TestServer::start(SLUICE, &["offsets.topic.num.partitions=1"]);
    assert!(server.stop());
    let data = server.data_dir();
    std::fs::remove_dir_all(&data).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/data-dir-4e7cbb9.tar.gz"
    );
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixture)
        .arg("-C")
        .arg(data.parent().unwrap())
        .status()
        .expect("tar");
    assert!(status.success());
    let old_metadata = std::fs::read_to_string(data.join("sluice-metadata")).unwrap();
    let topic_id = old_metadata
        .lines()
        .find(|l| l.starts_with("topic\torders\t"))
        .and_then(|l| l.split('\t').nth(2))
        .unwrap()
        .to_string();

    for round in 0..2 {
        server.restart();
        let bootstrap = server.bootstrap();
        assert_eq!(
            topics(&bootstrap).get("orders"),
            Some(&3),
            "round {round}: {}",
            server.log()
        );
        let records = read_all(&bootstrap, "orders", 3);
        assert_eq!(records.len(), 31, "round {round}");
        let keyed: Vec<_> = records.iter().filter(|r| r.2.starts_with("key")).collect();
        assert_eq!(keyed.len(), 30);
        for (_, _, k, v) in &keyed {
            assert_eq!(v, &format!("value-{}", &k[3..]));
        }
        let ends: Vec<i64> = (0..3)
            .map(|p| {
                records
                    .iter()
                    .filter(|r| r.0 == p)
                    .map(|r| r.1 + 1)
                    .max()
                    .unwrap()
            })
            .collect();
        assert_eq!(ends, [12, 10, 9], "round {round}");

        let c = consumer(&bootstrap, "fixture-group");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition("orders", p);
        }
        let committed = c.committed_offsets(tpl, TIMEOUT).unwrap();
        let offsets: Vec<Offset> = (0..3)
            .map(|p| committed.find_partition("orders", p).unwrap().offset())
            .collect();
        assert_eq!(
            offsets,
            [Offset::Offset(11), Offset::Offset(10), Offset::Offset(9)]
        );

        let out = Command::new(SLUICE)
            .args([
                "topic",
                "describe",
                "orders",
                "--bootstrap-server",
                &bootstrap,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&topic_id), "{text}");
        assert!(
            text.contains("Leader: 1\tLeaderEpoch: 0\tReplicas: 1\tIsr: 1"),
            "{text}"
        );
        let a = admin(&bootstrap);
        let configs = block_on(
            a.describe_configs([&ResourceSpecifier::Topic("orders")], &AdminOptions::new()),
        )
        .unwrap();
        let resource = configs[0].as_ref().unwrap();
        let value = |name: &str| resource.get(name).and_then(|e| e.value.clone());
        assert_eq!(value("retention.ms").as_deref(), Some("86400000"));
        assert_eq!(value("max.message.bytes").as_deref(), Some("200000"));
        assert!(server.stop());
    }
    assert!(!data.join("sluice-metadata").exists());
    assert!(data.join("sluice-metadata.upgraded").exists());
    assert_eq!(
        meta_properties(&data)["cluster.id"],
        "sluice-cluster-0000000"
    );
}

/// With no `meta.properties`, `sluice server` formats its data dir as a one-node cluster with
/// a new id in Kafka's form, and keeps it across restarts.
#[test]
fn the_first_start_formats_a_one_node_cluster_with_a_kafka_cluster_id() {
    let mut server = TestServer::start(SLUICE, &["node.id=4"]);
    let meta = meta_properties(&server.data_dir());
    let id = meta["cluster.id"].clone();
    assert_eq!(id.len(), 22);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(meta["node.id"], "4");
    assert_eq!(meta["version"], "1");
    assert!(server.stop());
    server.restart();
    assert_eq!(meta_properties(&server.data_dir())["cluster.id"], id);
}

/// Topic metadata survives restarts through the metadata log and its snapshots: with a small
/// `metadata.log.max.record.bytes.between.snapshots`, 40 creations, 10 deletions and partition
/// additions roll the log into a snapshot, and the restarted node serves the same topics.
#[test]
fn topics_survive_restarts_through_metadata_snapshots() {
    let mut server = TestServer::start(
        SLUICE,
        &["metadata.log.max.record.bytes.between.snapshots=4096"],
    );
    let bootstrap = server.bootstrap();
    let a = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let names: Vec<String> = (0..40).map(|i| format!("snap-{i}")).collect();
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 2, TopicReplication::Fixed(1)))
        .collect();
    for r in block_on(a.create_topics(&new, &opts)).unwrap() {
        r.unwrap();
    }
    let doomed: Vec<&str> = names[..10].iter().map(String::as_str).collect();
    for r in block_on(a.delete_topics(&doomed, &opts)).unwrap() {
        r.unwrap();
    }
    let grow = [rdkafka::admin::NewPartitions::new("snap-39", 5)];
    for r in block_on(a.create_partitions(&grow, &opts)).unwrap() {
        r.unwrap();
    }
    let before = topics(&bootstrap);
    assert_eq!(before.keys().filter(|n| n.starts_with("snap-")).count(), 30);
    assert_eq!(before["snap-39"], 5);
    let meta_dir = server.data_dir().join("__cluster_metadata-0");
    let snapshots = std::fs::read_dir(&meta_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".checkpoint")
        })
        .count();
    assert!(snapshots >= 1, "no snapshot in {}", meta_dir.display());
    drop(a);
    assert!(server.stop());
    server.restart();
    // Only the test's topics: a client's FindCoordinator may create `__consumer_offsets` at
    // any time.
    let snap = |t: BTreeMap<String, usize>| -> BTreeMap<String, usize> {
        t.into_iter()
            .filter(|(n, _)| n.starts_with("snap-"))
            .collect()
    };
    assert_eq!(snap(topics(&server.bootstrap())), snap(before));
    // The deleted topics' logs are gone from the data dir.
    assert!(!server.data_dir().join("snap-0-0").exists());
}

/// A data dir formatted for another node or another cluster is refused at start with Kafka's
/// message, and the process exits instead of serving.
#[test]
fn a_node_refuses_a_data_dir_of_another_node_or_cluster() {
    let mut server = TestServer::start(SLUICE, &[]);
    assert!(server.stop());
    let data = server.data_dir();
    let port = sluice_testkit::free_port();
    let run = |extra: &[&str]| {
        let mut cmd = Command::new(SLUICE);
        cmd.args(["server", "--override"])
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", data.display()));
        for e in extra {
            cmd.args(["--override", e]);
        }
        cmd.output().expect("run sluice server")
    };
    let out = run(&["node.id=2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Stored node id 1 doesn't match previous node id 2"),
        "{err}"
    );
    let out = run(&["cluster.id=MkU3OEVBNTcwNTJENDM2Qk"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid cluster.id in"), "{err}");
}

/// `sluice storage random-uuid` and `format` work as Kafka's `kafka-storage.sh`: the formatted
/// dir starts with that cluster id; formatting twice fails unless `--ignore-formatted`; a bad
/// id is refused.
#[test]
fn storage_format_ties_a_data_dir_to_a_cluster() {
    let out = Command::new(SLUICE)
        .args(["storage", "random-uuid"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 22);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let props = dir.path().join("server.properties");
    std::fs::write(&props, format!("node.id=3\nlog.dirs={}\n", data.display())).unwrap();
    let format = |id: &str, extra: &[&str]| {
        Command::new(SLUICE)
            .args(["storage", "format", "--cluster-id", id, "--config"])
            .arg(&props)
            .args(extra)
            .output()
            .unwrap()
    };
    let bad = format("not-a-uuid", &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("valid UUID"));
    assert!(format(&id, &[]).status.success());
    let again = format(&id, &[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already formatted"));
    assert!(format(&id, &["--ignore-formatted"]).status.success());
    assert_eq!(meta_properties(&data)["cluster.id"], id);
    assert_eq!(meta_properties(&data)["node.id"], "3");

    let port = sluice_testkit::free_port();
    let mut child = Command::new(SLUICE)
        .args(["server", "--config"])
        .arg(&props)
        .arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bootstrap = format!("127.0.0.1:{port}");
    let up = sluice_testkit::wait_for(TIMEOUT, || std::net::TcpStream::connect(&bootstrap).is_ok());
    let md = up.then(|| topics(&bootstrap));
    let _ = child.kill();
    let _ = child.wait();
    assert!(md.is_some(), "server did not start on the formatted dir");
    assert_eq!(meta_properties(&data)["cluster.id"], id);
}

/// The controller's checks reach clients as Kafka's error codes: more replicas than brokers,
/// and an assignment naming an unregistered broker.
#[test]
fn replica_placement_errors_are_kafkas() {
    let server = TestServer::start(SLUICE, &[]);
    let a = admin(&server.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let rf3 = NewTopic::new("rf3", 1, TopicReplication::Fixed(3));
    let r = block_on(a.create_topics([&rf3], &opts)).unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    let manual = NewTopic::new("manual", 1, TopicReplication::Variable(&[&[1, 7]]));
    let r = block_on(a.create_topics([&manual], &opts)).unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicaAssignment
    );
}

/// Kafka's own KRaft `server.properties` for a combined node (the one Kafka 4 ships, with this
/// test's ports and dir) starts a Sluice node unchanged: the client listener serves, the
/// controller listener is bound, clients see the advertised endpoint.
#[test]
fn a_kafka_kraft_server_properties_starts_a_node_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (client_port, controller_port) = (sluice_testkit::free_port(), sluice_testkit::free_port());
    let props = dir.path().join("server.properties");
    std::fs::write(
        &props,
        format!(
            "process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:{controller_port}
listeners=PLAINTEXT://:{client_port},CONTROLLER://:{controller_port}
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:{client_port},CONTROLLER://localhost:{controller_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let id = String::from_utf8(
        Command::new(SLUICE)
            .args(["storage", "random-uuid"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let format = Command::new(SLUICE)
        .args(["storage", "format", "--standalone", "-t", id.trim(), "-c"])
        .arg(&props)
        .output()
        .unwrap();
    assert!(
        format.status.success(),
        "{}",
        String::from_utf8_lossy(&format.stderr)
    );
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = Command::new(SLUICE)
        .args(["server", "--config"])
        .arg(&props)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let bootstrap = format!("127.0.0.1:{client_port}");
    let up = sluice_testkit::wait_for(TIMEOUT, || {
        std::net::TcpStream::connect(&bootstrap).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", controller_port)).is_ok()
    });
    let md = up.then(|| {
        let c = consumer(&bootstrap, "kraft");
        let md = c.fetch_metadata(None, TIMEOUT).expect("metadata");
        md.brokers()
            .iter()
            .map(|b| (b.id(), b.host().to_string(), b.port()))
            .collect::<Vec<_>>()
    });
    let _ = child.kill();
    let _ = child.wait();
    let server_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert_eq!(
        md,
        Some(vec![(1, "localhost".to_string(), i32::from(client_port))]),
        "{server_log}"
    );
    assert_eq!(
        meta_properties(&dir.path().join("data"))["cluster.id"],
        id.trim()
    );
}
