//! AlterConfigs and IncrementalAlterConfigs (KIP-339) for topics.
//!
//! Broker configs are static in Sluice for now: altering them is refused with a message saying
//! so, rather than pretending to apply it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::super::sb;
use crate::broker::Broker;
use crate::error::ApiError;
use crate::topic_config::config_type;

/// Kafka's resource type ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;
/// Config type id of list configs.
const TYPE_LIST: i8 = 7;

fn unsupported_resource(resource_type: i8) -> ApiError {
    match resource_type {
        RESOURCE_BROKER => ApiError::new(
            ResponseError::InvalidRequest,
            "broker configs are static in Sluice: set them in server.properties or with --override",
        ),
        other => ApiError::new(
            ResponseError::InvalidRequest,
            format!("resource type {other} has no alterable configs"),
        ),
    }
}

/// The topic's current overrides.
fn current_overrides(broker: &Broker, name: &str) -> Result<BTreeMap<String, String>, ApiError> {
    broker
        .topic(name)
        .map(|t| t.config.overrides.clone())
        .ok_or_else(ApiError::unknown_topic)
}

fn unknown_config(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::InvalidConfig,
        format!("Unknown topic config name: {name}"),
    )
}

/// Applies one incremental operation to `overrides`; `effective` is the value the topic has now
/// (APPEND and SUBTRACT work on it, as Kafka's do).
fn apply_op(
    overrides: &mut BTreeMap<String, String>,
    effective: Option<&str>,
    name: &str,
    op: i8,
    value: Option<&StrBytes>,
) -> Result<(), ApiError> {
    let Some(ty) = config_type(name) else {
        return Err(unknown_config(name));
    };
    let value = value.map(|v| v.as_str().to_string());
    match op {
        OP_SET => {
            let v = value.ok_or_else(|| {
                ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("SET {name} without a value"),
                )
            })?;
            overrides.insert(name.to_string(), v);
        }
        OP_DELETE => {
            overrides.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            if ty != TYPE_LIST {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!("{name} is not a list config: APPEND and SUBTRACT do not apply"),
                ));
            }
            let mut items: Vec<String> = effective
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            let given: Vec<String> = value
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if op == OP_APPEND {
                for g in given {
                    if !items.contains(&g) {
                        items.push(g);
                    }
                }
            } else {
                items.retain(|i| !given.contains(i));
            }
            overrides.insert(name.to_string(), items.join(","));
        }
        other => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ))
        }
    }
    Ok(())
}

fn incremental_one(
    broker: &Broker,
    r: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    if r.resource_type != RESOURCE_TOPIC {
        return Err(unsupported_resource(r.resource_type));
    }
    let name = r.resource_name.as_str();
    let mut overrides = current_overrides(broker, name)?;
    let effective = broker
        .topic(name)
        .map(|t| t.config.effective.clone())
        .unwrap_or_default();
    for c in &r.configs {
        let key = c.name.as_str();
        let now = overrides.get(key).or_else(|| effective.get(key)).cloned();
        apply_op(
            &mut overrides,
            now.as_deref(),
            key,
            c.config_operation,
            c.value.as_ref(),
        )?;
    }
    broker.alter_topic_configs(name, overrides, validate_only)
}

/// Answers IncrementalAlterConfigs.
pub(crate) fn incremental(
    broker: &Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|r| {
            let result = incremental_one(broker, r, request.validate_only);
            let response =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
            match result {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter_one(
    broker: &Broker,
    r: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), ApiError> {
    if r.resource_type != RESOURCE_TOPIC {
        return Err(unsupported_resource(r.resource_type));
    }
    // The legacy API replaces the whole set of overrides with the one given.
    let mut overrides = BTreeMap::new();
    for c in &r.configs {
        let key = c.name.as_str();
        if config_type(key).is_none() {
            return Err(unknown_config(key));
        }
        if let Some(v) = &c.value {
            overrides.insert(key.to_string(), v.as_str().to_string());
        }
    }
    // alter_topic_configs answers UNKNOWN_TOPIC_OR_PARTITION for a missing topic.
    broker.alter_topic_configs(r.resource_name.as_str(), overrides, validate_only)
}

/// Answers AlterConfigs.
pub(crate) fn alter(broker: &Arc<Broker>, request: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = request
        .resources
        .iter()
        .map(|r| {
            let result = alter_one(broker, r, request.validate_only);
            let response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match result {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_and_subtract_work_on_list_configs() {
        let mut o = BTreeMap::new();
        let v = StrBytes::from_static_str("compact");
        apply_op(
            &mut o,
            Some("delete"),
            "cleanup.policy",
            OP_APPEND,
            Some(&v),
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply_op(
            &mut o,
            Some("delete,compact"),
            "cleanup.policy",
            OP_APPEND,
            Some(&v),
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        let d = StrBytes::from_static_str("delete");
        apply_op(
            &mut o,
            Some("delete,compact"),
            "cleanup.policy",
            OP_SUBTRACT,
            Some(&d),
        )
        .unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        let err = apply_op(&mut o, Some("1"), "retention.ms", OP_APPEND, Some(&v)).unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidRequest);
        let err = apply_op(&mut o, None, "no.such", OP_SET, Some(&v)).unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidConfig);
        apply_op(&mut o, None, "cleanup.policy", OP_DELETE, None).unwrap();
        assert!(!o.contains_key("cleanup.policy"));
    }
}
