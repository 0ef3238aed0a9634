//! DeleteRecords: moves partitions' log start offsets forward, deleting whole segments below.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::Partition;

/// The offset DeleteRecords uses for "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// Deletes the records of one partition below `offset`; returns the new low watermark.
fn delete_below(partition: &Partition, compacted_only: bool, offset: i64) -> Result<i64, ApiError> {
    if compacted_only {
        // Kafka refuses client deletions on topics without the delete policy.
        return Err(ApiError::new(
            ResponseError::PolicyViolation,
            "Records of a topic with cleanup.policy=compact cannot be deleted",
        ));
    }
    let high_watermark = partition.high_watermark();
    let offset = if offset == HIGH_WATERMARK {
        high_watermark
    } else {
        offset
    };
    if offset < 0 || offset > high_watermark {
        return Err(ApiError::new(
            ResponseError::OffsetOutOfRange,
            format!("offset {offset} is outside 0..={high_watermark}"),
        ));
    }
    partition
        .log()
        .advance_log_start_offset(offset, sluice_log::now_ms())?;
    Ok(partition.log_start_offset())
}

/// Answers DeleteRecords.
pub(crate) fn delete_records(
    broker: &Arc<Broker>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let found = topic
                        .as_ref()
                        .and_then(|x| Some((x, x.partition(p.partition_index)?)));
                    let result = match found {
                        None => Err(ApiError::unknown_topic()),
                        Some((topic, partition)) => {
                            delete_below(partition, !topic.config.has_delete_policy(), p.offset)
                        }
                    };
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low) => r.with_low_watermark(low),
                        Err(e) => r.with_low_watermark(-1).with_error_code(e.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
