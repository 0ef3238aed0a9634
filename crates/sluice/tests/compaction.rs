//! Log compaction with librdkafka (the `rdkafka` crate) against the real `sluice server`: the
//! cleaner keeps the newest record of every key at its original offset, in order, through a
//! restart; and `__consumer_offsets` shrinks while every group's committed offsets stay.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, wait_for, TestServer};

const T: Duration = Duration::from_secs(30);

type Read = Vec<(i64, String, Option<String>)>;

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Every record of partition 0 from the start to the high watermark.
fn read_all(bootstrap: &str, topic: &str) -> Read {
    let c = consumer(bootstrap, "reader");
    let (_, high) = c.fetch_watermarks(topic, 0, T).expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out: Read = Vec::new();
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    wait_for(T, || {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push((
                m.offset(),
                text(m.key()).unwrap_or_default(),
                text(m.payload()),
            ));
        }
        high == 0 || out.last().is_some_and(|(o, _, _)| *o + 1 >= high)
    });
    out
}

/// Goal: the newest value of every key survives compaction at its offset, superseded records
/// go, order is kept, and the compacted log reads the same after a restart.
#[test]
fn compaction_keeps_the_newest_record_of_each_key() {
    let mut s = TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &["log.cleaner.backoff.ms=200"],
    );
    let b = s.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .unwrap();
    let topic = NewTopic::new("table", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "1000");
    for r in block_on(admin.create_topics(&[topic], &AdminOptions::new())).unwrap() {
        r.unwrap();
    }
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("linger.ms", "0")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let rounds = 40;
    let mut newest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for round in 0..rounds {
        for key in 0..5 {
            let k = format!("k{key}");
            let v = format!("{k}-r{round}");
            p.send(BaseRecord::to("table").partition(0).key(&k).payload(&v))
                .unwrap();
            newest.insert(k, Some(v));
        }
        p.flush(T).unwrap();
    }
    p.send(BaseRecord::<_, ()>::to("table").partition(0).key("k4"))
        .unwrap();
    newest.insert("k4".into(), None);
    p.flush(T).unwrap();
    let produced = rounds * 5 + 1;

    let mut read = Vec::new();
    assert!(
        wait_for(T, || {
            read = read_all(&b, "table");
            read.len() < produced / 2
        }),
        "the cleaner removed superseded records: {} of {produced} left",
        read.len()
    );
    assert!(read.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, k, v) in &read {
        last.insert(k.clone(), v.clone());
    }
    assert_eq!(last, newest, "the newest value of every key is there");
    assert_eq!(
        read.last().unwrap().0,
        produced as i64 - 1,
        "the tombstone is last"
    );

    assert!(s.stop(), "clean shutdown");
    s.restart();
    assert_eq!(read_all(&b, "table"), read, "the same after a restart");
}

/// Goal: `__consumer_offsets` is compacted too, and a group's committed offset survives the
/// compaction and a restart.
#[test]
fn consumer_offsets_are_compacted_and_commits_kept() {
    let mut s = TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "log.cleaner.backoff.ms=200",
            "offsets.topic.num.partitions=1",
            "offsets.topic.segment.bytes=1000",
        ],
    );
    let b = s.bootstrap();
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .unwrap();
    p.send(BaseRecord::<(), _>::to("t").partition(0).payload("x"))
        .unwrap();
    p.flush(T).unwrap();
    let c = consumer(&b, "g-compact");
    let commits = 150;
    for n in 1..=commits {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, Offset::Offset(n)).unwrap();
        c.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    assert!(
        wait_for(T, || read_all(&b, "__consumer_offsets").len()
            < commits as usize / 2),
        "the offsets topic was compacted"
    );
    drop(c);
    assert!(s.stop(), "clean shutdown");
    s.restart();
    let c = consumer(&b, "g-compact");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("t", 0);
    let committed = c.committed_offsets(tpl, T).unwrap();
    assert_eq!(
        committed.find_partition("t", 0).unwrap().offset(),
        Offset::Offset(commits)
    );
}
