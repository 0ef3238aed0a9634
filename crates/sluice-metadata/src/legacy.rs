//! Reads the metadata file of releases before the metadata log (`sluice-metadata`: one text
//! line per topic plus the next producer id) and turns it into the records of a one-node
//! cluster, so that a data directory written by an earlier release opens and is upgraded in
//! place.

use std::collections::BTreeMap;
use std::path::Path;

use uuid::Uuid;

use crate::records::{
    ConfigRecord, MetadataRecord, PartitionRecord, ProducerIdsRecord, TopicRecord, RESOURCE_TOPIC,
};

/// The old file's name inside the data directory.
pub const LEGACY_FILE: &str = "sluice-metadata";

/// One topic of the old file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LegacyTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some(i) = rest.iter().position(|b| *b == b'%') {
        out.extend_from_slice(&rest[..i]);
        let code = std::str::from_utf8(rest.get(i + 1..i + 3).unwrap_or(b"")).unwrap_or("");
        match u8::from_str_radix(code, 16) {
            Ok(b) => {
                out.push(b);
                rest = &rest[i + 3..];
            }
            Err(_) => {
                out.push(b'%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
    String::from_utf8_lossy(&out).into_owned()
}

fn decode(text: &str) -> Result<(Vec<LegacyTopic>, i64), String> {
    let mut topics = Vec::new();
    let mut next_producer_id = 0;
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = || format!("line {}: malformed `{line}`", n + 1);
        match fields.as_slice() {
            ["version", "1"] => {}
            ["next_producer_id", id] => next_producer_id = id.parse().map_err(|_| bad())?,
            ["topic", name, id, partitions, configs] => {
                let mut map = BTreeMap::new();
                for kv in configs.split(';').filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once('=').ok_or_else(bad)?;
                    map.insert(unescape(k), unescape(v));
                }
                topics.push(LegacyTopic {
                    name: unescape(name),
                    id: id.parse().map_err(|_| bad())?,
                    partitions: partitions.parse().map_err(|_| bad())?,
                    configs: map,
                });
            }
            _ => return Err(bad()),
        }
    }
    Ok((topics, next_producer_id))
}

/// The records that rebuild the old file's metadata on node `node_id`, the only replica and
/// leader of every partition; `Ok(None)` when `dir` has no old file.
pub fn read(dir: &Path, node_id: i32) -> Result<Option<Vec<MetadataRecord>>, String> {
    let path = dir.join(LEGACY_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let (topics, next_producer_id) =
        decode(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut records = Vec::new();
    for t in topics {
        records.push(MetadataRecord::Topic(TopicRecord {
            name: t.name.clone(),
            topic_id: t.id,
        }));
        for p in 0..t.partitions {
            records.push(MetadataRecord::Partition(PartitionRecord {
                partition_id: p,
                topic_id: t.id,
                replicas: vec![node_id],
                isr: vec![node_id],
                removing_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                leader: node_id,
                leader_epoch: 0,
                partition_epoch: 0,
                eligible_leader_replicas: Vec::new(),
                last_known_elr: Vec::new(),
            }));
        }
        for (k, v) in t.configs {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: RESOURCE_TOPIC,
                resource_name: t.name.clone(),
                name: k,
                value: Some(v),
            }));
        }
    }
    if next_producer_id > 0 {
        records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: node_id,
            broker_epoch: -1,
            next_producer_id,
        }));
    }
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::MetadataImage;

    #[test]
    fn old_metadata_file_becomes_records_of_a_one_node_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        std::fs::write(
            dir.path().join(LEGACY_FILE),
            format!(
                "version\t1\nnext_producer_id\t4000\ntopic\tt.1_x-y\t{id}\t6\tcleanup.policy=compact%2Cdelete;weird=a%3Db%3Bc%25%09\n"
            ),
        )
        .unwrap();
        let records = read(dir.path(), 3).unwrap().unwrap();
        let mut image = MetadataImage::empty();
        for (i, r) in records.iter().enumerate() {
            image.replay(r, i as i64).unwrap();
        }
        let topic = image.topic("t.1_x-y").unwrap();
        assert_eq!(topic.id, id);
        assert_eq!(topic.partitions.len(), 6);
        assert!(topic
            .partitions
            .iter()
            .all(|p| p.leader == 3 && p.replicas == [3] && p.isr == [3]));
        let configs = image.configs(RESOURCE_TOPIC, "t.1_x-y");
        assert_eq!(configs["cleanup.policy"], "compact,delete");
        assert_eq!(configs["weird"], "a=b;c%\t");
        assert_eq!(image.next_producer_id, 4000);
    }

    #[test]
    fn a_damaged_old_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), 1).unwrap(), None);
        std::fs::write(dir.path().join(LEGACY_FILE), "topic\tonly-two\n").unwrap();
        assert!(read(dir.path(), 1).is_err());
    }
}
