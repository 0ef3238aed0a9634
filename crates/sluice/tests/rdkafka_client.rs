//! Integration tests with librdkafka (the `rdkafka` crate) against the real `sluice server`
//! binary: produce and consume at volume, every codec, timestamp lookup, topic admin, restart.
//!
//! Method: each test starts its own server on a free port with a temp data dir, drives it only
//! through librdkafka, and checks what comes back against what was sent.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, TestServer};

const TIMEOUT: Duration = Duration::from_secs(30);

fn server(overrides: &[&str]) -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_sluice"), overrides)
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    // librdkafka's consumer wants a group id even for manual assignment; nothing is committed.
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-test")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin")
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin.create_topics(&[topic], &AdminOptions::new())).expect("create");
    for r in results {
        r.expect("topic created");
    }
}

/// A consumed record: (partition, offset, key, value, timestamp, headers).
type Consumed = (
    i32,
    i64,
    Option<Vec<u8>>,
    Vec<u8>,
    Option<i64>,
    Vec<(String, Vec<u8>)>,
);

/// Reads `count` records from every partition of `topic` from the beginning.
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> Vec<Consumed> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(count);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {} of {count}",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.expect("consume error");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        out.push((
            m.partition(),
            m.offset(),
            m.key().map(|k| k.to_vec()),
            m.payload().unwrap_or_default().to_vec(),
            m.timestamp().to_millis(),
            headers,
        ));
    }
    // Nothing beyond what was produced.
    if let Some(Ok(extra)) = consumer.poll(Duration::from_millis(500)) {
        panic!(
            "unexpected extra record at {}:{}",
            extra.partition(),
            extra.offset()
        );
    }
    out
}

/// Produces `count` keyed records with a header and an explicit timestamp; returns the
/// partition librdkafka chose for each key.
fn produce_keyed(bootstrap: &str, topic: &str, count: usize, extra: &[(&str, &str)], ts_base: i64) {
    let p = producer(bootstrap, extra);
    for i in 0..count {
        let key = format!("key-{}", i % 1000);
        let value = format!("value-{i:08}-{}", "x".repeat(i % 50));
        let headers = OwnedHeaders::new().insert(Header {
            key: "seq",
            value: Some(i.to_string().as_bytes()),
        });
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&value)
            .headers(headers)
            .timestamp(ts_base + i as i64);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "send failed: {e}"
                    );
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    assert_eq!(p.in_flight_count(), 0);
}

fn check_keyed(records: &[Consumed], count: usize, ts_base: i64) {
    assert_eq!(records.len(), count);
    let mut seen = vec![false; count];
    let mut key_partition: HashMap<Vec<u8>, i32> = HashMap::new();
    let mut last_seq: BTreeMap<i32, (i64, usize)> = BTreeMap::new();
    for (partition, offset, key, value, ts, headers) in records {
        let seq: usize = std::str::from_utf8(&headers[0].1).unwrap().parse().unwrap();
        assert_eq!(headers[0].0, "seq");
        assert!(!seen[seq], "record {seq} seen twice");
        seen[seq] = true;
        let expected = format!("value-{seq:08}-{}", "x".repeat(seq % 50));
        assert_eq!(value, expected.as_bytes());
        assert_eq!(
            key.as_deref(),
            Some(format!("key-{}", seq % 1000).as_bytes())
        );
        assert_eq!(*ts, Some(ts_base + seq as i64));
        // One key, one partition.
        let k = key.clone().unwrap();
        assert_eq!(*key_partition.entry(k).or_insert(*partition), *partition);
        // Per-partition order: offsets increase and so does the producer's sequence.
        if let Some((last_offset, last)) = last_seq.get(partition) {
            assert!(
                offset > last_offset,
                "offsets go backwards in partition {partition}"
            );
            assert!(
                seq > *last,
                "order changed in partition {partition}: {seq} after {last}"
            );
        }
        last_seq.insert(*partition, (*offset, seq));
    }
    assert!(seen.iter().all(|s| *s));
}

