//! A consumer group member and the heartbeat that moves it: join, epoch checks, subscription
//! changes, the target assignment and reconciliation (Kafka's GroupMetadataManager
//! consumerGroupHeartbeat and CurrentAssignmentBuilder).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::{
    err, Assignment, Assignor, ConsumerGroup, ConsumerGroupConfig, GroupError, HeartbeatRequest,
    HeartbeatResponse, TopicLookup,
};

/// Where a member is in its reconciliation (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Owns exactly its share of the target assignment of its epoch.
    Stable,
    /// Must stop owning some partitions before it may move on.
    UnrevokedPartitions,
    /// Waits for partitions that other members still own.
    UnreleasedPartitions,
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member epoch; -2 while a static member is away.
    pub epoch: i32,
    /// The epoch before the last bump (a member may still heartbeat with it if it missed the
    /// response that bumped it).
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    /// The regex as sent and compiled.
    pub subscribed_topic_regex: Option<(String, regex::Regex)>,
    pub server_assignor: Option<Assignor>,
    /// Partitions the member may own now.
    pub assigned: Assignment,
    /// Partitions it must give up before its epoch moves on.
    pub pending_revocation: Assignment,
    /// When the member is fenced without a heartbeat.
    pub session_deadline_ms: i64,
    /// When the member is fenced if it still has not revoked (UNREVOKED_PARTITIONS only).
    pub rebalance_deadline_ms: Option<i64>,
}

impl Member {
    fn new(id: &str) -> Member {
        Member {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: -1,
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: i64::MAX,
            rebalance_deadline_ms: None,
        }
    }

    /// Every partition the member owns: assigned or not yet revoked.
    pub fn owned_partitions(&self) -> Vec<(Uuid, i32)> {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect()
    }

    /// Why the member is to be fenced now, if it is.
    pub fn expired(&self, now_ms: i64) -> Option<&'static str> {
        if now_ms >= self.session_deadline_ms {
            return Some("the member session expired");
        }
        if self.rebalance_deadline_ms.is_some_and(|d| now_ms >= d) {
            return Some("the member failed to revoke its partitions within the rebalance timeout");
        }
        None
    }

    fn same_subscription(&self, other: &Member) -> bool {
        self.subscribed_topic_names == other.subscribed_topic_names
            && self.subscribed_topic_regex.as_ref().map(|r| &r.0)
                == other.subscribed_topic_regex.as_ref().map(|r| &r.0)
    }
}

fn fenced(received: i32, known: i32) -> GroupError {
    let which = if received > known {
        "greater"
    } else {
        "smaller"
    };
    err(
        ResponseError::FencedMemberEpoch,
        format!(
            "The consumer group member has a {which} member epoch ({received}) than the one known by the group coordinator ({known}). The member must abandon all its partitions and rejoin."
        ),
    )
}

/// Whether every owned partition is in `target`.
fn is_subset(owned: Option<&Vec<(Uuid, Vec<i32>)>>, target: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(t, ps)| {
        target
            .get(t)
            .is_some_and(|set| ps.iter().all(|p| set.contains(p)))
    })
}

/// Kafka's throwIfConsumerGroupMemberEpochIsInvalid.
fn check_epoch(m: &Member, req: &HeartbeatRequest) -> Result<(), GroupError> {
    if req.member_epoch > m.epoch {
        return Err(fenced(req.member_epoch, m.epoch));
    }
    if req.member_epoch < m.epoch
        && (req.member_epoch != m.previous_epoch || !is_subset(req.owned.as_ref(), &m.assigned))
    {
        return Err(fenced(req.member_epoch, m.epoch));
    }
    Ok(())
}

