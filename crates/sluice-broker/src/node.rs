//! A node's storage before it serves: `meta.properties` (written by `sluice storage format`,
//! or by the node itself on the first start of a one-node cluster) checked against the
//! configuration, the metadata log opened into a quorum, and a data directory of an earlier
//! release (its `sluice-metadata` file) upgraded in place.

use std::path::Path;
use std::sync::Arc;

use sluice_metadata::legacy;
use sluice_metadata::meta_properties::{self, MetaProperties};
use sluice_metadata::{MetadataLog, MetadataQuorum, SingleVoterQuorum};

use crate::config::BrokerConfig;

/// Why a node's storage cannot be opened or formatted; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `meta.properties` belongs to another cluster or node.
    #[error("{0}")]
    Mismatch(String),
    /// `meta.properties` is damaged.
    #[error(transparent)]
    MetaProperties(#[from] meta_properties::MetaPropertiesError),
    /// The metadata log cannot be opened or written.
    #[error(transparent)]
    MetadataLog(#[from] sluice_metadata::log::MetadataLogError),
    /// Bootstrapping or upgrading the metadata failed.
    #[error(transparent)]
    Quorum(#[from] sluice_metadata::quorum::QuorumError),
    /// The directory is formatted already (`sluice storage format` without `--ignore-formatted`).
    #[error("{0}")]
    AlreadyFormatted(String),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// A file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The opened storage: the cluster id and the metadata quorum.
#[derive(Debug)]
pub struct NodeStorage {
    /// The cluster this node belongs to.
    pub cluster_id: String,
    /// The metadata quorum.
    pub quorum: Arc<dyn MetadataQuorum>,
}

/// A new cluster id in Kafka's form (`sluice storage random-uuid`).
pub fn random_cluster_id() -> String {
    meta_properties::random_id()
}

/// Writes `meta.properties` for `cluster_id` into the configured log dir, as
/// `kafka-storage.sh format` does. Refuses a directory formatted already unless
/// `ignore_formatted`, and an id that is not Kafka's 22-character base64 form.
pub fn format(
    config: &BrokerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
) -> Result<(), StorageError> {
    if !meta_properties::is_valid_cluster_id(cluster_id) {
        return Err(StorageError::Invalid(format!(
            "Cluster ID string {cluster_id} does not appear to be a valid UUID: it must be 22 \
             characters of URL-safe base64, as `sluice storage random-uuid` prints"
        )));
    }
    let dir = &config.log_dir;
    if let Some(existing) = MetaProperties::read(dir)? {
        if ignore_formatted {
            return Ok(());
        }
        return Err(StorageError::AlreadyFormatted(format!(
            "Log directory {} is already formatted (cluster.id {}, node.id {}). Use \
             --ignore-formatted to ignore this directory and format the others.",
            dir.display(),
            existing.cluster_id,
            existing.node_id
        )));
    }
    MetaProperties {
        cluster_id: cluster_id.to_string(),
        node_id: config.node_id,
        directory_id: meta_properties::random_id(),
    }
    .write(dir)?;
    Ok(())
}

/// Opens the node's storage. A directory without `meta.properties` is formatted here as a
/// one-node cluster (the zero-configuration default): with the configured `cluster.id` if one
/// is set, the id earlier releases used if the directory holds their data, else a new id.
pub fn open(config: &BrokerConfig) -> Result<NodeStorage, StorageError> {
    check_roles(config)?;
    let dir = &config.log_dir;
    std::fs::create_dir_all(dir)?;
    let meta = match MetaProperties::read(dir)? {
        Some(meta) => meta,
        None => self_format(config)?,
    };
    check(config, &meta, dir)?;
    let (log, image) = MetadataLog::open(dir, config.metadata_snapshot_bytes)?;
    let empty = image.offset < 0;
    let quorum: Arc<dyn MetadataQuorum> =
        Arc::new(SingleVoterQuorum::new(config.node_id, log, image));
    if empty {
        upgrade_legacy(config, quorum.as_ref())?;
    }
    // A new cluster, or one bootstrapped before feature levels were written, finalizes the
    // bootstrap levels once.
    if sluice_metadata::features::needs_bootstrap(&quorum.image()) {
        quorum.bootstrap(sluice_metadata::features::bootstrap_records())?;
    }
    Ok(NodeStorage {
        cluster_id: meta.cluster_id,
        quorum,
    })
}

/// Whether the node is one voter of several: its quorum is a Raft group over the controller
/// listeners of `controller.quorum.voters`.
pub fn is_multi_voter(config: &BrokerConfig) -> bool {
    config.node.voters.keys().any(|id| *id != config.node_id)
}

/// Nodes run both roles for now: brokers apart from controllers (observers of the quorum) are
/// not served yet, and are refused clearly rather than run half a cluster.
fn check_roles(config: &BrokerConfig) -> Result<(), StorageError> {
    let node = &config.node;
    if !node.controller || !node.broker {
        return Err(StorageError::Invalid(
            "process.roles must be broker,controller: nodes with one role are not served yet"
                .into(),
        ));
    }
    Ok(())
}

/// Opens the storage of one voter of a multi-voter quorum: the directory must have been
/// formatted (`sluice storage format`, as every node of a Kafka cluster is), the Raft quorum
/// starts on the controller listener `socket`, and the first node to find the cluster without
/// feature levels finalizes them.
pub async fn open_cluster(
    config: &BrokerConfig,
    socket: tokio::net::TcpListener,
) -> Result<NodeStorage, StorageError> {
    check_roles(config)?;
    let dir = &config.log_dir;
    let meta = MetaProperties::read(dir)?.ok_or_else(|| {
        StorageError::Invalid(format!(
            "No meta.properties found in {}: format every node of a cluster first with \
             `sluice storage format --cluster-id ID --config FILE` (one cluster id for all)",
            dir.display()
        ))
    })?;
    check(config, &meta, dir)?;
    let voters = config
        .node
        .voters
        .values()
        .map(|v| (v.id, format!("{}:{}", v.host, v.port)))
        .collect();
    let quorum = sluice_metadata::raft::RaftQuorum::start(
        config.node_id,
        &dir.join(sluice_metadata::log::METADATA_DIR),
        voters,
        socket,
        config.metadata_snapshot_bytes,
    )
    .await
    .map_err(|e| StorageError::Invalid(e.to_string()))?;
    // The lowest voter finalizes the feature levels of a new cluster (once: the others would
    // only write the same levels again).
    let first_voter = config.node.voters.keys().next() == Some(&config.node_id);
    if first_voter && sluice_metadata::features::needs_bootstrap(&quorum.image()) {
        // Until a majority of the voters is up there is no leader: wait for it, saying so.
        loop {
            match quorum
                .bootstrap_async(sluice_metadata::features::bootstrap_records())
                .await
            {
                Ok(_) => break,
                Err(sluice_metadata::raft::RaftQuorumError::Unavailable(why)) => {
                    tracing::warn!(%why, "waiting for the metadata quorum (a majority of controller.quorum.voters must be up)");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(e) => return Err(StorageError::Invalid(e.to_string())),
            }
        }
    }
    Ok(NodeStorage {
        cluster_id: meta.cluster_id,
        quorum: Arc::new(quorum),
    })
}

fn self_format(config: &BrokerConfig) -> Result<MetaProperties, StorageError> {
    let cluster_id = if config.explicit.contains_key("cluster.id")
        || config.log_dir.join(legacy::LEGACY_FILE).exists()
    {
        config.cluster_id.clone()
    } else {
        meta_properties::random_id()
    };
    let meta = MetaProperties {
        cluster_id,
        node_id: config.node_id,
        directory_id: meta_properties::random_id(),
    };
    meta.write(&config.log_dir)?;
    tracing::info!(cluster_id = %meta.cluster_id, dir = %config.log_dir.display(), "formatted the data directory as a one-node cluster");
    Ok(meta)
}

/// Refuses a directory of another node or another cluster, with Kafka's messages.
fn check(config: &BrokerConfig, meta: &MetaProperties, dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(meta_properties::META_PROPERTIES);
    if meta.node_id != config.node_id {
        return Err(StorageError::Mismatch(format!(
            "Stored node id {} doesn't match previous node id {} in {}. If you moved your data, \
             make sure your configured node id matches. If you intend to create a new node, \
             you should remove all data in your data directories.",
            meta.node_id,
            config.node_id,
            path.display()
        )));
    }
    if config.explicit.contains_key("cluster.id") && config.cluster_id != meta.cluster_id {
        return Err(StorageError::Mismatch(format!(
            "Invalid cluster.id in: {}. Expected {}, but read {}.",
            path.display(),
            config.cluster_id,
            meta.cluster_id
        )));
    }
    Ok(())
}

/// Turns the metadata file of an earlier release into the first batch of the metadata log,
/// then renames the old file so it is not read again (it is kept, not deleted).
fn upgrade_legacy(config: &BrokerConfig, quorum: &dyn MetadataQuorum) -> Result<(), StorageError> {
    let Some(records) =
        legacy::read(&config.log_dir, config.node_id).map_err(StorageError::Invalid)?
    else {
        return Ok(());
    };
    let topics = records
        .iter()
        .filter(|r| matches!(r, sluice_metadata::MetadataRecord::Topic(_)))
        .count();
    quorum.bootstrap(records)?;
    let old = config.log_dir.join(legacy::LEGACY_FILE);
    std::fs::rename(&old, old.with_extension("upgraded"))?;
    tracing::info!(
        topics,
        "upgraded the metadata of an earlier release into the metadata log"
    );
    Ok(())
}
