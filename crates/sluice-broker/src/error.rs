//! The broker's error type and its one mapping to Kafka error codes.

use kafka_protocol::error::ResponseError;

/// A failed broker operation, carrying the Kafka error a client sees.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The Kafka error code.
    pub code: ResponseError,
    /// A human-readable message (sent where the response has an error-message field).
    pub message: String,
    /// Per-record errors of a refused batch (Produce v8+ `record_errors`): (index in the
    /// batch, message).
    pub record_errors: Vec<(i32, String)>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ResponseError, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            record_errors: Vec::new(),
        }
    }

    /// UNKNOWN_TOPIC_OR_PARTITION with Kafka's message.
    pub fn unknown_topic() -> ApiError {
        ApiError::new(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    }

    /// Attaches per-record errors.
    pub fn with_record_errors(mut self, record_errors: Vec<(i32, String)>) -> ApiError {
        self.record_errors = record_errors;
        self
    }

    /// The wire code.
    pub fn code(&self) -> i16 {
        self.code.code()
    }
}

impl From<sluice_log::LogError> for ApiError {
    fn from(e: sluice_log::LogError) -> ApiError {
        let code = ResponseError::try_from_code(e.kafka_error_code())
            .unwrap_or(ResponseError::UnknownServerError);
        ApiError::new(code, e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

impl From<sluice_metadata::controller::ControllerError> for ApiError {
    fn from(e: sluice_metadata::controller::ControllerError) -> ApiError {
        use sluice_metadata::controller::ControllerError as E;
        let code = match &e {
            E::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            E::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
            E::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            E::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            E::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            E::StaleBroker(_) => ResponseError::StaleBrokerEpoch,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<sluice_metadata::quorum::QuorumError> for ApiError {
    fn from(e: sluice_metadata::quorum::QuorumError) -> ApiError {
        use sluice_metadata::quorum::QuorumError as E;
        match e {
            E::Refused(e) => e.into(),
            // The metadata log could not be written: nothing changed, and the client may retry.
            E::Storage(e) => ApiError::new(ResponseError::KafkaStorageError, e.to_string()),
            // Retriable: clients try again once a controller leads.
            E::Unavailable(why) => ApiError::new(ResponseError::RequestTimedOut, why),
        }
    }
}
