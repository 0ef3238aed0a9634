//! Topic-level configuration: Kafka's names, validation, and the resolved view a partition log
//! uses. Broker-level defaults (`log.segment.bytes` …) come from [`crate::config::BrokerConfig`].

use std::collections::BTreeMap;

/// Topic configs Sluice accepts, with the Kafka config type used in DescribeConfigs (v3+).
/// Types: 1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list.
pub const TOPIC_CONFIGS: &[(&str, i8)] = &[
    ("cleanup.policy", 7),
    ("compression.type", 2),
    ("delete.retention.ms", 5),
    ("file.delete.delay.ms", 5),
    ("flush.messages", 5),
    ("flush.ms", 5),
    ("index.interval.bytes", 3),
    ("max.compaction.lag.ms", 5),
    ("max.message.bytes", 3),
    ("message.timestamp.after.max.ms", 5),
    ("message.timestamp.before.max.ms", 5),
    ("message.timestamp.type", 2),
    ("min.cleanable.dirty.ratio", 6),
    ("min.compaction.lag.ms", 5),
    ("min.insync.replicas", 3),
    ("preallocate", 1),
    ("retention.bytes", 5),
    ("retention.ms", 5),
    ("segment.bytes", 3),
    ("segment.index.bytes", 3),
    ("segment.jitter.ms", 5),
    ("segment.ms", 5),
    ("unclean.leader.election.enable", 1),
];

/// The Kafka config type of a topic config, if it is one.
pub fn config_type(name: &str) -> Option<i8> {
    TOPIC_CONFIGS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

fn long(value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| "not a valid long".to_string())
}

fn at_least(value: &str, min: i64) -> Result<(), String> {
    let v = long(value)?;
    if v < min {
        return Err(format!("must be at least {min}"));
    }
    if v > i64::from(i32::MAX) {
        return Err("must fit in an int".into());
    }
    Ok(())
}

/// Checks a topic config value as Kafka's `LogConfig` validation does.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    match name {
        "cleanup.policy" => {
            for p in value.split(',') {
                match p.trim() {
                    "delete" | "compact" => {}
                    other => return Err(format!("unknown cleanup policy `{other}`")),
                }
            }
            Ok(())
        }
        "compression.type" => match value {
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
            _ => Err("expected producer, uncompressed, gzip, snappy, lz4 or zstd".into()),
        },
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err("expected CreateTime or LogAppendTime".into()),
        },
        "preallocate" | "unclean.leader.election.enable" => match value {
            "true" | "false" => Ok(()),
            _ => Err("expected true or false".into()),
        },
        "min.cleanable.dirty.ratio" => match value.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err("expected a number between 0 and 1".into()),
        },
        "segment.bytes" => at_least(value, 14),
        "segment.index.bytes" => at_least(value, 4),
        "max.message.bytes" => at_least(value, 0),
        "index.interval.bytes" => at_least(value, 0),
        "min.insync.replicas" => at_least(value, 1),
        "retention.ms" | "retention.bytes" => long(value).and_then(|v| {
            if v < -1 {
                Err("must be -1 or more".into())
            } else {
                Ok(())
            }
        }),
        "segment.ms" | "flush.messages" | "flush.ms" => long(value).and_then(|v| {
            if v < 1 {
                Err("must be at least 1".into())
            } else {
                Ok(())
            }
        }),
        _ if config_type(name).is_some() => long(value).and_then(|v| {
            if v < 0 {
                Err("must not be negative".into())
            } else {
                Ok(())
            }
        }),
        _ => Err(format!("unknown topic config `{name}`")),
    }
}

/// A topic's configs resolved against the broker defaults: every known name has a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Configs set on the topic itself.
    pub overrides: BTreeMap<String, String>,
    /// The effective value of every topic config.
    pub effective: BTreeMap<String, String>,
}

impl TopicConfig {
    /// Resolves `overrides` over the broker-level defaults.
    pub fn resolve(
        defaults: &BTreeMap<&'static str, String>,
        overrides: BTreeMap<String, String>,
    ) -> TopicConfig {
        let mut effective: BTreeMap<String, String> = defaults
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        for (k, v) in &overrides {
            effective.insert(k.clone(), v.clone());
        }
        TopicConfig {
            overrides,
            effective,
        }
    }

    /// The effective value of `name` parsed as a long, or `default` when absent or malformed
    /// (values were validated on the way in, so that does not happen in practice).
    pub fn long(&self, name: &str, default: i64) -> i64 {
        self.effective
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The effective string value of `name`.
    pub fn string(&self, name: &str) -> &str {
        self.effective.get(name).map(String::as_str).unwrap_or("")
    }

    /// Whether `cleanup.policy` includes `delete` (retention by time and size applies).
    pub fn has_delete_policy(&self) -> bool {
        self.string("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "delete")
    }

    /// Whether `cleanup.policy` includes `compact`.
    pub fn is_compacted(&self) -> bool {
        self.string("cleanup.policy")
            .split(',')
            .any(|p| p.trim() == "compact")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_follows_kafka() {
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "forever").is_err());
        assert!(validate("segment.bytes", "13").is_err());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("nope", "1").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
    }

    #[test]
    fn overrides_win_over_defaults() {
        let defaults = crate::config::BrokerConfig::default().log_defaults;
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        let c = TopicConfig::resolve(&defaults, o);
        assert!(c.is_compacted());
        assert_eq!(c.long("segment.bytes", 0), 1 << 30);
    }
}
