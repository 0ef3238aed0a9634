//! The single-node metadata store: topics (name, id, partition count, config overrides) and the
//! next producer-id block, kept in one small text file rewritten atomically on every change.
//!
//! This is the stand-in for the Raft metadata log of the cluster roadmap step; it keeps the same
//! facts so that the move is a change of storage, not of model.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// File name inside the data directory.
const FILE_NAME: &str = "sluice-metadata";

/// One topic's durable description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// Topic name.
    pub name: String,
    /// Topic id (KIP-516), stable for the topic's life.
    pub id: Uuid,
    /// Number of partitions.
    pub partitions: i32,
    /// Config overrides set on the topic.
    pub configs: BTreeMap<String, String>,
}

/// The persisted metadata.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    /// Topics by name.
    pub topics: BTreeMap<String, TopicRecord>,
    /// First producer id not yet handed out in a block.
    pub next_producer_id: i64,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\t' => out.push_str("%09"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ';' => out.push_str("%3B"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).unwrap_or("");
        match u8::from_str_radix(code, 16) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            Err(_) => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl MetadataImage {
    fn encode(&self) -> String {
        let mut s = format!("version\t1\nnext_producer_id\t{}\n", self.next_producer_id);
        for t in self.topics.values() {
            let configs: Vec<String> = t
                .configs
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
                .collect();
            s.push_str(&format!(
                "topic\t{}\t{}\t{}\t{}\n",
                escape(&t.name),
                t.id,
                t.partitions,
                configs.join(";")
            ));
        }
        s
    }

    fn decode(text: &str) -> Result<MetadataImage, String> {
        let mut image = MetadataImage::default();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let bad = || format!("line {}: malformed `{line}`", n + 1);
            match fields.as_slice() {
                ["version", "1"] => {}
                ["next_producer_id", id] => {
                    image.next_producer_id = id.parse().map_err(|_| bad())?
                }
                ["topic", name, id, partitions, configs] => {
                    let mut map = BTreeMap::new();
                    for kv in configs.split(';').filter(|s| !s.is_empty()) {
                        let (k, v) = kv.split_once('=').ok_or_else(bad)?;
                        map.insert(unescape(k), unescape(v));
                    }
                    let name = unescape(name);
                    image.topics.insert(
                        name.clone(),
                        TopicRecord {
                            name,
                            id: id.parse().map_err(|_| bad())?,
                            partitions: partitions.parse().map_err(|_| bad())?,
                            configs: map,
                        },
                    );
                }
                _ => return Err(bad()),
            }
        }
        Ok(image)
    }
}

/// Reads and writes the metadata file.
#[derive(Debug)]
pub struct MetadataStore {
    /// Path of the metadata file.
    path: PathBuf,
}

impl MetadataStore {
    /// Opens the store in `dir`, returning the persisted image (empty on first start).
    pub fn open(dir: &Path) -> std::io::Result<(MetadataStore, MetadataImage)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let image = match std::fs::read_to_string(&path) {
            Ok(text) => MetadataImage::decode(&text).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataImage::default(),
            Err(e) => return Err(e),
        };
        Ok((MetadataStore { path }, image))
    }

    /// Durably replaces the stored image: temp file, fsync, rename, fsync the directory.
    pub fn save(&self, image: &MetadataImage) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(image.encode().as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (store, image) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(image, MetadataImage::default());
        let mut image = MetadataImage {
            next_producer_id: 4000,
            ..Default::default()
        };
        let mut configs = BTreeMap::new();
        configs.insert("cleanup.policy".into(), "compact,delete".into());
        configs.insert("weird".into(), "a=b;c%\t".into());
        image.topics.insert(
            "t.1_x-y".into(),
            TopicRecord {
                name: "t.1_x-y".into(),
                id: Uuid::new_v4(),
                partitions: 6,
                configs,
            },
        );
        store.save(&image).unwrap();
        let (_, reread) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(reread, image);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "topic\tonly-two\n").unwrap();
        assert!(MetadataStore::open(dir.path()).is_err());
    }
}