/// The member this heartbeat is about: new (then `true`), rejoining (epoch 0) or existing.
fn find_member(
    g: &mut ConsumerGroup,
    req: &HeartbeatRequest,
    config: &ConsumerGroupConfig,
) -> Result<(Member, bool), GroupError> {
    let is_new = !g.members.contains_key(&req.member_id);
    let is_new_static = req
        .instance_id
        .as_ref()
        .is_some_and(|i| !g.static_members.contains_key(i));
    if req.member_epoch == 0 && is_new && (req.instance_id.is_none() || is_new_static) {
        if g.members.len() >= config.max_size {
            return Err(err(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    config.max_size
                ),
            ));
        }
        let id = if req.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            req.member_id.clone()
        };
        return Ok((Member::new(&id), true));
    }
    if let Some(instance) = &req.instance_id {
        let existing_id = g.static_members.get(instance).cloned().unwrap_or_default();
        let Some(existing) = g.members.get(&existing_id).cloned() else {
            return Err(err(
                ResponseError::UnknownMemberId,
                format!("Instance id {instance} is unknown."),
            ));
        };
        if req.member_epoch == 0 {
            if existing.epoch != super::LEAVE_GROUP_STATIC_MEMBER_EPOCH
                && existing.id != req.member_id
            {
                return Err(err(
                    ResponseError::UnreleasedInstanceId,
                    format!(
                        "Static member {} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                        req.member_id, existing.id
                    ),
                ));
            }
            // The static member comes back under a new member id: it takes over the old
            // member's assignment (Kafka's replaceMember).
            let mut m = existing.clone();
            m.id = if req.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                req.member_id.clone()
            };
            m.epoch = 0;
            m.previous_epoch = 0;
            let target = g.target.remove(&existing.id);
            g.members.remove(&existing.id);
            for tp in existing.owned_partitions() {
                g.owners.insert(tp, m.id.clone());
            }
            if let Some(t) = target {
                g.target.insert(m.id.clone(), t);
            }
            return Ok((m, false));
        }
        if existing.id != req.member_id {
            return Err(err(
                ResponseError::FencedInstanceId,
                format!(
                    "Static member {} with instance id {instance} was fenced by member {}.",
                    req.member_id, existing.id
                ),
            ));
        }
        check_epoch(&existing, req)?;
        return Ok((existing, false));
    }
    let Some(existing) = g.members.get(&req.member_id).cloned() else {
        return Err(err(
            ResponseError::UnknownMemberId,
            format!(
                "Member {} is not a member of group {}.",
                req.member_id, g.id
            ),
        ));
    };
    if req.member_epoch == 0 {
        // A known member rejoining from scratch (after a fence or an error): it owns nothing
        // any more.
        let mut m = existing;
        m.epoch = 0;
        m.previous_epoch = 0;
        m.state = MemberState::Stable;
        m.assigned.clear();
        m.pending_revocation.clear();
        m.rebalance_deadline_ms = None;
        return Ok((m, false));
    }
    check_epoch(&existing, req)?;
    Ok((existing, false))
}

/// One heartbeat of a joining or joined member.
pub(super) fn heartbeat(
    g: &mut ConsumerGroup,
    req: HeartbeatRequest,
    regex: Option<regex::Regex>,
    config: &ConsumerGroupConfig,
    topics: &dyn TopicLookup,
    now_ms: i64,
) -> Result<HeartbeatResponse, GroupError> {
    let (before, joining) = find_member(g, &req, config)?;
    let mut m = before.clone();
    if req.instance_id.is_some() {
        m.instance_id = req.instance_id.clone();
    }
    if req.rack_id.is_some() {
        m.rack_id = req.rack_id.clone();
    }
    if req.rebalance_timeout_ms >= 0 {
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    if let Some(name) = &req.server_assignor {
        m.server_assignor = Assignor::from_name(name);
    }
    if let Some(names) = &req.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        m.subscribed_topic_names = names;
    }
    if let (Some(pattern), Some(re)) = (&req.subscribed_topic_regex, regex) {
        m.subscribed_topic_regex = if pattern.is_empty() {
            None
        } else {
            Some((pattern.clone(), re))
        };
    }
    m.client_id = req.client_id.clone();
    m.client_host = req.client_host.clone();

    let mut bump = joining || !m.same_subscription(&before);
    g.put_member(m.clone());
    g.forget_unused_regexes();
    let subscribed = g.compute_subscribed_topics(topics);
    if subscribed != g.subscribed_topics {
        g.subscribed_topics = subscribed;
        bump = true;
    }
    if bump {
        g.epoch += 1;
    }
    if g.epoch > g.assignment_epoch {
        let assignor = g.assignor(config);
        g.update_target(assignor);
    }

    let target = g.target_of(&m.id);
    let updated = reconcile(
        g,
        m.clone(),
        g.assignment_epoch,
        &target,
        req.owned.as_ref(),
        now_ms,
    );
    let mut updated = updated;
    updated.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
    g.put_member(updated.clone());

    let full = req.member_epoch == 0
        || (req.rebalance_timeout_ms != -1
            && req.subscribed_topic_names.is_some()
            && req.owned.is_some());
    let changed = updated.assigned != before.assigned || joining;
    Ok(HeartbeatResponse {
        member_id: updated.id.clone(),
        member_epoch: updated.epoch,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        assignment: (full || changed).then(|| updated.assigned.clone()),
    })
}

