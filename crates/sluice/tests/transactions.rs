//! Exactly-once transactions with librdkafka (the `rdkafka` crate) against the real
//! `sluice server`: commits and aborts seen by `read_committed` and `read_uncommitted`
//! consumers, the last stable offset while a transaction is open, offsets committed inside a
//! transaction (consume-transform-produce), fencing of a zombie producer, the timeout abort,
//! state that survives a restart, and the error codes of bad transactional requests.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ListTransactionsRequest, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::{block_on, wait_for, TestServer};

const T: Duration = Duration::from_secs(20);

fn server() -> TestServer {
    TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "group.initial.rebalance.delay.ms=0",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.num.partitions=3",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=200",
        ],
    )
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
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

fn txn_producer(
    bootstrap: &str,
    id: &str,
    timeout_ms: u32,
) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<(), _>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .expect("enqueue");
}

fn consumer(bootstrap: &str, isolation: &str, group: Option<&str>) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("group.id", group.unwrap_or("reader"));
    c.create().expect("consumer")
}

/// Reads every partition of `topic` from the start until `count` records arrived (or the
/// deadline passed): values per partition, in order.
fn read_all(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> BTreeMap<i32, Vec<String>> {
    let c = consumer(bootstrap, isolation, None);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut got = 0;
    wait_for(T, || {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.entry(m.partition()).or_default().push(v);
            got += 1;
        }
        got >= count
    });
    out
}

/// The end offset a consumer of this isolation level sees: the high watermark, or the last
/// stable offset for `read_committed` (ListOffsets with the isolation level).
fn end_offset(bootstrap: &str, isolation: &str, topic: &str, partition: i32) -> i64 {
    let c = consumer(bootstrap, isolation, None);
    c.fetch_watermarks(topic, partition, T)
        .expect("watermarks")
        .1
}

/// DescribeProducers: each producer's open transaction start offset (-1 for none).
fn open_txn_start(bootstrap: &str, topic: &str, partition: i32) -> Vec<i64> {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use kafka_protocol::messages::DescribeProducersRequest;
    block_on(async {
        let mut c = sluice_client::Client::connect(bootstrap).await.unwrap();
        let r = c
            .send(
                &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_indexes(vec![partition])]),
                0,
            )
            .await
            .unwrap();
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.active_producers
            .iter()
            .map(|s| s.current_txn_start_offset)
            .collect()
    })
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Goal: committed transactions are visible to `read_committed` consumers and aborted ones are
/// not, in order, while `read_uncommitted` consumers see everything; an open transaction holds
/// the last stable offset back until it ends.
#[test]
fn commits_and_aborts_under_both_isolation_levels() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "tx", 2);
    let p = txn_producer(&b, "tx-1", 60_000);

    p.begin_transaction().unwrap();
    for v in values("c1", 5) {
        send(&p, "tx", 0, &v);
        send(&p, "tx", 1, &v);
    }
    p.flush(T).unwrap();
    assert_eq!(
        end_offset(&b, "read_committed", "tx", 0),
        0,
        "the open transaction holds the LSO"
    );
    assert_eq!(end_offset(&b, "read_uncommitted", "tx", 0), 5);
    assert_eq!(open_txn_start(&b, "tx", 0), vec![0], "DescribeProducers");
    p.commit_transaction(T).expect("commit");
    assert_eq!(open_txn_start(&b, "tx", 0), vec![-1]);
    assert_eq!(
        end_offset(&b, "read_committed", "tx", 0),
        6,
        "data + marker"
    );

    p.begin_transaction().unwrap();
    for v in values("a", 4) {
        send(&p, "tx", 0, &v);
    }
    p.flush(T).unwrap();
    p.abort_transaction(T).expect("abort");

    p.begin_transaction().unwrap();
    for v in values("c2", 3) {
        send(&p, "tx", 0, &v);
    }
    p.commit_transaction(T).expect("commit");

    let committed = read_all(&b, "read_committed", "tx", 2, 13);
    let mut want0 = values("c1", 5);
    want0.extend(values("c2", 3));
    assert_eq!(committed.get(&0), Some(&want0));
    assert_eq!(committed.get(&1), Some(&values("c1", 5)));

    let all = read_all(&b, "read_uncommitted", "tx", 2, 17);
    let mut want0 = values("c1", 5);
    want0.extend(values("a", 4));
    want0.extend(values("c2", 3));
    assert_eq!(all.get(&0), Some(&want0));
}

