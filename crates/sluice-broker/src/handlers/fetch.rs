//! Fetch: reads record batches up to the high watermark (or the last stable offset for
//! `read_committed`), long-polling until `min_bytes` are ready or `max_wait_ms` passes.
//!
//! Sessions (KIP-227) are answered session-less: the response carries session id 0, which tells
//! the client that no session was created, so it keeps sending full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use crate::broker::{Broker, Topic};
use crate::zero_copy;
use sluice_log::FileSlice;

/// Longest a fetch may park, whatever the client asks (bounds parked requests).
const MAX_WAIT_MS_MAX: i32 = 300_000;
/// `isolation_level` value for `read_committed`.
const READ_COMMITTED: i8 = 1;

/// A Fetch answer: the response with placeholder `records`, and the file slices that fill each
/// placeholder, in encoding order (see [`crate::zero_copy`]).
#[derive(Debug)]
pub(crate) struct FetchReply {
    /// The response.
    pub(crate) response: FetchResponse,
    /// File slices per placeholder.
    pub(crate) fills: Vec<Vec<FileSlice>>,
}

/// Answers a Fetch request, parking it until enough data arrived or its wait ran out.
pub(crate) async fn handle(
    broker: &Arc<Broker>,
    request: FetchRequest,
    version: i16,
) -> FetchReply {
    let wait = Duration::from_millis(request.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    loop {
        // Register for the wake-up before reading, so an append between the read and the wait
        // is not missed.
        let notified = broker.data_arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (reply, bytes, has_error) = read(broker, &request, version);
        if bytes >= min_bytes || has_error || tokio::time::Instant::now() >= deadline {
            return reply;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn resolve_topic(
    broker: &Broker,
    t: &kafka_protocol::messages::fetch_request::FetchTopic,
    version: i16,
) -> Option<Arc<Topic>> {
    if version >= 13 {
        broker.topic_by_id(t.topic_id)
    } else {
        broker.topic(t.topic.as_str())
    }
}

/// One pass over the requested partitions: the response, the record bytes in it, and whether
/// any partition has an error (which returns the response at once).
fn read(broker: &Broker, request: &FetchRequest, version: i16) -> (FetchReply, usize, bool) {
    let committed = request.isolation_level == READ_COMMITTED;
    let mut budget = if version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    let mut has_error = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    let mut fills = Vec::new();
    for t in &request.topics {
        let topic = resolve_topic(broker, t, version);
        let unknown = if version >= 13 {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let data = match topic.as_ref() {
                None => error_partition(p.partition, unknown),
                Some(topic) => {
                    let (data, bytes) =
                        read_partition(topic, p, committed, budget, total == 0, &mut fills);
                    total += bytes;
                    budget = budget.saturating_sub(bytes);
                    data
                }
            };
            has_error |= data.error_code != 0;
            partitions.push(data);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (FetchReply { response, fills }, total, has_error)
}

fn error_partition(index: i32, code: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_records(Some(Bytes::new()))
}

fn read_partition(
    topic: &Topic,
    p: &FetchPartition,
    committed: bool,
    budget: usize,
    min_one: bool,
    fills: &mut Vec<Vec<FileSlice>>,
) -> (PartitionData, usize) {
    let partition = match topic.leader_partition(p.partition) {
        Ok(partition) => partition,
        Err(e) => return (error_partition(p.partition, e.code), 0),
    };
    let limit = budget.min(p.partition_max_bytes.max(0) as usize);
    let data = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(partition.high_watermark())
        .with_last_stable_offset(partition.last_stable_offset())
        .with_log_start_offset(partition.log_start_offset());
    let records = partition
        .read(p.fetch_offset, limit, committed, min_one)
        .and_then(|info| {
            let n = info.bytes;
            if n == 0 {
                return Ok((Bytes::new(), 0, Vec::new()));
            }
            // read_committed: the aborted transactions overlapping what is returned, so the
            // client can drop their records (the range ends at the LSO the read stopped at).
            let aborted = if committed {
                partition
                    .log()
                    .aborted_transactions(p.fetch_offset, info.last_stable_offset)?
                    .into_iter()
                    .map(|t| {
                        AbortedTransaction::default()
                            .with_producer_id(t.producer_id.into())
                            .with_first_offset(t.first_offset)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            match zero_copy::placeholder(n) {
                Some(placeholder) => {
                    fills.push(info.slices);
                    Ok((placeholder, n, aborted))
                }
                None => Ok((partition.copy_slices(&info.slices)?, n, aborted)),
            }
        });
    match records {
        Ok((records, n, aborted)) => (
            data.with_records(Some(records))
                .with_aborted_transactions(committed.then_some(aborted)),
            n,
        ),
        Err(e) => (
            data.with_error_code(e.code())
                .with_records(Some(Bytes::new()))
                .with_aborted_transactions(committed.then(Vec::new)),
            0,
        ),
    }
}
