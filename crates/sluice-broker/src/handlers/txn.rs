//! Transaction APIs: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
//! DescribeTransactions, ListTransactions and DescribeProducers (InitProducerId is in
//! `producer_id`).
//!
//! Thin: each translates the wire message for [`crate::txn::TxnCoordinator`] (or the group
//! coordinator, for TxnOffsetCommit) and back.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response;
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use super::sb;
use crate::broker::Broker;
use crate::group::{CommitPartition, TxnCommit, OFFSETS_TOPIC};
use crate::txn::{TxnIdPattern, TxnState};

/// PRODUCER_FENCED came with KIP-588; versions before `since` get INVALID_PRODUCER_EPOCH, the
/// code their clients know.
pub(crate) fn fenced_for(e: ResponseError, version: i16, since: i16) -> ResponseError {
    if e == ResponseError::ProducerFenced && version < since {
        ResponseError::InvalidProducerEpoch
    } else {
        e
    }
}

/// Answers AddPartitionsToTxn (client versions 0–3). If any partition is unknown nothing is
/// added: those get UNKNOWN_TOPIC_OR_PARTITION and the rest OPERATION_NOT_ATTEMPTED, as Kafka.
pub(crate) fn add_partitions(
    broker: &Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut known = Vec::new();
    let image = broker.image();
    for t in &request.v3_and_below_topics {
        for p in &t.partitions {
            known.push(image.has_partition(t.name.as_str(), *p));
        }
    }
    let all_known = known.iter().all(|k| *k);
    let outcome = if all_known {
        let partitions: Vec<(String, i32)> = request
            .v3_and_below_topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), *p)))
            .collect();
        broker
            .txns
            .add_partitions(
                broker,
                request.v3_and_below_transactional_id.as_str(),
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &partitions,
            )
            .err()
            .map(|e| fenced_for(e, version, 2))
    } else {
        None
    };
    let mut known = known.into_iter();
    let results = request
        .v3_and_below_topics
        .into_iter()
        .map(|t| {
            let results = t
                .partitions
                .iter()
                .map(|p| {
                    let error = match known.next() {
                        _ if all_known => outcome,
                        Some(true) => Some(ResponseError::OperationNotAttempted),
                        _ => Some(ResponseError::UnknownTopicOrPartition),
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// Answers AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the transaction.
pub(crate) fn add_offsets(
    broker: &Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let result = broker
        .groups
        .partition_index(broker, request.group_id.as_str())
        .map_err(|_| ResponseError::CoordinatorNotAvailable)
        .and_then(|index| {
            broker.txns.add_partitions(
                broker,
                request.transactional_id.as_str(),
                request.producer_id.0,
                request.producer_epoch,
                &[(OFFSETS_TOPIC.to_string(), index)],
            )
        });
    AddOffsetsToTxnResponse::default()
        .with_error_code(result.err().map_or(0, |e| fenced_for(e, version, 2).code()))
}

/// Answers EndTxn.
pub(crate) fn end_txn(
    broker: &Arc<Broker>,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    let result = broker.txns.end_txn(
        broker,
        request.transactional_id.as_str(),
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    EndTxnResponse::default()
        .with_error_code(result.err().map_or(0, |e| fenced_for(e, version, 2).code()))
}

/// Answers TxnOffsetCommit: the transaction must hold the group's offsets partition
/// (AddOffsetsToTxn first); then the group coordinator checks the member and writes.
pub(crate) fn txn_offset_commit(
    broker: &Arc<Broker>,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group_id = request.group_id.as_str();
    let partitions: Vec<CommitPartition> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| CommitPartition {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map_or(String::new(), |m| m.to_string()),
            })
        })
        .collect();
    let verified = broker
        .groups
        .partition_index(broker, group_id)
        .map_err(|_| ResponseError::CoordinatorNotAvailable)
        .and_then(|index| {
            broker.txns.verify(
                Some(request.transactional_id.as_str()),
                request.producer_id.0,
                request.producer_epoch,
                OFFSETS_TOPIC,
                index,
            )
        });
    let results = match verified {
        Err(e) => vec![Some(e); partitions.len()],
        Ok(()) => {
            let commit = TxnCommit {
                group_id,
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
                member_id: request.member_id.as_str(),
                instance: request.group_instance_id.as_ref().map(|i| i.as_str()),
                generation_id: request.generation_id,
            };
            broker.groups.txn_commit(broker, &commit, &partitions)
        }
    };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let e = results.next().flatten().map(|e| fenced_for(e, version, 3));
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(e.map_or(0, |e| e.code()))
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Answers DescribeTransactions.
pub(crate) fn describe(
    broker: &Arc<Broker>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone());
            let Some(m) = broker.txns.describe(id.as_str()) else {
                return state
                    .with_error_code(ResponseError::TransactionalIdNotFound.code())
                    .with_transaction_state(sb(""))
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1);
            };
            let mut topics: Vec<TopicData> = Vec::new();
            for (topic, partition) in &m.partitions {
                match topics.last_mut() {
                    Some(t) if t.topic.as_str() == topic => t.partitions.push(*partition),
                    _ => topics.push(
                        TopicData::default()
                            .with_topic(TopicName(sb(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            state
                .with_transaction_state(sb(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(m.producer_id.into())
                .with_producer_epoch(m.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// Answers ListTransactions (v0–v2: state, producer-id, duration and, v2, transactional id
/// pattern filters).
pub(crate) fn list(
    broker: &Arc<Broker>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let pattern = match TxnIdPattern::parse(request.transactional_id_pattern.as_deref()) {
        Ok(p) => p,
        Err(e) => return ListTransactionsResponse::default().with_error_code(e.code()),
    };
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(s) => states.push(s),
            None => unknown.push(name),
        }
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let listed = if unknown.is_empty() || !states.is_empty() {
        broker.txns.list(
            &states,
            &producer_ids,
            request.duration_filter,
            pattern.as_ref(),
        )
    } else {
        Vec::new()
    };
    let listed = listed
        .into_iter()
        .map(|m| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(sb(m.transactional_id).into())
                .with_producer_id(m.producer_id.into())
                .with_transaction_state(sb(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}

/// Answers DescribeProducers: the producer state of each partition (idempotent and
/// transactional producers, with the first offset of an open transaction).
pub(crate) fn describe_producers(
    broker: &Arc<Broker>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(t.name.as_str());
            let partitions = t
                .partition_indexes
                .iter()
                .map(|index| {
                    let r = describe_producers_response::PartitionResponse::default()
                        .with_partition_index(*index);
                    let states = match topic.as_ref().and_then(|t| t.partition(*index)) {
                        None => Err(crate::error::ApiError::unknown_topic()),
                        Some(p) => p.log().producer_states().map_err(Into::into),
                    };
                    match states {
                        Err(e) => r
                            .with_error_code(e.code())
                            .with_error_message(Some(sb(e.message))),
                        Ok(states) => r.with_active_producers(
                            states
                                .into_iter()
                                .map(|s| {
                                    describe_producers_response::ProducerState::default()
                                        .with_producer_id(s.producer_id.into())
                                        .with_producer_epoch(i32::from(s.producer_epoch))
                                        .with_last_sequence(s.last_seq())
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(
                                            s.current_txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            describe_producers_response::TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
