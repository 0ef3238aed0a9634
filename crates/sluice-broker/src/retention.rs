//! Retention by time and size for topics whose `cleanup.policy` includes `delete` (Kafka's
//! `LogManager.cleanupLogs` / `UnifiedLog.deleteOldSegments`).
//!
//! Every `log.retention.check.interval.ms` each partition's oldest segments are deleted while
//! they are past `retention.ms` (judged by the newest record timestamp in the segment) or while
//! the log would still exceed `retention.bytes` without them. Deletion moves the log start
//! offset to the first kept segment and renames the deleted files `.deleted`, removed after
//! `file.delete.delay.ms`. Only segments wholly below the high watermark go; the active segment
//! goes too when it is expired and not empty, after a roll, so that a log always keeps an
//! (empty) active segment at its end offset.

use sluice_log::SegmentInfo;

use crate::broker::Broker;
use crate::partition::Partition;

/// What retention asks of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// The new log start offset: the base offset of the first kept segment.
    pub start_offset: i64,
    /// Whether every segment goes, the active one included, so the log must roll first.
    pub roll_first: bool,
}

/// The deletion that `retention.ms` and `retention.bytes` ask for (-1 disables either), or
/// `None`. `segments` are in offset order, the active one last.
pub fn plan(
    segments: &[SegmentInfo],
    log_end_offset: i64,
    high_watermark: i64,
    now_ms: i64,
    retention_ms: i64,
    retention_bytes: i64,
) -> Option<Deletion> {
    let n = segments.len();
    // Segment i may go only if it holds records and all of them are below the high watermark.
    let deletable = |i: usize| {
        let end = segments
            .get(i + 1)
            .map_or(log_end_offset, |s| s.base_offset);
        segments[i].size_bytes > 0 && end <= high_watermark
    };
    let mut by_time = 0;
    if retention_ms >= 0 {
        let limit = now_ms.saturating_sub(retention_ms);
        while by_time < n && deletable(by_time) && segments[by_time].max_timestamp < limit {
            by_time += 1;
        }
    }
    let mut by_size = 0;
    if retention_bytes >= 0 {
        let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
        let mut excess = total.saturating_sub(retention_bytes as u64);
        while by_size < n && deletable(by_size) && excess >= segments[by_size].size_bytes {
            excess -= segments[by_size].size_bytes;
            by_size += 1;
        }
    }
    let count = by_time.max(by_size);
    if count == 0 {
        return None;
    }
    Some(if count == n {
        Deletion {
            start_offset: log_end_offset,
            roll_first: true,
        }
    } else {
        Deletion {
            start_offset: segments[count].base_offset,
            roll_first: false,
        }
    })
}

/// Applies retention to one partition; returns the number of segments deleted.
pub fn enforce(
    partition: &Partition,
    retention_ms: i64,
    retention_bytes: i64,
    now_ms: i64,
) -> Result<usize, sluice_log::LogError> {
    let log = partition.log();
    let plan_now = || -> Result<Option<Deletion>, sluice_log::LogError> {
        Ok(plan(
            &log.segment_infos()?,
            log.log_end_offset(),
            log.high_watermark(),
            now_ms,
            retention_ms,
            retention_bytes,
        ))
    };
    let Some(mut deletion) = plan_now()? else {
        return Ok(0);
    };
    if deletion.roll_first {
        // Plan again after the roll: records appended since the first plan are in the rolled
        // segment now, and must keep it (and themselves) alive.
        log.roll(now_ms)?;
        match plan_now()? {
            Some(d) if !d.roll_first => deletion = d,
            _ => return Ok(0),
        }
    }
    let start_offset = deletion.start_offset;
    let deleted = log.advance_log_start_offset(start_offset, now_ms)?;
    if deleted > 0 {
        tracing::info!(
            topic = %partition.topic,
            partition = partition.index,
            segments = deleted,
            log_start_offset = start_offset,
            "deleted segments past retention"
        );
    }
    Ok(deleted)
}

impl Broker {
    /// One retention pass over every topic with the `delete` policy. Blocking.
    pub fn enforce_retention(&self) {
        let now = sluice_log::now_ms();
        for topic in self.topics() {
            if !topic.config.has_delete_policy() {
                continue;
            }
            let retention_ms = topic.config.long("retention.ms", 604_800_000);
            let retention_bytes = topic.config.long("retention.bytes", -1);
            if retention_ms < 0 && retention_bytes < 0 {
                continue;
            }
            for partition in topic.hosted() {
                if let Err(e) = enforce(partition, retention_ms, retention_bytes, now) {
                    tracing::warn!(topic = %topic.name, partition = partition.index, error = %e, "retention pass failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base_offset: i64, size_bytes: u64, max_timestamp: i64) -> SegmentInfo {
        SegmentInfo {
            base_offset,
            size_bytes,
            max_timestamp,
        }
    }

    #[test]
    fn time_retention_deletes_the_expired_prefix() {
        let segs = [
            seg(0, 100, 10),
            seg(10, 100, 20),
            seg(20, 100, 90),
            seg(30, 0, -1),
        ];
        let d = plan(&segs, 30, 30, 100, 75, -1).unwrap();
        assert_eq!(
            d,
            Deletion {
                start_offset: 20,
                roll_first: false
            }
        );
        assert_eq!(plan(&segs, 30, 30, 100, 95, -1), None);
        assert_eq!(plan(&segs, 30, 30, 100, -1, -1), None, "disabled");
    }

    #[test]
    fn an_expired_active_segment_goes_after_a_roll() {
        let segs = [seg(0, 100, 10), seg(10, 50, 20)];
        let d = plan(&segs, 15, 15, 100, 50, -1).unwrap();
        assert_eq!(
            d,
            Deletion {
                start_offset: 15,
                roll_first: true
            }
        );
        // An empty active segment never counts.
        let segs = [seg(0, 100, 10), seg(10, 0, -1)];
        let d = plan(&segs, 10, 10, 100, 50, -1).unwrap();
        assert_eq!(
            d,
            Deletion {
                start_offset: 10,
                roll_first: false
            }
        );
    }

    #[test]
    fn size_retention_keeps_the_log_within_bytes() {
        let segs = [
            seg(0, 100, 1),
            seg(10, 100, 2),
            seg(20, 100, 3),
            seg(30, 40, 4),
        ];
        // 340 bytes, keep 240: deleting the first leaves exactly 240; keep 250: it stays.
        let d = plan(&segs, 34, 34, 10, -1, 240).unwrap();
        assert_eq!(d.start_offset, 10);
        assert_eq!(plan(&segs, 34, 34, 10, -1, 250), None);
        // Keep 100: two go (140 left); a third would leave less than retention.bytes, which
        // Kafka never does (a segment goes only while the rest still holds at least that much).
        assert_eq!(plan(&segs, 34, 34, 10, -1, 100).unwrap().start_offset, 20);
        // Keep 0: everything, after a roll.
        assert!(plan(&segs, 34, 34, 10, -1, 0).unwrap().roll_first);
    }

    #[test]
    fn nothing_at_or_above_the_high_watermark_goes() {
        let segs = [seg(0, 100, 1), seg(10, 100, 2), seg(20, 100, 3)];
        assert_eq!(plan(&segs, 30, 15, 1_000, 10, -1).unwrap().start_offset, 10);
        assert_eq!(plan(&segs, 30, 5, 1_000, 10, 0), None);
    }
}
