//! Admin APIs: topics, configs, cluster description.

pub(crate) mod alter_configs;
pub(crate) mod cluster;
pub(crate) mod configs;
pub(crate) mod topics;
