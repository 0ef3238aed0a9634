//! InitProducerId: idempotent producers get a fresh producer id; transactional ones go through
//! the transaction coordinator.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::txn::fenced_for;
use crate::broker::Broker;

/// Hands an idempotent producer a fresh producer id with epoch 0 (as in Kafka, also when it
/// sends its old one to bump the epoch), and a transactional producer the id and bumped epoch
/// of its transactional id.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let result = match &request.transactional_id {
        Some(id) => {
            let expected = (request.producer_id.0 >= 0)
                .then_some((request.producer_id.0, request.producer_epoch));
            broker.txns.init_producer_id(
                broker,
                id.as_str(),
                request.transaction_timeout_ms,
                expected,
            )
        }
        None => broker
            .allocate_producer_id()
            .map(|id| (id, 0))
            .map_err(|e| e.code),
    };
    match result {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(epoch),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(fenced_for(e, version, 4).code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    }
}
