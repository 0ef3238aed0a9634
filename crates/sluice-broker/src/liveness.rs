//! Broker liveness, kept by the active controller: a broker whose session lapses
//! (`broker.session.timeout.ms` without contact) is fenced and its leaderships move; one heard
//! from again is unfenced. Every node of this cluster is a voter of the metadata quorum, so the
//! leader's Raft contact with a node is that node's heartbeat (every
//! `broker.heartbeat.interval.ms` at most); a node that just became leader gives every broker
//! one full session before fencing it, as Kafka's controller does on failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_metadata::controller::ControllerRequest;

use crate::broker::Broker;

/// Bounds of the liveness check's period.
const CHECK_PERIOD_MS_MIN: u64 = 100;
const CHECK_PERIOD_MS_MAX: u64 = 1_000;

/// Runs the liveness check until the task is aborted.
pub(crate) async fn run(broker: Arc<Broker>) {
    let session_ms = broker.config.broker_session_timeout_ms;
    let period_ms = (broker.config.broker_heartbeat_interval_ms.max(0) as u64 / 2)
        .clamp(CHECK_PERIOD_MS_MIN, CHECK_PERIOD_MS_MAX);
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader_since: Option<Instant> = None;
    loop {
        tick.tick().await;
        let status = broker.quorum().status();
        if status.leader_id != broker.config.node_id {
            leader_since = None;
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let in_grace = since.elapsed() < Duration::from_millis(session_ms.max(0) as u64);
        let now_ms = crate::handlers::now_ms();
        for request in decisions(&broker, &status, now_ms, session_ms, in_grace) {
            let b = broker.clone();
            let outcome = tokio::task::spawn_blocking(move || b.quorum().submit(request)).await;
            if let Ok(Err(e)) = outcome {
                tracing::warn!(error = %e, "a broker liveness change did not commit");
            }
        }
    }
}

/// What the controller does about each broker: fence the ones whose session lapsed, unfence
/// the ones heard from again (not those that shut down under control: they register anew).
fn decisions(
    broker: &Broker,
    status: &sluice_metadata::quorum::QuorumStatus,
    now_ms: i64,
    session_ms: i64,
    in_grace: bool,
) -> Vec<ControllerRequest> {
    let image = broker.image();
    let mut out = Vec::new();
    for b in image.brokers.values() {
        if b.id == broker.config.node_id {
            continue;
        }
        let last_contact_ms = status
            .voters
            .iter()
            .find(|v| v.id == b.id)
            .map_or(-1, |v| v.last_fetch_ms);
        let alive = last_contact_ms >= 0 && now_ms - last_contact_ms < session_ms;
        if !b.fenced && !alive && !in_grace {
            tracing::info!(
                broker = b.id,
                last_contact_ms,
                "broker session expired; fencing it"
            );
            out.push(ControllerRequest::FenceBroker {
                broker_id: b.id,
                broker_epoch: b.epoch,
            });
        } else if b.fenced && alive && !b.in_controlled_shutdown {
            tracing::info!(broker = b.id, "broker is back; unfencing it");
            out.push(ControllerRequest::UnfenceBroker {
                broker_id: b.id,
                broker_epoch: b.epoch,
            });
        }
    }
    out
}
