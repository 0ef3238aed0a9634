//! The records of `__transaction_state`, in Kafka's formats (`TransactionLogKey` v0 and
//! `TransactionLogValue` v0; schemas in apache/kafka
//! `transaction-coordinator/src/main/resources/common/message/`).
//!
//! Key: `version: int16 = 0, transactional_id: string`. Value: `version: int16 = 0,
//! producer_id: int64, producer_epoch: int16, timeout_ms: int32, state: int8, partitions:
//! nullable [topic: string, partition_ids: [int32]], last_update_ms: int64, start_ms: int64`.
//! A null value is a tombstone (an expired transactional id).

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::{TxnMetadata, TxnState};
use crate::group::records::{put_string, Reader, RecordError};

/// The only key and value version written and read.
const VERSION: i16 = 0;

/// Encodes the key of a transactional id.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(VERSION);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

/// Decodes a key to its transactional id.
pub fn decode_key(bytes: Bytes) -> Result<String, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != VERSION {
        return Err(RecordError::Version {
            what: "TransactionLogKey",
            version,
        });
    }
    r.string()
}

/// Encodes a transaction's state. `Empty` transactions carry no partition list (null), as in
/// Kafka.
pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64 + m.partitions.len() * 24);
    buf.put_i16(VERSION);
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.id());
    if m.state == TxnState::Empty {
        buf.put_i32(-1);
    } else {
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in &m.partitions {
            match topics.last_mut() {
                Some((t, parts)) if *t == topic => parts.push(*partition),
                _ => topics.push((topic, vec![*partition])),
            }
        }
        buf.put_i32(topics.len() as i32);
        for (topic, parts) in topics {
            put_string(&mut buf, topic);
            buf.put_i32(parts.len() as i32);
            for p in parts {
                buf.put_i32(p);
            }
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    buf.freeze()
}

/// Decodes the state of `transactional_id`.
pub fn decode_value(transactional_id: &str, bytes: Bytes) -> Result<TxnMetadata, RecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != VERSION {
        return Err(RecordError::Version {
            what: "TransactionLogValue",
            version,
        });
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state_id = r.i8()?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::Version {
        what: "TransactionStatus",
        version: i16::from(state_id),
    })?;
    let mut partitions = BTreeSet::new();
    let topics = r.i32()?;
    for _ in 0..topics.max(0) {
        let topic = r.string()?;
        let count = r.i32()?;
        r.need(count.max(0) as usize * 4)?;
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        last_producer_id: -1,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        assert_eq!(decode_key(encode_key("txn-1")).unwrap(), "txn-1");
        let m = TxnMetadata {
            transactional_id: "txn-1".into(),
            producer_id: 4000,
            producer_epoch: 7,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: BTreeSet::from([
                ("a".to_string(), 0),
                ("a".to_string(), 3),
                ("__consumer_offsets".to_string(), 12),
            ]),
            start_ms: 1_000,
            last_update_ms: 2_000,
        };
        assert_eq!(decode_value("txn-1", encode_value(&m)).unwrap(), m);
        let empty = TxnMetadata {
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            ..m
        };
        assert_eq!(decode_value("txn-1", encode_value(&empty)).unwrap(), empty);
    }

    #[test]
    fn truncated_and_unknown_values_are_errors() {
        let m = TxnMetadata::new("t", 1, 1000);
        let bytes = encode_value(&m);
        for cut in 0..bytes.len() {
            assert!(
                decode_value("t", bytes.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = BytesMut::from(&bytes[..]);
        bad[16] = 42; // the state byte
        assert!(decode_value("t", bad.freeze()).is_err());
        assert!(decode_key(Bytes::from_static(&[0, 1, 0, 1, b'x'])).is_err());
    }
}
