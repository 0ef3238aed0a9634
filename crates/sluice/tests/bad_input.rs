//! Bad input against the real server: garbage, absurd lengths, unknown keys and versions,
//! truncated requests, corrupt and oversized batches. Each gets Kafka's error code or a closed
//! connection, never a crash, and the broker keeps serving other clients.
//!
//! Method: raw TCP for malformed frames; the project's client for well-formed requests carrying
//! bad content; after each case a fresh connection must still get a normal answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_testkit::TestServer;

fn server() -> TestServer {
    TestServer::start(
        env!("CARGO_BIN_EXE_sluice"),
        &[
            "message.max.bytes=10000",
            "socket.request.max.bytes=1048576",
        ],
    )
}

fn connect(s: &TestServer) -> TcpStream {
    let c = TcpStream::connect(s.bootstrap()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Whether the broker closed the connection (EOF or reset) instead of answering.
fn closed(mut c: TcpStream) -> bool {
    let mut buf = [0u8; 4];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
    }
}

fn frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.request_header_version(version))
        .unwrap_or(1);
    header.encode(&mut payload, header_version).unwrap();
    payload.put_slice(body);
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

fn read_response(c: &mut TcpStream) -> Bytes {
    let mut len = [0u8; 4];
    c.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).expect("response body");
    Bytes::from(buf)
}

/// A fresh connection still gets Metadata answered.
fn still_serves(s: &TestServer) {
    let mut c = connect(s);
    let mut body = BytesMut::new();
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, 12)
        .unwrap();
    c.write_all(&frame(ApiKey::Metadata as i16, 12, 7, &body))
        .unwrap();
    let mut response = read_response(&mut c);
    let correlation = i32::from_be_bytes(response[..4].try_into().unwrap());
    assert_eq!(correlation, 7);
    let _ = &mut response;
}

#[test]
fn malformed_frames_close_the_connection_and_nothing_else() {
    let s = server();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "http request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("absurd length", i32::MAX.to_be_bytes().to_vec()),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        (
            "above socket.request.max.bytes",
            (2_000_000i32).to_be_bytes().to_vec(),
        ),
        ("unknown api key", frame(9999, 0, 1, &[])),
        (
            "unsupported metadata version",
            frame(ApiKey::Metadata as i16, 99, 1, &[]),
        ),
        (
            "produce v2 (message format v1)",
            frame(ApiKey::Produce as i16, 2, 1, &[0; 16]),
        ),
        (
            "truncated body",
            frame(ApiKey::Metadata as i16, 12, 1, &[0x05, 0x00]),
        ),
        ("too short for a header", vec![0, 0, 0, 3, 0, 3, 0]),
        // Array counts far beyond the frame: must not allocate for them or abort.
        (
            "absurd array count",
            frame(ApiKey::Metadata as i16, 1, 1, &i32::MAX.to_be_bytes()),
        ),
        (
            "absurd compact array count",
            frame(
                ApiKey::Metadata as i16,
                12,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0x0f],
            ),
        ),
        (
            "absurd produce topic count",
            frame(
                ApiKey::Produce as i16,
                9,
                1,
                &[0, 0, 1, 0, 0, 3, 0xe8, 0xff, 0xff, 0xff, 0xff, 0x0f],
            ),
        ),
    ];
    for (name, bytes) in cases {
        let mut c = connect(&s);
        c.write_all(&bytes).unwrap();
        assert!(closed(c), "{name}: connection should be closed");
        still_serves(&s);
    }
    // A client that disconnects in the middle of a frame does not disturb the broker.
    let mut c = connect(&s);
    c.write_all(&[0, 0, 1, 0, 0, 3]).unwrap();
    drop(c);
    still_serves(&s);
    assert!(s.log().contains("closing connection"), "{}", s.log());
}

#[test]
fn api_versions_above_max_gets_error_35_with_v0_body() {
    let s = server();
    let mut c = connect(&s);
    c.write_all(&frame(ApiKey::ApiVersions as i16, 77, 42, &[]))
        .unwrap();
    let mut response = read_response(&mut c);
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 42);
    let body = ApiVersionsResponse::decode(&mut response, 0).unwrap();
    assert_eq!(body.error_code, 35);
    let av = body
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions listed");
    assert_eq!((av.min_version, av.max_version), (0, 4));
    // The same connection stays usable.
    c.write_all(&frame(ApiKey::ApiVersions as i16, 3, 43, &[1, 1, 0]))
        .unwrap();
    let mut response = read_response(&mut c);
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, 43);
    let body = ApiVersionsResponse::decode(&mut response, 3).unwrap();
    assert_eq!(body.error_code, 0);
}

fn batch(value_len: usize, compression: Compression) -> BytesMut {
    let records = vec![Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from(vec![b'v'; value_len])),
        headers: Default::default(),
    }];
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf
}

fn produce(
    client: &mut sluice_client::Client,
    rt: &tokio::runtime::Runtime,
    records: Bytes,
) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bad")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = rt
        .block_on(client.send(&request, 9))
        .expect("produce response");
    response.responses[0].partition_responses[0].error_code
}

#[test]
fn corrupt_and_oversized_batches_get_kafka_error_codes() {
    let s = server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt
        .block_on(sluice_client::Client::connect(&s.bootstrap()))
        .unwrap();
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("bad")))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(5000);
    let created = rt.block_on(client.send(&create, 7)).unwrap();
    assert_eq!(created.topics[0].error_code, 0);

    // A good batch is accepted at offset 0.
    assert_eq!(
        produce(&mut client, &rt, batch(100, Compression::None).freeze()),
        0
    );
    // A flipped byte in the records fails the CRC: CORRUPT_MESSAGE (2).
    let mut bad = batch(100, Compression::None);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut client, &rt, bad.freeze()), 2);
    // A batch above message.max.bytes (10000): MESSAGE_TOO_LARGE (10).
    assert_eq!(
        produce(&mut client, &rt, batch(20_000, Compression::None).freeze()),
        10
    );
    // A truncated batch: CORRUPT_MESSAGE.
    let good = batch(100, Compression::None);
    assert_eq!(produce(&mut client, &rt, good.freeze().slice(..50)), 2);
    // Nothing of the refused batches was written: the next good batch lands at offset 1.
    let request = kafka_protocol::messages::ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            kafka_protocol::messages::list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("bad")))
                .with_partitions(vec![
                    kafka_protocol::messages::list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ]),
        ]);
    let offsets = rt.block_on(client.send(&request, 7)).unwrap();
    assert_eq!(offsets.topics[0].partitions[0].offset, 1);
    // The connection survived every refusal.
    assert_eq!(
        produce(&mut client, &rt, batch(100, Compression::Lz4).freeze()),
        0
    );
}