/// Goal: offsets sent inside a transaction (consume-transform-produce) become the group's
/// committed offsets only when the transaction commits; an aborted transaction leaves both the
/// output and the offsets untouched. The committed offsets survive a restart.
#[test]
fn offsets_committed_in_transactions_and_kept_across_restart() {
    let mut s = server();
    let b = s.bootstrap();
    create_topic(&b, "in", 1);
    create_topic(&b, "out", 1);
    {
        let plain: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .create()
            .unwrap();
        for v in values("in", 10) {
            send(&plain, "in", 0, &v);
        }
        plain.flush(T).unwrap();
    }
    let c = consumer(&b, "read_committed", Some("eos"));
    c.subscribe(&["in"]).unwrap();
    let p = txn_producer(&b, "eos-1", 60_000);
    let mut seen = Vec::new();
    assert!(wait_for(T, || {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            seen.push(m.offset());
        }
        seen.len() >= 10
    }));

    let offsets_at = |n: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 0, Offset::Offset(n))
            .unwrap();
        tpl
    };
    // Transform the first 6 and commit with offset 6.
    p.begin_transaction().unwrap();
    for v in values("out", 6) {
        send(&p, "out", 0, &v);
    }
    p.send_offsets_to_transaction(&offsets_at(6), &c.group_metadata().unwrap(), T)
        .expect("send offsets");
    p.commit_transaction(T).expect("commit");
    let committed = |c: &BaseConsumer| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        c.committed_offsets(tpl, T)
            .expect("committed")
            .find_partition("in", 0)
            .unwrap()
            .offset()
    };
    assert_eq!(committed(&c), Offset::Offset(6));

    // An aborted transaction moves nothing.
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "zombie");
    p.send_offsets_to_transaction(&offsets_at(10), &c.group_metadata().unwrap(), T)
        .expect("send offsets");
    p.abort_transaction(T).expect("abort");
    assert_eq!(committed(&c), Offset::Offset(6));
    assert_eq!(
        read_all(&b, "read_committed", "out", 1, 6).get(&0),
        Some(&values("out", 6))
    );
    drop(p);
    drop(c);

    assert!(s.stop(), "clean shutdown");
    s.restart();
    let b = s.bootstrap();
    let c = consumer(&b, "read_committed", Some("eos"));
    assert_eq!(committed(&c), Offset::Offset(6), "kept across a restart");
    assert_eq!(
        read_all(&b, "read_committed", "out", 1, 6).get(&0),
        Some(&values("out", 6))
    );
}

fn is_fenced(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(e) => e.is_fatal() || e.txn_requires_abort(),
        _ => false,
    }
}

/// Goal: a second producer with the same transactional id fences the first: the first's open
/// transaction is aborted (its records never become visible) and its commit fails.
#[test]
fn a_new_producer_fences_the_old_one() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "fence", 1);
    let old = txn_producer(&b, "fence-1", 60_000);
    old.begin_transaction().unwrap();
    send(&old, "fence", 0, "old");
    old.flush(T).unwrap();

    let new = txn_producer(&b, "fence-1", 60_000);
    let err = old
        .commit_transaction(T)
        .expect_err("the old producer is fenced");
    assert!(is_fenced(&err), "unexpected error {err:?}");

    new.begin_transaction().unwrap();
    send(&new, "fence", 0, "new");
    new.commit_transaction(T).expect("commit");
    let read = read_all(&b, "read_committed", "fence", 1, 1);
    assert_eq!(read.get(&0), Some(&vec!["new".to_string()]));
    assert_eq!(end_offset(&b, "read_committed", "fence", 0), 4);
}

/// Goal: a transaction left open longer than its `transaction.timeout.ms` is aborted by the
/// coordinator, which releases the last stable offset and fences the producer; an open
/// transaction interrupted by a server restart is aborted the same way after the restart.
#[test]
fn timed_out_transactions_are_aborted_also_after_a_restart() {
    let mut s = server();
    let b = s.bootstrap();
    create_topic(&b, "slow", 1);
    let p = txn_producer(&b, "slow-1", 1_000);
    p.begin_transaction().unwrap();
    send(&p, "slow", 0, "late");
    p.flush(T).unwrap();
    assert!(
        wait_for(T, || end_offset(&b, "read_committed", "slow", 0) == 2),
        "the coordinator aborts the transaction: data + abort marker become stable"
    );
    let err = p.commit_transaction(T).expect_err("timed out");
    assert!(is_fenced(&err), "unexpected error {err:?}");
    drop(p);

    let p = txn_producer(&b, "slow-2", 1_500);
    p.begin_transaction().unwrap();
    send(&p, "slow", 0, "interrupted");
    p.flush(T).unwrap();
    assert_eq!(end_offset(&b, "read_committed", "slow", 0), 2);
    std::mem::forget(p); // its background thread would keep retrying against the old port
    s.kill();
    s.restart();
    let b = s.bootstrap();
    assert!(
        wait_for(T, || end_offset(&b, "read_committed", "slow", 0) == 4),
        "the transaction open at the crash is aborted after its timeout"
    );
}