/// 100,000 keyed records with headers and timestamps into 6 partitions and back, then again
/// after a clean restart and after a crash (SIGKILL) of the server.
#[test]
fn keyed_records_round_trip_and_survive_restart() {
    let mut s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "orders", 6, &[]);
    let count = 100_000;
    let ts_base = 1_700_000_000_000;
    produce_keyed(&bootstrap, "orders", count, &[("acks", "all")], ts_base);
    check_keyed(&consume_all(&bootstrap, "orders", 6, count), count, ts_base);

    assert!(s.stop(), "clean shutdown failed:\n{}", s.log());
    s.restart();
    check_keyed(&consume_all(&bootstrap, "orders", 6, count), count, ts_base);

    s.kill();
    s.restart();
    check_keyed(&consume_all(&bootstrap, "orders", 6, count), count, ts_base);
}

/// Records acknowledged before a crash (SIGKILL, before any checkpoint was written) are
/// readable right after the restart: the high watermark starts at the recovered log end, not at
/// the stale checkpointed one.
#[test]
fn records_acknowledged_before_a_crash_are_readable_at_once() {
    let mut s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "crashy", 2, &[]);
    let count = 2_000;
    let ts_base = 1_700_000_000_000;
    produce_keyed(&bootstrap, "crashy", count, &[("acks", "all")], ts_base);
    s.kill();
    s.restart();
    check_keyed(&consume_all(&bootstrap, "crashy", 2, count), count, ts_base);
}

/// Every codec librdkafka has is really used (librdkafka silently sends uncompressed batches
/// when the broker's API table does not look recent enough, e.g. lz4 without FindCoordinator),
/// stored as sent, and served back intact.
#[test]
fn every_codec_round_trips() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    for (codec, id) in [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ] {
        let topic = format!("codec-{codec}");
        create_topic(&bootstrap, &topic, 2, &[]);
        produce_keyed(
            &bootstrap,
            &topic,
            5000,
            &[("compression.codec", codec)],
            1_000,
        );
        check_keyed(&consume_all(&bootstrap, &topic, 2, 5000), 5000, 1_000);
        // librdkafka sends a batch uncompressed when compressing does not make it smaller (a
        // first batch of one or two records, depending on timing): every batch is in the
        // codec or uncompressed, never another codec, and the codec is there.
        let stored = stored_codecs(&s, &topic);
        assert!(
            stored.contains(&id) && stored.iter().all(|c| *c == id || *c == 0),
            "{codec}: stored codecs {stored:?}"
        );
    }
}

/// The idempotent producer (InitProducerId + sequence numbers) writes each record once.
#[test]
fn idempotent_producer_writes_once_in_order() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "idem", 3, &[]);
    produce_keyed(
        &bootstrap,
        "idem",
        20_000,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
        5_000,
    );
    check_keyed(&consume_all(&bootstrap, "idem", 3, 20_000), 20_000, 5_000);
}

/// offsets_for_times finds the first offset at or after a timestamp, and the ends are right.
#[test]
fn list_offsets_by_time_and_watermarks() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "times", 1, &[]);
    produce_keyed(&bootstrap, "times", 1000, &[("linger.ms", "0")], 10_000);
    let c = consumer(&bootstrap);
    let (low, high) = c.fetch_watermarks("times", 0, TIMEOUT).expect("watermarks");
    assert_eq!((low, high), (0, 1000));
    for (ts, expected) in [(10_000, 0), (10_500, 500), (10_999, 999)] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let found = c
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets_for_times");
        let e = found.elements();
        assert_eq!(e[0].offset(), Offset::Offset(expected), "timestamp {ts}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(99_999))
        .unwrap();
    let found = c
        .offsets_for_times(tpl, TIMEOUT)
        .expect("offsets_for_times");
    assert_eq!(found.elements()[0].offset(), Offset::End);
}

