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

async fn append(
    partition: &Partition,
    records: &bytes::Bytes,
    now: i64,
    acks: i16,
    timeout: Duration,
) -> Result<Appended, ApiError> {
    if acks == -1 {
        partition.check_min_insync()?;
    }
    let appended = partition.append(records, now)?;
    if acks == -1 {
        partition
            .await_high_watermark(appended.end_offset, timeout)
            .await?;
    }
    Ok(appended)
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

/// Answers a Produce request; `None` when `acks=0` asks for no response. `acks=all` waits for
/// the high watermark to pass each partition's write (the delayed-produce path).
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.clamp(0, TIMEOUT_MS_MAX) as u64);
    let now = now_ms();
    let txn_id = request.transactional_id.as_ref().map(|t| t.as_str());
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let topic = broker.topic(topic_data.name.as_str());
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for pd in topic_data.partition_data {
            let result = if !matches!(acks, -1..=1) {
                Err(ApiError::new(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be -1, 0 or 1, not {acks}"),
                ))
            } else {
                match topic.as_ref().and_then(|t| t.partition(pd.index)) {
                    None => Err(ApiError::unknown_topic()),
                    Some(partition) => match &pd.records {
                        Some(records) if !records.is_empty() => {
                            match verify_transaction(broker, txn_id, partition, records) {
                                Ok(()) => append(partition, records, now, acks, timeout).await,
                                Err(e) => Err(e),
                            }
                        }
                        _ => Err(ApiError::new(
                            ResponseError::CorruptMessage,
                            "produce request without records",
                        )),
                    },
                }
            };
            let response = match result {
                Ok(r) => PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(r.base_offset)
                    .with_log_append_time_ms(r.log_append_time_ms)
                    .with_log_start_offset(r.log_start_offset),
                Err(e) => {
                    tracing::debug!(topic = %topic_data.name.as_str(), partition = pd.index, error = %e, "produce refused");
                    partition_error(pd.index, &e, version)
                }
            };
            partition_responses.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    broker.data_arrived.notify_waiters();
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