/// Goal: bad transactional requests get Kafka's error codes, and the admin APIs describe and
/// list transactions.
#[test]
fn bad_transactional_requests_get_kafka_error_codes() {
    let s = server();
    let b = s.bootstrap();
    create_topic(&b, "bad", 1);
    block_on(async {
        let mut c = sluice_client::Client::connect(&b).await.expect("connect");
        let init = |id: &str, timeout: i32| {
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb(id))))
                .with_transaction_timeout_ms(timeout)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1)
        };
        let r = c.send(&init("b-1", 3_600_000), 5).await.unwrap();
        assert_eq!(
            r.error_code,
            ResponseError::InvalidTransactionTimeout.code()
        );
        let r = c.send(&init("", 60_000), 5).await.unwrap();
        assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
        let r = c.send(&init("b-1", 60_000), 5).await.unwrap();
        assert_eq!(r.error_code, 0);
        let (pid, epoch) = (r.producer_id, r.producer_epoch);
        assert_eq!(epoch, 0);

        let add = |epoch: i16, topic: &str| {
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(sb("b-1")))
                .with_v3_and_below_producer_id(pid)
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![0])])
        };
        let code = |r: &kafka_protocol::messages::AddPartitionsToTxnResponse| {
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
        };
        let r = c.send(&add(epoch + 1, "bad"), 3).await.unwrap();
        assert_eq!(code(&r), ResponseError::ProducerFenced.code());
        let r = c.call(&add(epoch + 1, "bad"), 1).await.unwrap();
        assert_eq!(code(&r), ResponseError::InvalidProducerEpoch.code(), "v1");
        let r = c.send(&add(epoch, "nope"), 3).await.unwrap();
        assert_eq!(code(&r), ResponseError::UnknownTopicOrPartition.code());

        let end = |id: &str, commit: bool| {
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb(id)))
                .with_producer_id(pid)
                .with_producer_epoch(epoch)
                .with_committed(commit)
        };
        let r = c.send(&end("unknown", true), 4).await.unwrap();
        assert_eq!(r.error_code, ResponseError::InvalidProducerIdMapping.code());
        let r = c.send(&end("b-1", true), 4).await.unwrap();
        assert_eq!(
            r.error_code,
            ResponseError::InvalidTxnState.code(),
            "no open transaction"
        );

        // Offsets without AddOffsetsToTxn first: not part of the transaction.
        let txn_commit = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(sb("b-1")))
            .with_group_id(GroupId(sb("g")))
            .with_producer_id(pid)
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("bad")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        let r = c.send(&txn_commit, 4).await.unwrap();
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ResponseError::InvalidTxnState.code()
        );

        let r = c.send(&add(epoch, "bad"), 3).await.unwrap();
        assert_eq!(code(&r), 0);
        let d = c
            .send(
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![
                    TransactionalId(sb("b-1")),
                    TransactionalId(sb("x")),
                ]),
                0,
            )
            .await
            .unwrap();
        let state = &d.transaction_states[0];
        assert_eq!(state.transaction_state.as_str(), "Ongoing");
        assert_eq!(state.producer_id, pid);
        assert_eq!(state.topics[0].topic.as_str(), "bad");
        assert_eq!(
            d.transaction_states[1].error_code,
            ResponseError::TransactionalIdNotFound.code()
        );
        let l = c
            .send(
                &ListTransactionsRequest::default()
                    .with_state_filters(vec![sb("Ongoing"), sb("Bogus")])
                    .with_duration_filter(-1),
                1,
            )
            .await
            .unwrap();
        assert_eq!(l.transaction_states.len(), 1);
        assert_eq!(l.unknown_state_filters, vec![sb("Bogus")]);
        let r = c.send(&end("b-1", false), 4).await.unwrap();
        assert_eq!(r.error_code, 0);
        let r = c.send(&end("b-1", false), 4).await.unwrap();
        assert_eq!(r.error_code, 0, "a retried EndTxn succeeds");
        let r = c.send(&end("b-1", true), 4).await.unwrap();
        assert_eq!(r.error_code, ResponseError::InvalidTxnState.code());
    });
}
