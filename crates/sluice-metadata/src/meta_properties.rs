//! `meta.properties`, the file that ties a log directory to one cluster and one node, written by
//! `sluice storage format` (Kafka's `kafka-storage.sh format`) and checked at every start, and
//! Kafka's cluster-id form: a random UUID in 22 characters of URL-safe base64.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use uuid::Uuid;

/// File name inside each log directory.
pub const META_PROPERTIES: &str = "meta.properties";

/// The contents of `meta.properties` (version 1, the KRaft form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// The cluster this directory belongs to.
    pub cluster_id: String,
    /// The node that owns it.
    pub node_id: i32,
    /// This directory's id (KIP-858).
    pub directory_id: String,
}

/// Why `meta.properties` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is malformed.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// URL-safe base64 without padding; decoding ignores trailing bits, as Java's decoder does
/// (Kafka's quick-start cluster id has them set).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A new id in Kafka's `Uuid.toString()` form: 22 characters of URL-safe base64 without padding.
/// Like Kafka, never one that starts with `-` (it would read as a command-line flag).
pub fn random_id() -> String {
    loop {
        let id = BASE64.encode(Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Whether `id` is a valid Kafka cluster id: 22 characters that decode to 16 bytes.
pub fn is_valid_cluster_id(id: &str) -> bool {
    id.len() == 22 && BASE64.decode(id).is_ok_and(|bytes| bytes.len() == 16)
}

impl MetaProperties {
    /// Reads `<dir>/meta.properties`; `Ok(None)` when the directory has none (not formatted).
    pub fn read(dir: &Path) -> Result<Option<MetaProperties>, MetaPropertiesError> {
        let path = dir.join(META_PROPERTIES);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let invalid = |why: &str| MetaPropertiesError::Invalid {
            path: path.display().to_string(),
            why: why.to_string(),
        };
        let mut cluster_id = None;
        let mut node_id = None;
        let mut directory_id = String::new();
        let mut version = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(invalid(&format!("malformed line `{line}`")));
            };
            match k.trim() {
                "cluster.id" => cluster_id = Some(v.trim().to_string()),
                "node.id" => {
                    node_id = Some(
                        v.trim()
                            .parse()
                            .map_err(|_| invalid("node.id is not a number"))?,
                    )
                }
                "directory.id" => directory_id = v.trim().to_string(),
                "version" => version = Some(v.trim().to_string()),
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(invalid("only version=1 (KRaft) is supported"));
        }
        Ok(Some(MetaProperties {
            cluster_id: cluster_id.ok_or_else(|| invalid("no cluster.id"))?,
            node_id: node_id.ok_or_else(|| invalid("no node.id"))?,
            directory_id,
        }))
    }

    /// Writes `<dir>/meta.properties` durably (temp file, fsync, rename, fsync the directory).
    pub fn write(&self, dir: &Path) -> Result<(), MetaPropertiesError> {
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{META_PROPERTIES}.tmp"));
        {
            let mut f = fs::File::create(&tmp)?;
            write!(
                f,
                "#\n#Written by sluice storage format\nnode.id={}\ndirectory.id={}\nversion=1\ncluster.id={}\n",
                self.node_id, self.directory_id, self.cluster_id
            )?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(META_PROPERTIES))?;
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_kafkas_form() {
        for _ in 0..200 {
            let id = random_id();
            assert!(is_valid_cluster_id(&id), "{id}");
            assert!(!id.starts_with('-'));
        }
        assert!(!is_valid_cluster_id("sluice*cluster*0000000"));
        // The default id of releases before `meta.properties` has the form too.
        assert!(is_valid_cluster_id("sluice-cluster-0000000"));
        assert!(!is_valid_cluster_id("short"));
        // Kafka's own example form.
        assert!(is_valid_cluster_id("MkU3OEVBNTcwNTJENDM2Qk"));
    }

    #[test]
    fn meta_properties_round_trip_and_bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(MetaProperties::read(dir.path()).unwrap().is_none());
        let meta = MetaProperties {
            cluster_id: random_id(),
            node_id: 7,
            directory_id: random_id(),
        };
        meta.write(dir.path()).unwrap();
        assert_eq!(MetaProperties::read(dir.path()).unwrap(), Some(meta));
        fs::write(
            dir.path().join(META_PROPERTIES),
            "version=0\ncluster.id=x\n",
        )
        .unwrap();
        assert!(MetaProperties::read(dir.path()).is_err());
        fs::write(dir.path().join(META_PROPERTIES), "garbage\n").unwrap();
        assert!(MetaProperties::read(dir.path()).is_err());
    }
}
