//! Feature flags (KIP-584): the levels this build supports, advertised in ApiVersions, and the
//! levels a new cluster finalizes, written as `FeatureLevelRecord`s when it is bootstrapped.
//! Levels follow Kafka 4.1's (`MetadataVersion`, `Feature`); a feature Sluice does not serve yet
//! is supported only at level 0, so clients keep to the protocol that works.

use crate::records::{FeatureLevelRecord, MetadataRecord};

/// `metadata.version`: Kafka's name.
pub const METADATA_VERSION: &str = "metadata.version";

/// A feature and the levels this build supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedFeature {
    /// Feature name.
    pub name: &'static str,
    /// Lowest supported level.
    pub min: i16,
    /// Highest supported level.
    pub max: i16,
    /// Level a new cluster finalizes (0: not enabled).
    pub bootstrap: i16,
}

/// Every feature this build knows.
pub const SUPPORTED: &[SupportedFeature] = &[
    // 3.3-IV3 (7), the oldest Kafka 4 reads, to 4.1-IV1 (27), Kafka 4.1's default.
    SupportedFeature {
        name: METADATA_VERSION,
        min: 7,
        max: 27,
        bootstrap: 27,
    },
    // Static voters (controller.quorum.voters); dynamic quorums (KIP-853) are level 1.
    SupportedFeature {
        name: "kraft.version",
        min: 0,
        max: 0,
        bootstrap: 0,
    },
    // Level 2 is KIP-890 part 2 (EndTxn v5, implicit AddPartitionsToTxn), not served yet.
    SupportedFeature {
        name: "transaction.version",
        min: 0,
        max: 0,
        bootstrap: 0,
    },
    // Level 1 enables the consumer group protocol (KIP-848), which Sluice serves.
    SupportedFeature {
        name: "group.version",
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    // Eligible leader replicas (KIP-966) come with replication.
    SupportedFeature {
        name: "eligible.leader.replicas.version",
        min: 0,
        max: 0,
        bootstrap: 0,
    },
    // Share groups (KIP-932) are on the roadmap, not served.
    SupportedFeature {
        name: "share.version",
        min: 0,
        max: 0,
        bootstrap: 0,
    },
];

/// Whether `image` has no finalized levels yet: a new cluster, or one bootstrapped before
/// feature levels were written.
pub fn needs_bootstrap(image: &crate::MetadataImage) -> bool {
    !image.features.contains_key(METADATA_VERSION)
}

/// The records that finalize the bootstrap levels of a new cluster (features at level 0 are
/// not written, as Kafka does).
pub fn bootstrap_records() -> Vec<MetadataRecord> {
    SUPPORTED
        .iter()
        .filter(|f| f.bootstrap > 0)
        .map(|f| {
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: f.name.to_string(),
                feature_level: f.bootstrap,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataImage;

    #[test]
    fn bootstrap_levels_are_within_the_supported_ranges() {
        let mut image = MetadataImage::empty();
        for (i, r) in bootstrap_records().iter().enumerate() {
            image.replay(r, i as i64).unwrap();
        }
        assert_eq!(image.features[METADATA_VERSION], 27);
        assert_eq!(image.features["group.version"], 1);
        for f in SUPPORTED {
            assert!(f.min <= f.bootstrap && f.bootstrap <= f.max, "{f:?}");
            assert_eq!(
                image.features.get(f.name).copied().unwrap_or(0),
                f.bootstrap
            );
        }
    }
}
