//! Admin APIs: topics, configs, records, cluster description.

pub(crate) mod alter_configs;
pub(crate) mod cluster;
pub(crate) mod configs;
pub(crate) mod quorum;
pub(crate) mod records;
pub(crate) mod topics;
