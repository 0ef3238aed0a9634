//! The Sluice broker: network server, request handlers, topics and partitions, and (later) the
//! replica manager and coordinators. `sluice server` runs [`server::run`].

pub mod broker;
pub mod cleaner;
pub mod config;
pub mod connection;
pub mod error;
pub mod group;
mod handlers;
pub mod internal;
pub mod listeners;
mod liveness;
pub mod node;
pub mod partition;
pub mod retention;
pub mod server;
pub mod shutdown;
pub mod topic_config;
pub mod txn;
pub mod zero_copy;

pub use broker::Broker;
pub use config::BrokerConfig;