/// Moves `m` one step towards `target` (Kafka's CurrentAssignmentBuilder.build).
fn reconcile(
    g: &ConsumerGroup,
    m: Member,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Vec<(Uuid, Vec<i32>)>>,
    now_ms: i64,
) -> Member {
    if m.epoch == target_epoch && m.state == MemberState::Stable {
        return m;
    }
    match m.state {
        MemberState::Stable => next_assignment(g, m.epoch, m, target_epoch, target, owned, now_ms),
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &m.pending_revocation) {
                return m;
            }
            let epoch = m.epoch + 1;
            next_assignment(g, epoch, m, target_epoch, target, owned, now_ms)
        }
        MemberState::UnreleasedPartitions => {
            next_assignment(g, m.epoch, m, target_epoch, target, owned, now_ms)
        }
    }
}

/// Whether the member still reports owning any of `partitions` (not reporting counts as
/// owning, as Kafka's ownsRevokedPartitions).
fn owns_any(owned: Option<&Vec<(Uuid, Vec<i32>)>>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(t, ps)| {
        partitions
            .get(t)
            .is_some_and(|set| ps.iter().any(|p| set.contains(p)))
    })
}

/// Kafka's computeNextAssignment.
fn next_assignment(
    g: &ConsumerGroup,
    member_epoch: i32,
    mut m: Member,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Vec<(Uuid, Vec<i32>)>>,
    now_ms: i64,
) -> Member {
    let mut assigned = Assignment::new();
    let mut revoke = Assignment::new();
    let mut pending = Assignment::new();
    let mut unreleased = false;
    let topic_ids: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
    let empty = BTreeSet::new();
    for t in topic_ids {
        let want = target.get(&t).unwrap_or(&empty);
        let have = m.assigned.get(&t).unwrap_or(&empty);
        let keep: BTreeSet<i32> = have.intersection(want).copied().collect();
        let give: BTreeSet<i32> = have.difference(&keep).copied().collect();
        let mut get: BTreeSet<i32> = want.difference(&keep).copied().collect();
        let before = get.len();
        get.retain(|p| !g.owned_by_other(&m.id, (t, *p)));
        unreleased |= get.len() != before;
        if !keep.is_empty() {
            assigned.insert(t, keep);
        }
        if !give.is_empty() {
            revoke.insert(t, give);
        }
        if !get.is_empty() {
            pending.insert(t, get);
        }
    }
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        if m.state != MemberState::UnrevokedPartitions || m.rebalance_deadline_ms.is_none() {
            m.rebalance_deadline_ms = Some(now_ms + i64::from(m.rebalance_timeout_ms.max(0)));
        }
        m.state = MemberState::UnrevokedPartitions;
        set_epoch(&mut m, member_epoch);
        m.assigned = assigned;
        m.pending_revocation = revoke;
        return m;
    }
    for (t, ps) in pending {
        assigned.entry(t).or_default().extend(ps);
    }
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    set_epoch(&mut m, target_epoch);
    m.assigned = assigned;
    m.pending_revocation.clear();
    m.rebalance_deadline_ms = None;
    m
}

fn set_epoch(m: &mut Member, epoch: i32) {
    if m.epoch != epoch {
        m.previous_epoch = m.epoch;
        m.epoch = epoch;
    }
}
