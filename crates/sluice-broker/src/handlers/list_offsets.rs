//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::Partition;

/// Special ListOffsets timestamps (Kafka's `ListOffsetsRequest` constants).
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Resolves one ListOffsets query to (timestamp, offset, leader epoch).
fn lookup(p: &Partition, timestamp: i64, committed: bool) -> Result<(i64, i64, i32), ApiError> {
    let epoch = p.leader_epoch();
    Ok(match timestamp {
        LATEST => {
            let end = if committed {
                p.last_stable_offset()
            } else {
                p.high_watermark()
            };
            (-1, end, epoch)
        }
        EARLIEST | EARLIEST_LOCAL => (-1, p.log_start_offset(), epoch),
        // No tiered storage: nothing is in the remote tier.
        LATEST_TIERED => (-1, -1, -1),
        MAX_TIMESTAMP => match p.max_timestamp_offset()? {
            Some((ts, offset, e)) => (ts, offset, e),
            None => (-1, -1, -1),
        },
        ts if ts >= 0 => match p.offset_for_timestamp(ts)? {
            Some((ts, offset, e)) => (ts, offset, e),
            None => (-1, -1, -1),
        },
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("invalid ListOffsets timestamp {other}"),
            ))
        }
    })
}

/// Answers ListOffsets.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|q| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(q.partition_index);
                    let found = topic
                        .as_ref()
                        .ok_or_else(ApiError::unknown_topic)
                        .and_then(|t| t.leader_partition(q.partition_index))
                        .and_then(|p| lookup(p, q.timestamp, committed));
                    match found {
                        Ok((ts, offset, epoch)) => base
                            .with_timestamp(ts)
                            .with_offset(offset)
                            // The field exists from v4 on.
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Answers OffsetForLeaderEpoch: the end offset of the requested epoch, from the leader-epoch
/// cache, as consumers validating their position after a leader change expect (KIP-320).
pub(crate) fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.topic.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|q| {
                    let base = EpochEndOffset::default().with_partition(q.partition);
                    let Some(p) = topic.as_ref().and_then(|t| t.partition(q.partition)) else {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    };
                    if q.current_leader_epoch > p.leader_epoch() {
                        return base
                            .with_error_code(ResponseError::UnknownLeaderEpoch.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1);
                    }
                    match p.end_offset_for_epoch(q.leader_epoch) {
                        Ok((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
