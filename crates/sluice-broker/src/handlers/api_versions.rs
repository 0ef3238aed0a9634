//! ApiVersions: the advertised API table.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use sluice_metadata::{features, MetadataImage};

use super::sb;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use sluice_proto::api::SUPPORTED;

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.key as i16)
                .with_min_version(r.min)
                .with_max_version(r.max)
        })
        .collect()
}

/// Answers a served ApiVersions request: the API table, and (v3+) the features this build
/// supports and the levels the cluster finalized, which `kafka-features describe` prints.
pub(crate) fn handle(image: &MetadataImage, _request: &ApiVersionsRequest) -> ApiVersionsResponse {
    let supported = features::SUPPORTED
        .iter()
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(sb(f.name))
                .with_min_version(f.min)
                .with_max_version(f.max)
        })
        .collect();
    let finalized = image
        .features
        .iter()
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(sb(name.clone()))
                .with_min_version_level(*level)
                .with_max_version_level(*level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(table())
        .with_supported_features(supported)
        .with_finalized_features_epoch(image.offset)
        .with_finalized_features(finalized)
}

/// The answer to an ApiVersions request of a version above ours: error 35 and our table, to be
/// encoded as v0 so that any client can read it and retry with a version we serve (KIP-511).
pub(crate) fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table())
}
