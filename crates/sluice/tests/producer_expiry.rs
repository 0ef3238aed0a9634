//! `producer.id.expiration.ms` against the real server: while a producer's state is kept, a
//! retried batch is recognised as a duplicate; once the producer has been idle longer than the
//! expiration, its state is gone and the same batch is written as new (Kafka's behaviour).
//!
//! Method: the project's client sends InitProducerId and raw Produce requests carrying the
//! producer id, epoch and sequence, and reads the base offsets the broker answers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateTopicsRequest, InitProducerIdRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_client::Client;
use sluice_testkit::TestServer;

const TOPIC: &str = "expiry";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn idempotent_batch(producer_id: i64, epoch: i16, timestamp: i64) -> Bytes {
    let records = vec![Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp,
        key: None,
        value: Some(Bytes::from_static(b"once")),
        headers: Default::default(),
    }];
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

/// Sends the batch and returns (error code, base offset).
async fn produce(client: &mut Client, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = client.send(&request, 9).await.expect("produce response");
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Goal: idle producers expire after `producer.id.expiration.ms`, checked every
/// `producer.id.expiration.check.interval.ms`, and not before.
#[test]
fn idle_producer_state_expires() {
    let s = TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "producer.id.expiration.ms=1500",
            "producer.id.expiration.check.interval.ms=200",
        ],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = Client::connect(&s.bootstrap()).await.unwrap();
        let create = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(1)
                .with_replication_factor(1)])
            .with_timeout_ms(5000);
        assert_eq!(
            client.send(&create, 7).await.unwrap().topics[0].error_code,
            0
        );
        let init = client
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
                4,
            )
            .await
            .unwrap();
        assert_eq!(init.error_code, 0);
        let (pid, epoch) = (i64::from(init.producer_id), init.producer_epoch);
        // The expiration counts from the batch's timestamp, so use the current time.
        let now = now_ms();
        let batch = idempotent_batch(pid, epoch, now);
        assert_eq!(produce(&mut client, batch.clone()).await, (0, 0));
        // An immediate retry is a duplicate: acknowledged with the original offset.
        assert_eq!(produce(&mut client, batch.clone()).await, (0, 0));
        // Retry until the state is gone: every retry before then is still a duplicate.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (error, offset) = produce(&mut client, batch.clone()).await;
            assert_eq!(error, 0);
            if offset == 1 {
                break;
            }
            assert_eq!(offset, 0, "a duplicate answers the original offset");
            assert!(
                Instant::now() < deadline,
                "producer state never expired (producer.id.expiration.ms=1500)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            now_ms() - now >= 1500,
            "expired before producer.id.expiration.ms"
        );
    });
}
