//! Retention by time and size, and DeleteRecords, with librdkafka (the `rdkafka` crate)
//! against the real `sluice server`: old segments go, the log start offset moves to a segment
//! boundary, and every record above it is still there, in order.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, wait_for, TestServer};

const T: Duration = Duration::from_secs(20);

fn server() -> TestServer {
    TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &["log.retention.check.interval.ms=200"],
    )
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    for r in
        block_on(admin(bootstrap).create_topics(&[topic], &AdminOptions::new())).expect("create")
    {
        r.expect("topic created");
    }
}

/// Produces values `v-<first>`.. `v-<first + n - 1>` with this timestamp (or now).
fn produce(bootstrap: &str, topic: &str, first: usize, n: usize, timestamp: Option<i64>) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in first..first + n {
        let value = format!("v-{i}-{}", "x".repeat(180));
        let mut record = BaseRecord::<(), _>::to(topic).partition(0).payload(&value);
        if let Some(ts) = timestamp {
            record = record.timestamp(ts);
        }
        p.send(record).expect("enqueue");
        // One batch per record, so that segments roll at their size limit.
        p.flush(T).expect("flush");
    }
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "retention")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// (low watermark, high watermark) of partition 0.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    consumer(bootstrap)
        .fetch_watermarks(topic, 0, T)
        .expect("watermarks")
}

/// Reads partition 0 from the beginning up to the high watermark: (offset, value index).
fn read_from_start(bootstrap: &str, topic: &str) -> Vec<(i64, usize)> {
    let (_, high) = watermarks(bootstrap, topic);
    let c = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    wait_for(T, || {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let index = v
                .split('-')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            out.push((m.offset(), index));
        }
        out.last().is_some_and(|(o, _)| *o + 1 >= high)
    });
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Goal: records older than `retention.ms` are deleted, the active segment included (after a
/// roll), and the log keeps accepting and serving records from its new start.
#[test]
fn time_retention_deletes_expired_segments() {
    let s = server();
    let b = s.bootstrap();
    create_topic(
        &b,
        "old",
        &[("retention.ms", "60000"), ("segment.bytes", "2000")],
    );
    produce(&b, "old", 0, 20, Some(now_ms() - 3_600_000));
    assert!(
        wait_for(T, || watermarks(&b, "old") == (20, 20)),
        "every expired record is gone: {:?}",
        watermarks(&b, "old")
    );
    produce(&b, "old", 20, 5, None);
    let read = read_from_start(&b, "old");
    assert_eq!(read, (20..25).map(|i| (i as i64, i)).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(600)); // three more retention passes
    assert_eq!(watermarks(&b, "old"), (20, 25), "fresh records stay");
}

/// Goal: `retention.bytes` deletes the oldest segments while the log is over it; the start
/// moves to a segment boundary and everything above it is intact and in order.
#[test]
fn size_retention_keeps_the_newest_records() {
    let s = server();
    let b = s.bootstrap();
    create_topic(
        &b,
        "big",
        &[("retention.bytes", "5000"), ("segment.bytes", "2000")],
    );
    produce(&b, "big", 0, 60, None);
    assert!(
        wait_for(T, || watermarks(&b, "big").0 >= 30),
        "old segments deleted: {:?}",
        watermarks(&b, "big")
    );
    let (low, high) = watermarks(&b, "big");
    assert_eq!(high, 60);
    let read = read_from_start(&b, "big");
    assert_eq!(
        read,
        (low..60).map(|o| (o, o as usize)).collect::<Vec<_>>(),
        "every record from the log start on"
    );
}

/// Goal: DeleteRecords moves the log start offset (records below it are gone for readers),
/// refuses offsets past the high watermark, and refuses compacted topics (POLICY_VIOLATION).
#[test]
fn delete_records_moves_the_log_start_offset() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "dr", &[("segment.bytes", "2000")]);
    create_topic(&b, "kept", &[("cleanup.policy", "compact")]);
    produce(&b, "dr", 0, 30, None);
    let delete = |topic: &str, offset: Offset| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, offset).unwrap();
        let result =
            block_on(admin(&b).delete_records(&tpl, &AdminOptions::new())).expect("delete_records");
        let p = result.find_partition(topic, 0).unwrap();
        (p.offset(), p.error())
    };
    let (offset, error) = delete("dr", Offset::Offset(17));
    assert!(error.is_ok(), "{error:?}");
    assert_eq!(offset, Offset::Offset(17));
    assert_eq!(watermarks(&b, "dr"), (17, 30));
    let read = read_from_start(&b, "dr");
    assert_eq!(read, (17..30).map(|o| (o, o as usize)).collect::<Vec<_>>());

    let (_, error) = delete("dr", Offset::Offset(31));
    assert_eq!(
        error.unwrap_err().rdkafka_error_code(),
        Some(RDKafkaErrorCode::OffsetOutOfRange)
    );
    let (offset, error) = delete("dr", Offset::End);
    assert!(error.is_ok(), "{error:?}");
    assert_eq!(offset, Offset::Offset(30));
    assert_eq!(watermarks(&b, "dr"), (30, 30));

    let (_, error) = delete("kept", Offset::End);
    assert_eq!(
        error.unwrap_err().rdkafka_error_code(),
        Some(RDKafkaErrorCode::PolicyViolation)
    );
}