/// Topic admin through librdkafka: create, list, add partitions, describe configs, delete.
#[test]
fn topic_admin() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new();
    create_topic(&bootstrap, "admin-t", 2, &[("retention.ms", "3600000")]);

    // Creating it again fails with TopicAlreadyExists; an invalid name is refused.
    let again = block_on(admin.create_topics(
        &[NewTopic::new("admin-t", 1, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert!(
        matches!(
            again[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{again:?}"
    );
    let bad = block_on(admin.create_topics(
        &[NewTopic::new("bad/name", 1, TopicReplication::Fixed(1))],
        &opts,
    ))
    .unwrap();
    assert!(
        matches!(
            bad[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidTopic))
        ),
        "{bad:?}"
    );

    let res =
        block_on(admin.create_partitions(&[NewPartitions::new("admin-t", 5)], &opts)).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let md = admin
        .inner()
        .fetch_metadata(Some("admin-t"), TIMEOUT)
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    let configs =
        block_on(admin.describe_configs(&[ResourceSpecifier::Topic("admin-t")], &opts)).unwrap();
    let resource = configs[0].as_ref().expect("describe configs");
    let retention = resource.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default);
    let segment = resource.get("segment.bytes").expect("segment.bytes listed");
    assert!(segment.is_default);

    let res = block_on(admin.delete_topics(&["admin-t"], &opts)).unwrap();
    assert!(res[0].is_ok(), "{res:?}");
    let md = admin.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "admin-t"));
}

/// Starts a server whose advertised listener is a response-dropping proxy in front of it, so
/// every client connection (bootstrap and after) goes through the proxy.
fn server_behind_proxy(drop_every: u64) -> (TestServer, sluice_testkit::proxy::FaultyProxy) {
    let proxy_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = proxy_listener.local_addr().unwrap().port();
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port}");
    let s = server(&[&advertised]);
    let proxy =
        sluice_testkit::proxy::FaultyProxy::serve(proxy_listener, s.bootstrap(), drop_every);
    (s, proxy)
}

/// Goal: an idempotent producer whose Produce responses are lost (connection cut after the
/// broker wrote) retries, and every record is in the log exactly once, in order.
/// Method: a proxy drops every 5th Produce response; consume everything and check uniqueness
/// and per-partition order of the producer's sequence header.
#[test]
fn idempotent_producer_survives_lost_responses() {
    let (_s, proxy) = server_behind_proxy(5);
    let bootstrap = format!("127.0.0.1:{}", proxy.port());
    create_topic(&bootstrap, "idem-lossy", 3, &[]);
    produce_keyed(
        &bootstrap,
        "idem-lossy",
        20_000,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
            // Small batches: many Produce requests, so many responses to lose.
            ("batch.num.messages", "200"),
            // Reconnect at once after each cut instead of backing off up to 10 s.
            ("reconnect.backoff.ms", "10"),
            ("reconnect.backoff.max.ms", "100"),
        ],
        7_000,
    );
    assert!(
        proxy.dropped() > 0,
        "the proxy dropped nothing; the test proved nothing"
    );
    check_keyed(
        &consume_all(&bootstrap, "idem-lossy", 3, 20_000),
        20_000,
        7_000,
    );
}

/// Goal: producer state survives a broker crash, so retries after the restart are still
/// recognised as duplicates and the producer's sequence continues.
/// Method: one idempotent producer writes half, the broker is SIGKILLed and restarted, the same
/// producer writes the rest through a proxy that drops responses; exactly-once and order hold.
#[test]
fn producer_state_survives_a_crash() {
    let (mut s, proxy) = server_behind_proxy(4);
    let bootstrap = format!("127.0.0.1:{}", proxy.port());
    create_topic(&bootstrap, "idem-crash", 2, &[]);
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "120000"),
            ("batch.num.messages", "200"),
            ("reconnect.backoff.ms", "10"),
            ("reconnect.backoff.max.ms", "100"),
        ],
    );
    let send = |from: usize, to: usize| {
        for i in from..to {
            let key = format!("key-{}", i % 1000);
            let value = format!("value-{i:08}-{}", "x".repeat(i % 50));
            let headers = OwnedHeaders::new().insert(Header {
                key: "seq",
                value: Some(i.to_string().as_bytes()),
            });
            let record = BaseRecord::to("idem-crash")
                .key(&key)
                .payload(&value)
                .headers(headers)
                .timestamp(9_000 + i as i64);
            p.send(record).map_err(|(e, _)| e).expect("send");
        }
        p.flush(Duration::from_secs(120)).expect("flush");
    };
    send(0, 5_000);
    s.kill();
    s.restart();
    send(5_000, 10_000);
    assert!(proxy.dropped() > 0);
    check_keyed(
        &consume_all(&bootstrap, "idem-crash", 2, 10_000),
        10_000,
        9_000,
    );
}

