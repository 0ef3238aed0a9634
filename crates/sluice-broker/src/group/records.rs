//! The records of `__consumer_offsets`, in Kafka's own formats, so that Kafka's tools can read
//! the topic and a Sluice data dir holds what a Kafka one would.
//!
//! Every key and value starts with an `int16` version. Keys: version 0 or 1 is an
//! `OffsetCommitKey` (group, topic, partition), version 2 a `GroupMetadataKey` (group). Values:
//! `OffsetCommitValue` v0–v3 and `GroupMetadataValue` v0–v3 (the non-flexible versions; Sluice
//! writes v3 of both, as Kafka 3.x does). A null value is a tombstone. Schemas: apache/kafka
//! `group-coordinator/src/main/resources/common/message/*.json`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Key version Kafka writes for offset commits.
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version written for offset commits (with leader epoch).
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version written for group metadata (with static members).
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// A record that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the schema does.
    #[error("record truncated")]
    Truncated,
    /// A string is not UTF-8 or has a negative length where none is allowed.
    #[error("malformed string")]
    BadString,
    /// A schema version this broker does not read (KIP-848 records, flexible versions).
    #[error("unsupported {what} version {version}")]
    Version {
        /// Which schema.
        what: &'static str,
        /// The version found.
        version: i16,
    },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset of one partition.
    Offset {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A group's membership and assignment.
    Group {
        /// Group id.
        group: String,
    },
}

/// A committed offset (`OffsetCommitValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// Next offset the group will read.
    pub offset: i64,
    /// Leader epoch of the record before `offset`, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was made (ms since the epoch).
    pub commit_timestamp_ms: i64,
}

/// One member in a `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata (`GroupMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// Java's `String.hashCode`: over UTF-16 code units, `h = 31 * h + c`, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group, as Kafka chooses it:
/// `Utils.abs(groupId.hashCode()) % partitions` (where `Utils.abs(MIN_VALUE)` is 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "the offsets topic has partitions");
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

pub(crate) fn put_string(buf: &mut BytesMut, s: &str) {
    // Names are bounded well below i16::MAX by the protocol that carried them in.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    buf.put_i16(len);
    buf.put_slice(&s.as_bytes()[..len as usize]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// Reading side: a cursor over a record's bytes.
pub(crate) struct Reader(pub(crate) Bytes);

impl Reader {
    pub(crate) fn need(&self, n: usize) -> Result<(), RecordError> {
        if self.0.remaining() < n {
            return Err(RecordError::Truncated);
        }
        Ok(())
    }
    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        self.need(1)?;
        Ok(self.0.get_i8())
    }
    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize)?;
        let bytes = self.0.split_to(len as usize);
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::BadString)
    }
    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError::BadString)
    }
    pub(crate) fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize)?;
        Ok(self.0.split_to(len as usize))
    }
}

impl RecordKey {
    /// Encodes the key.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut buf, group);
                put_string(&mut buf, topic);
                buf.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                buf.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, group);
            }
        }
        buf.freeze()
    }

    /// Decodes a key.
    pub fn decode(bytes: Bytes) -> Result<RecordKey, RecordError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            2 => Ok(RecordKey::Group { group: r.string()? }),
            version => Err(RecordError::Version {
                what: "record key",
                version,
            }),
        }
    }
}

impl OffsetValue {
    /// Encodes the value (v3).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.metadata.len());
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata);
        buf.put_i64(self.commit_timestamp_ms);
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(bytes: Bytes) -> Result<OffsetValue, RecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::Version {
                what: "OffsetCommitValue",
                version,
            });
        }
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.string()?;
        let commit_timestamp_ms = r.i64()?;
        if version == 1 {
            let _expire_timestamp_ms = r.i64()?;
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl GroupValue {
    /// Encodes the value (v3).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp_ms);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut buf, &m.member_id);
            put_nullable_string(&mut buf, m.group_instance_id.as_deref());
            put_string(&mut buf, &m.client_id);
            put_string(&mut buf, &m.client_host);
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription);
            put_bytes(&mut buf, &m.assignment);
        }
        buf.freeze()
    }

    /// Decodes a value of version 0 to 3.
    pub fn decode(bytes: Bytes) -> Result<GroupValue, RecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::Version {
                what: "GroupMetadataValue",
                version,
            });
        }
        let protocol_type = r.string()?;
        let generation = r.i32()?;
        let protocol = r.nullable_string()?;
        let leader = r.nullable_string()?;
        let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
        let count = r.i32()?.max(0) as usize;
        // Each member takes at least 20 bytes, which bounds the allocation by the record size.
        let mut members = Vec::with_capacity(count.min(r.0.remaining() / 20));
        for _ in 0..count {
            let member_id = r.string()?;
            let group_instance_id = if version >= 3 {
                r.nullable_string()?
            } else {
                None
            };
            let client_id = r.string()?;
            let client_host = r.string()?;
            let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
            let session_timeout_ms = r.i32()?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            };
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values checked against Java's `"…".hashCode()`.
    #[test]
    fn java_hash_matches_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Overflowing strings wrap as in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        for g in ["a", "my-group", "ç∂é", "groupe-été"] {
            assert!((0..50).contains(&partition_for(g, 50)));
        }
    }

    #[test]
    fn keys_round_trip() {
        for key in [
            RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
            },
            RecordKey::Group { group: "g2".into() },
        ] {
            assert_eq!(RecordKey::decode(key.encode()).unwrap(), key);
        }
        assert!(RecordKey::decode(Bytes::from_static(&[0, 9, 0, 1])).is_err());
        assert!(RecordKey::decode(Bytes::from_static(&[0, 1, 0, 5, b'a'])).is_err());
    }

    #[test]
    fn values_round_trip() {
        let o = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        assert_eq!(OffsetValue::decode(o.encode()).unwrap(), o);
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        };
        assert_eq!(GroupValue::decode(g.encode()).unwrap(), g);
        // Truncated input is an error, never a panic.
        let bytes = g.encode();
        for cut in 0..bytes.len() {
            assert!(GroupValue::decode(bytes.slice(..cut)).is_err());
        }
    }

    /// A v1 OffsetCommitValue (with expire timestamp), as Kafka 2.0 wrote it.
    #[test]
    fn reads_offset_value_v1() {
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i64(10);
        put_string(&mut buf, "");
        buf.put_i64(5);
        buf.put_i64(99);
        let v = OffsetValue::decode(buf.freeze()).unwrap();
        assert_eq!(
            (v.offset, v.leader_epoch, v.commit_timestamp_ms),
            (10, -1, 5)
        );
    }
}
