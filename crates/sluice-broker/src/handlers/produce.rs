//! Produce: validates and appends record batches, one partition at a time.
//!
//! Records stay as the `Bytes` slices of the request frame; only batch headers are read. On one
//! node the in-sync replica set is the leader alone, so `acks=all` completes with the local
//! append, exactly like `acks=1`; replication will park `acks=all` until the high watermark
//! passes the batch.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{now_ms, sb};
use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::{Appended, Partition};

fn partition_error(index: i32, e: &ApiError, version: i16) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code())
        .with_base_offset(-1)
        .with_error_message(Some(sb(e.message.clone())));
    if version < 8 {
        return response;
    }
    // v8+ names the offending records, so clients fail only those and retry the others
    // (librdkafka: INVALID_RECORD for them, _INVALID_DIFFERENT_RECORD for the rest).
    response.with_record_errors(
        e.record_errors
            .iter()
            .map(|(i, m)| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(*i)
                    .with_batch_index_error_message(Some(sb(m.clone())))
            })
            .collect(),
    )
}

/// Longest `acks=all` wait, whatever the request's `timeout_ms` says.
const TIMEOUT_MS_MAX: i32 = 300_000;

/// Validates and appends one partition's records; `acks=all` refuses up front when too few
/// replicas are in sync.
fn append(
    partition: &Partition,
    records: &bytes::Bytes,
    now: i64,
    acks: i16,
) -> Result<Appended, ApiError> {
    if acks == -1 {
        partition.check_min_insync()?;
    }
    partition.append(records, now)
}

/// A transactional batch may only go to a partition its open transaction added (KIP-890 part
/// 1), so that a late or stray write cannot leave a transaction hanging. Reads one header.
fn verify_transaction(
    broker: &Broker,
    transactional_id: Option<&str>,
    partition: &Partition,
    records: &bytes::Bytes,
) -> Result<(), ApiError> {
    let Ok(header) = sluice_proto::batch::BatchHeader::parse(records) else {
        return Ok(()); // the append reports the malformed batch
    };
    if !header.is_transactional() {
        return Ok(());
    }
    if transactional_id.is_none() {
        return Err(ApiError::new(
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactional records need the request's transactional id",
        ));
    }
    broker
        .txns
        .verify(
            transactional_id,
            header.producer_id,
            header.producer_epoch,
            &partition.topic,
            partition.index,
        )
        .map_err(|code| {
            ApiError::new(
                code,
                "the partition is not part of the producer's open transaction",
            )
        })
}

/// Answers a Produce request; `None` when `acks=0` asks for no response. Every partition is
/// appended first; then `acks=all` waits for all of them together (the delayed produce), each
/// until the high watermark passes its write or the request's one deadline passes.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.clamp(0, TIMEOUT_MS_MAX) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let now = now_ms();
    let txn_id = request.transactional_id.as_ref().map(|t| t.as_str());
    // (topic name, [(partition index, result, partition to wait on for acks=all)]) in request
    // order; only a successful acks=all write keeps its partition.
    let mut appended = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic = broker.topic(topic_data.name.as_str());
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let leader = check_acks(acks).and_then(|()| {
                topic
                    .as_ref()
                    .ok_or_else(ApiError::unknown_topic)
                    .and_then(|t| t.leader_partition(pd.index))
            });
            let (result, waiting) = match leader {
                Ok(p) => {
                    let result = append_one(broker, p, &pd, txn_id, now, acks);
                    let waiting = (acks == -1 && result.is_ok()).then(|| p.clone());
                    (result, waiting)
                }
                Err(e) => (Err(e), None),
            };
            partitions.push((pd.index, result, waiting));
        }
        appended.push((topic_data.name, partitions));
    }
    // Wake parked fetches (followers among them) before waiting on them.
    broker.data_arrived.notify_waiters();
    if acks == 0 {
        return None;
    }
    let mut responses = Vec::with_capacity(appended.len());
    for (name, partitions) in appended {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for (index, mut result, waiting) in partitions {
            if let (Some(p), Ok(r)) = (&waiting, &result) {
                if let Err(e) = p.await_high_watermark(r.end_offset, deadline).await {
                    result = Err(e);
                }
            }
            partition_responses.push(match result {
                Ok(r) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(r.base_offset)
                    .with_log_append_time_ms(r.log_append_time_ms)
                    .with_log_start_offset(r.log_start_offset),
                Err(e) => {
                    tracing::debug!(topic = %name.as_str(), partition = index, error = %e, "produce refused");
                    partition_error(index, &e, version)
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// INVALID_REQUIRED_ACKS unless `acks` is -1, 0 or 1 (checked for every partition before
/// anything else).
fn check_acks(acks: i16) -> Result<(), ApiError> {
    if matches!(acks, -1..=1) {
        return Ok(());
    }
    Err(ApiError::new(
        ResponseError::InvalidRequiredAcks,
        format!("acks must be -1, 0 or 1, not {acks}"),
    ))
}

/// Checks and appends one partition of a Produce request on its leader.
fn append_one(
    broker: &Broker,
    partition: &Partition,
    pd: &kafka_protocol::messages::produce_request::PartitionProduceData,
    txn_id: Option<&str>,
    now: i64,
    acks: i16,
) -> Result<Appended, ApiError> {
    match &pd.records {
        Some(records) if !records.is_empty() => {
            verify_transaction(broker, txn_id, partition, records)?;
            append(partition, records, now, acks)
        }
        _ => Err(ApiError::new(
            ResponseError::CorruptMessage,
            "produce request without records",
        )),
    }
}