/// `min.insync.replicas` above the in-sync replica count refuses `acks=all` writes with
/// NOT_ENOUGH_REPLICAS rather than weakening durability; `acks=1` still works.
#[test]
fn min_insync_replicas_refuses_acks_all() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "strict", 1, &[("min.insync.replicas", "2")]);
    let p: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "5000")
        .create()
        .unwrap();
    let result = block_on(
        p.send(
            rdkafka::producer::FutureRecord::to("strict")
                .payload("x")
                .key("k"),
            Duration::from_secs(10),
        ),
    );
    match result {
        Err((rdkafka::error::KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                rdkafka::types::RDKafkaErrorCode::NotEnoughReplicas
                    | rdkafka::types::RDKafkaErrorCode::MessageTimedOut
            ),
            "{code:?}"
        ),
        other => panic!("acks=all write was accepted: {other:?}"),
    }
    produce_keyed(&bootstrap, "strict", 10, &[("acks", "1")], 1_000_000);
    check_keyed(&consume_all(&bootstrap, "strict", 1, 10), 10, 1_000_000);
}

/// The codec of every stored batch of `topic`-0, read straight from its first segment file
/// (attributes & 7 of each batch header).
fn stored_codecs(s: &TestServer, topic: &str) -> Vec<i16> {
    let path = s
        .data_dir()
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let bytes = std::fs::read(&path).expect("segment file");
    let mut codecs = Vec::new();
    let mut at = 0;
    while at + 61 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        codecs.push(i16::from_be_bytes(bytes[at + 21..at + 23].try_into().unwrap()) & 7);
        at += 12 + len;
    }
    codecs
}

/// A topic with `compression.type=lz4` stores lz4 whatever the producer sent, and consumers
/// read the same records back; `producer` keeps the producer's codec byte for byte.
#[test]
fn topic_compression_type_recompresses() {
    let s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "forced-lz4", 1, &[("compression.type", "lz4")]);
    create_topic(&bootstrap, "as-produced", 1, &[]);
    for topic in ["forced-lz4", "as-produced"] {
        produce_keyed(
            &bootstrap,
            topic,
            3000,
            &[("compression.codec", "gzip")],
            50_000,
        );
        check_keyed(&consume_all(&bootstrap, topic, 1, 3000), 3000, 50_000);
    }
    let forced = stored_codecs(&s, "forced-lz4");
    assert!(
        !forced.is_empty() && forced.iter().all(|c| *c == 3),
        "{forced:?}"
    );
    let kept = stored_codecs(&s, "as-produced");
    assert!(!kept.is_empty() && kept.iter().all(|c| *c == 1), "{kept:?}");
}

/// AlterConfigs changes a topic at run time: DescribeConfigs shows it, the append path obeys it
/// at once (a compacted topic refuses keyless records with INVALID_RECORD), and it survives a
/// restart.
#[test]
fn alter_configs_apply_at_once_and_persist() {
    let mut s = server(&[]);
    let bootstrap = s.bootstrap();
    create_topic(&bootstrap, "alter-t", 1, &[]);
    let client = admin(&bootstrap);
    let opts = AdminOptions::new();
    let alter = rdkafka::admin::AlterConfig::new(ResourceSpecifier::Topic("alter-t"))
        .set("cleanup.policy", "compact")
        .set("retention.ms", "123456");
    let res = block_on(client.alter_configs(&[alter], &opts)).unwrap();
    assert!(res[0].is_ok(), "{res:?}");

    let p: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let keyless = block_on(p.send(
        rdkafka::producer::FutureRecord::<(), _>::to("alter-t").payload("no key"),
        Duration::from_secs(10),
    ));
    match keyless {
        Err((rdkafka::error::KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, rdkafka::types::RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("keyless record on a compacted topic was accepted: {other:?}"),
    }
    let keyed = block_on(
        p.send(
            rdkafka::producer::FutureRecord::to("alter-t")
                .payload("v")
                .key("k"),
            Duration::from_secs(10),
        ),
    );
    assert!(keyed.is_ok(), "{keyed:?}");

    assert!(s.stop());
    s.restart();
    let admin = admin(&bootstrap);
    let configs =
        block_on(admin.describe_configs(&[ResourceSpecifier::Topic("alter-t")], &opts)).unwrap();
    let resource = configs[0].as_ref().unwrap();
    assert_eq!(
        resource.get("cleanup.policy").unwrap().value.as_deref(),
        Some("compact")
    );
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("123456")
    );
}
