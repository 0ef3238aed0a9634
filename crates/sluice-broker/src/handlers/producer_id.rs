//! InitProducerId for idempotent producers (transactional ids come with transactions).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::broker::Broker;

/// Hands an idempotent producer a fresh producer id with epoch 0. As in Kafka, a producer without
/// a transactional id always gets a new id, also when it sends its old one to bump the epoch.
pub(crate) fn handle(
    broker: &Arc<Broker>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        // Transactions are not implemented yet; the API table does not advertise them, so a
        // well-behaved client never gets here.
        return InitProducerIdResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
    }
    match broker.allocate_producer_id() {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(0),
        Err(e) => InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    }
}
