//! The table of APIs and versions this broker advertises in ApiVersions and serves.
//!
//! Clients feature-detect from this table (librdkafka, franz-go, the Java client) or infer a whole
//! Kafka release from it (kafka-python, aiokafka), so it lists only APIs that work end to end and
//! keeps each range within what Apache Kafka 4.1 advertises. `../shared/COMPAT.md` explains the
//! individual entries.

use kafka_protocol::messages::ApiKey;

/// One advertised API: its key and the inclusive version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API key.
    pub key: ApiKey,
    /// Lowest version advertised.
    pub min: i16,
    /// Highest version advertised.
    pub max: i16,
    /// Lowest version actually served; below it the request is refused. Differs from `min` only
    /// for Produce, which advertises 0 so that librdkafka keeps compressing (COMPAT L1) while
    /// v0–v2 (message formats v0/v1) are refused as in Kafka 4.
    pub min_served: i16,
}

const fn range(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange {
        key,
        min,
        max,
        min_served: min,
    }
}

/// Every API the broker serves, in API-key order.
pub const SUPPORTED: &[ApiRange] = &[
    ApiRange {
        key: ApiKey::Produce,
        min: 0,
        // v13 addresses topics by id only (KIP-516); cap at 12 until that is implemented.
        max: 12,
        min_served: 3,
    },
    // v13+ use topic ids; v12 stays for clients without ids (COMPAT J3, L2, F3).
    range(ApiKey::Fetch, 4, 17),
    range(ApiKey::ListOffsets, 1, 10),
    range(ApiKey::Metadata, 0, 13),
    // The classic group protocol; KIP-848's APIs are at the end of the table.
    range(ApiKey::OffsetCommit, 2, 9),
    range(ApiKey::OffsetFetch, 1, 9),
    range(ApiKey::FindCoordinator, 0, 6),
    range(ApiKey::JoinGroup, 0, 9),
    range(ApiKey::Heartbeat, 0, 4),
    range(ApiKey::LeaveGroup, 0, 5),
    range(ApiKey::SyncGroup, 0, 5),
    range(ApiKey::DescribeGroups, 0, 6),
    range(ApiKey::ListGroups, 0, 5),
    range(ApiKey::ApiVersions, 0, 4),
    range(ApiKey::CreateTopics, 2, 7),
    range(ApiKey::DeleteTopics, 1, 6),
    range(ApiKey::DeleteRecords, 0, 2),
    range(ApiKey::InitProducerId, 0, 5),
    range(ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Transactions with the classic protocol (transaction.version 1): v4+ of AddPartitionsToTxn
    // is broker-to-broker, v5 of EndTxn/TxnOffsetCommit needs transaction.version 2 (KIP-890).
    range(ApiKey::AddPartitionsToTxn, 0, 3),
    range(ApiKey::AddOffsetsToTxn, 0, 4),
    range(ApiKey::EndTxn, 0, 4),
    range(ApiKey::TxnOffsetCommit, 0, 4),
    range(ApiKey::DescribeConfigs, 1, 4),
    range(ApiKey::AlterConfigs, 0, 2),
    range(ApiKey::IncrementalAlterConfigs, 0, 1),
    range(ApiKey::CreatePartitions, 0, 3),
    range(ApiKey::DeleteGroups, 0, 2),
    range(ApiKey::OffsetDelete, 0, 0),
    range(ApiKey::DescribeCluster, 0, 2),
    range(ApiKey::DescribeQuorum, 0, 2),
    range(ApiKey::DescribeProducers, 0, 0),
    range(ApiKey::DescribeTransactions, 0, 0),
    range(ApiKey::ListTransactions, 0, 2),
    // The consumer group protocol (KIP-848), next to the classic one.
    range(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    range(ApiKey::ConsumerGroupDescribe, 0, 1),
    range(ApiKey::DescribeTopicPartitions, 0, 0),
];

/// The advertised range of `key`, if the broker serves it at all.
pub fn supported_range(key: ApiKey) -> Option<&'static ApiRange> {
    SUPPORTED.iter().find(|r| r.key == key)
}

/// Whether `version` of `key` is served (not merely advertised).
pub fn is_served(key: ApiKey, version: i16) -> bool {
    supported_range(key).is_some_and(|r| version >= r.min_served && version <= r.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Message;

    /// Every served version must be decodable by the protocol crate, or a client sending it would
    /// be disconnected instead of served.
    #[test]
    fn served_versions_are_within_the_crate_schemas() {
        for r in SUPPORTED {
            let schema = r.key.valid_versions();
            assert!(
                r.min_served >= schema.min,
                "{:?} min {}",
                r.key,
                r.min_served
            );
            assert!(r.max <= schema.max, "{:?} max {}", r.key, r.max);
            assert!(r.min <= r.min_served && r.min_served <= r.max);
        }
        let _ = kafka_protocol::messages::ProduceRequest::VERSIONS;
    }

    #[test]
    fn produce_advertises_zero_but_serves_from_three() {
        let p = supported_range(ApiKey::Produce).unwrap();
        assert_eq!(p.min, 0);
        assert!(!is_served(ApiKey::Produce, 2));
        assert!(is_served(ApiKey::Produce, 3));
        assert!(!is_served(ApiKey::Produce, 13));
    }

    #[test]
    fn keys_are_unique() {
        for (i, a) in SUPPORTED.iter().enumerate() {
            assert!(SUPPORTED[i + 1..].iter().all(|b| b.key != a.key));
        }
    }
}
