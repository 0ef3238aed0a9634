//! Sluice's wire layer: everything about Kafka's bytes that does not touch storage or sockets.
//!
//! Request and response messages come from the `kafka-protocol` crate; this crate adds what the
//! broker needs around them: the record-batch v2 header view used on the hot paths, framing, the
//! advertised API version table and error codes.

pub mod api;
pub mod batch;
pub mod frame;

pub use kafka_protocol;
