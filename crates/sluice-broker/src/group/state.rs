//! One classic-protocol group: its state machine (Empty, PreparingRebalance,
//! CompletingRebalance, Stable, Dead), members, generations, protocol selection, timers and
//! committed offsets. No I/O and no clock: every operation takes `now_ms`, and parked JoinGroup /
//! SyncGroup requests are answered through oneshot channels, so unit tests drive it directly.
//!
//! The rules follow Kafka's classic `GroupCoordinator` (`GroupCoordinator.scala` up to 3.x,
//! `ClassicGroup`/`GroupMetadataManager` in 4.x).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupValue, MemberValue, OffsetValue};

/// A group's state, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; may still hold committed offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Join done; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted; requests on it are retried by clients against a fresh group.
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The coordinator's limits and delays (Kafka's broker configs of the same names).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size`.
    pub max_size: usize,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 10_080 * 60_000,
        }
    }
}

/// A JoinGroup request, free of wire types.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, member metadata), most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// v9+: a rejoining static leader may be told to skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// A JoinGroup outcome.
#[derive(Debug, Clone, Default)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResponse {
    fn error(e: ResponseError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResponse::default()
        }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment), from the leader.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup outcome.
#[derive(Debug, Clone, Default)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    fn error(e: ResponseError) -> SyncResponse {
        SyncResponse {
            error: Some(e),
            ..SyncResponse::default()
        }
    }
}

/// An answer now, or one that arrives when the rebalance gets there.
#[derive(Debug)]
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A committed offset.
pub type CommittedOffset = OffsetValue;

/// A member of the group.
#[derive(Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    /// (name, metadata), most preferred first.
    protocols: Vec<(String, Bytes)>,
    /// The member's assignment in the current generation.
    assignment: Bytes,
    /// A parked JoinGroup, answered when the join phase completes.
    join_waiter: Option<oneshot::Sender<JoinResponse>>,
    /// Whether the parked JoinGroup's version knows `skip_assignment`.
    join_supports_skip: bool,
    /// A parked SyncGroup, answered with the leader's assignment.
    sync_waiter: Option<oneshot::Sender<SyncResponse>>,
    /// The member is removed if it neither heartbeats nor waits in a join or sync by then.
    session_deadline_ms: i64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn is_waiting(&self) -> bool {
        self.join_waiter.is_some() || self.sync_waiter.is_some()
    }
}

/// A summary of a member for DescribeGroups.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// One group.
#[derive(Debug)]
pub struct Group {
    /// Group id.
    pub id: String,
    state: GroupState,
    /// When the group entered its state (ms since the epoch); offsets of an empty consumer
    /// group expire `offsets.retention.minutes` after it became empty.
    state_timestamp_ms: i64,
    /// Set by the first member, kept while the group is empty (for ListGroups).
    protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    protocol_name: Option<String>,
    generation_id: i32,
    leader_id: Option<String>,
    /// Members by id.
    members: BTreeMap<String, Member>,
    /// `group.instance.id` → member id of static members.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, by the deadline to rejoin with them.
    pending_members: HashMap<String, i64>,
    /// When the join phase completes at the latest (PreparingRebalance only).
    join_deadline_ms: Option<i64>,
    /// While the initial delay runs (`group.initial.rebalance.delay.ms`): how much longer it may
    /// still be extended by newly arriving members.
    initial_delay_remaining_ms: Option<i64>,
    /// A new member arrived since the initial delay was last (re)armed.
    new_member_added: bool,
    /// Committed offsets by (topic, partition).
    offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// The group metadata changed in a way that must be persisted.
    dirty: bool,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            protocol_type: None,
            protocol_name: None,
            generation_id: 0,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_deadline_ms: None,
            initial_delay_remaining_ms: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
            dirty: false,
        }
    }

    /// The state.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The generation.
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    /// The protocol type ("consumer" for consumers), or "".
    pub fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Takes the "metadata changed" flag.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// Marks the group deleted.
    pub fn mark_dead(&mut self, now_ms: i64) {
        self.transition(GroupState::Dead, now_ms);
    }

    // ----- protocols -----

    /// Protocol names every member supports, in the first member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            names.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        names
    }

    /// Whether a member of `protocol_type` with `protocols` may join (Kafka's
    /// `supportsProtocols`): anything non-empty for an empty group, else the same type and at
    /// least one protocol every member supports.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// Each member votes for its most preferred candidate; the most votes win, ties going to
    /// the first member's preference.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| c == n))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].clone())
    }

    // ----- JoinGroup -----

    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResponse> {
        if self.state == GroupState::Dead {
            return Reply::Now(JoinResponse::error(
                ResponseError::CoordinatorNotAvailable,
                &req.member_id,
            ));
        }
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return Reply::Now(JoinResponse::error(
                ResponseError::InvalidSessionTimeout,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            self.join_new(req, now_ms, cfg)
        } else {
            self.join_known(req, now_ms, cfg)
        }
    }

    fn join_new(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResponse> {
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinResponse::error(
                ResponseError::InconsistentGroupProtocol,
                "",
            ));
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = &req.group_instance_id {
            if let Some(old) = self.static_members.get(instance).cloned() {
                return self.replace_static_member(&old, member_id, req, now_ms, cfg);
            }
        }
        if self.members.len() + self.pending_members.len() >= cfg.max_size {
            return Reply::Now(JoinResponse::error(ResponseError::GroupMaxSizeReached, ""));
        }
        if req.group_instance_id.is_none() && req.require_known_member_id {
            let deadline = now_ms + i64::from(req.session_timeout_ms);
            self.pending_members.insert(member_id.clone(), deadline);
            return Reply::Now(JoinResponse::error(
                ResponseError::MemberIdRequired,
                &member_id,
            ));
        }
        self.add_member_and_rebalance(member_id, req, now_ms, cfg)
    }

    fn join_known(
        &mut self,
        req: JoinRequest,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResponse> {
        let id = req.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            if !self.supports(&req.protocol_type, &req.protocols) {
                return Reply::Now(JoinResponse::error(
                    ResponseError::InconsistentGroupProtocol,
                    &id,
                ));
            }
            return self.add_member_and_rebalance(id, req, now_ms, cfg);
        }
        if let Some(e) = self.check_static(&id, req.group_instance_id.as_deref()) {
            return Reply::Now(JoinResponse::error(e, &id));
        }
        if !self.members.contains_key(&id) {
            return Reply::Now(JoinResponse::error(ResponseError::UnknownMemberId, &id));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Reply::Now(JoinResponse::error(
                ResponseError::InconsistentGroupProtocol,
                &id,
            ));
        }
        let same_protocols = self
            .members
            .get(&id)
            .is_some_and(|m| m.protocols == req.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member(&id, &req);
                self.park_join(&id, req.supports_skip_assignment, now_ms)
            }
            GroupState::CompletingRebalance if same_protocols => {
                // The member lost the JoinGroup response: send it again.
                Reply::Now(self.join_response_for(&id, false))
            }
            GroupState::Stable if same_protocols && self.leader_id.as_deref() != Some(&id) => {
                Reply::Now(self.join_response_for(&id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // A changed subscription, or the leader asking for a new assignment.
                self.update_member(&id, &req);
                let reply = self.park_join(&id, req.supports_skip_assignment, now_ms);
                self.prepare_rebalance(now_ms, cfg);
                self.try_complete_join(now_ms);
                reply
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinResponse::error(ResponseError::UnknownMemberId, &id))
            }
        }
    }

    /// FENCED_INSTANCE_ID when `instance` belongs to a different member id.
    fn check_static(&self, member_id: &str, instance: Option<&str>) -> Option<ResponseError> {
        let instance = instance?;
        match self.static_members.get(instance) {
            Some(owner) if owner != member_id => Some(ResponseError::FencedInstanceId),
            _ => None,
        }
    }

    fn update_member(&mut self, id: &str, req: &JoinRequest) {
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
    }

    fn park_join(&mut self, id: &str, supports_skip: bool, _now_ms: i64) -> Reply<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.join_waiter = Some(tx);
            m.join_supports_skip = supports_skip;
        }
        self.try_complete_join(_now_ms);
        Reply::Later(rx)
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResponse> {
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.members.insert(
            member_id.clone(),
            Member {
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms.max(req.session_timeout_ms),
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                join_supports_skip: req.supports_skip_assignment,
                sync_waiter: None,
                session_deadline_ms: now_ms + i64::from(req.session_timeout_ms),
            },
        );
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id);
        }
        self.new_member_added = true;
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now_ms, cfg);
        }
        self.try_complete_join(now_ms);
        Reply::Later(rx)
    }

    /// A static member restarted (same `group.instance.id`, no member id): it takes over the
    /// old member's place and assignment. In a stable group the others are not disturbed.
    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResponse> {
        let Some(mut member) = self.members.remove(old_id) else {
            return Reply::Now(JoinResponse::error(ResponseError::UnknownMemberId, ""));
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResponse::error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResponse::error(ResponseError::FencedInstanceId));
        }
        let protocols_changed = member.protocols != req.protocols;
        member.protocols = req.protocols.clone();
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(req.session_timeout_ms);
        member.session_deadline_ms = now_ms + i64::from(req.session_timeout_ms);
        let was_leader = self.leader_id.as_deref() == Some(old_id);
        if was_leader {
            self.leader_id = Some(new_id.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        self.dirty = true;
        if self.state == GroupState::Stable && !protocols_changed {
            // As Kafka does: no rebalance. A restarted leader that cannot be told to skip the
            // assignment (JoinGroup < v9) is answered with the old leader id, so it does not
            // see itself as leader and does not reassign; SyncGroup hands it its stored
            // assignment.
            let mut response = self.join_response_for(&new_id, was_leader);
            if was_leader && !req.supports_skip_assignment {
                response.leader = old_id.to_string();
                response.members = Vec::new();
                response.skip_assignment = false;
            }
            return Reply::Now(response);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                self.park_join(&new_id, req.supports_skip_assignment, now_ms)
            }
            _ => {
                let reply = self.park_join(&new_id, req.supports_skip_assignment, now_ms);
                self.prepare_rebalance(now_ms, cfg);
                self.try_complete_join(now_ms);
                reply
            }
        }
    }

    /// The current generation's JoinGroup answer for `id`; the leader gets the member list.
    fn join_response_for(&self, id: &str, skip_assignment: bool) -> JoinResponse {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader_id.as_deref() == Some(id);
        let members = if is_leader {
            self.members
                .iter()
                .map(|(mid, m)| JoinedMember {
                    member_id: mid.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: id.to_string(),
            members,
            skip_assignment: is_leader && skip_assignment,
        }
    }

    /// Starts a rebalance: members must rejoin by the deadline (the initial delay for a group
    /// that was empty). A group that was empty always completes its first join phase from the
    /// timer, even with `group.initial.rebalance.delay.ms=0`, as Kafka's `prepareRebalance`
    /// does (it schedules the initial join instead of completing it at once): members whose
    /// JoinGroup arrives before the next tick share the first generation, instead of the first
    /// member getting a generation of its own and every later one forcing a rebalance.
    fn prepare_rebalance(&mut self, now_ms: i64, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            self.fail_pending_syncs(ResponseError::RebalanceInProgress);
        }
        let rebalance_timeout_ms = self
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        let initial = i64::from(cfg.initial_rebalance_delay_ms);
        if self.state == GroupState::Empty {
            let delay = initial.min(rebalance_timeout_ms);
            self.join_deadline_ms = Some(now_ms + delay);
            self.initial_delay_remaining_ms = Some(rebalance_timeout_ms - delay);
            self.new_member_added = false;
        } else {
            self.join_deadline_ms = Some(now_ms + rebalance_timeout_ms);
            self.initial_delay_remaining_ms = None;
        }
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    fn fail_pending_syncs(&mut self, e: ResponseError) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResponse::error(e));
            }
        }
    }

    /// Completes the join phase once every member has rejoined and no new member is still
    /// expected (never during the initial delay, which only its timer ends).
    fn try_complete_join(&mut self, now_ms: i64) {
        if self.initial_delay_remaining_ms.is_none() {
            self.complete_join_if_all_joined(now_ms);
        }
    }

    /// After a member or pending member was removed: completes the join phase if everyone left
    /// has rejoined, during the initial delay too (Kafka's `removeMemberAndUpdateClassicGroup`
    /// and `removePendingMemberAndUpdateClassicGroup`), so that a group whose members all left
    /// becomes Empty at once.
    fn complete_join_if_all_joined(&mut self, now_ms: i64) {
        if self.state == GroupState::PreparingRebalance
            && self.pending_members.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
        {
            self.complete_join(now_ms);
        }
    }

    /// Ends the join phase: drops members that did not rejoin, starts the next generation and
    /// answers every parked JoinGroup.
    fn complete_join(&mut self, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.join_deadline_ms = None;
        self.initial_delay_remaining_ms = None;
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader_id = None;
            self.transition(GroupState::Empty, now_ms);
            self.dirty = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader_id
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let response = self.join_response_for(&id, false);
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(response);
                }
            }
        }
    }

    /// Removes a member without starting a rebalance; parked requests get UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, id: &str) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(w) = m.join_waiter.take() {
            let _ = w.send(JoinResponse::error(ResponseError::UnknownMemberId, id));
        }
        if let Some(w) = m.sync_waiter.take() {
            let _ = w.send(SyncResponse::error(ResponseError::UnknownMemberId));
        }
        if self.leader_id.as_deref() == Some(id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    /// Removes a member and rebalances the others.
    fn remove_member_and_rebalance(&mut self, id: &str, now_ms: i64, cfg: &GroupConfig) {
        self.remove_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now_ms, cfg);
                self.try_complete_join(now_ms);
            }
            GroupState::PreparingRebalance => self.complete_join_if_all_joined(now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ----- SyncGroup, Heartbeat, LeaveGroup -----

    /// Handles a SyncGroup.
    pub fn sync(&mut self, req: SyncRequest, now_ms: i64) -> Reply<SyncResponse> {
        if let Err(e) = self.check_member(&req.member_id, req.group_instance_id.as_deref()) {
            return Reply::Now(SyncResponse::error(e));
        }
        if req.generation_id != self.generation_id {
            return Reply::Now(SyncResponse::error(ResponseError::IllegalGeneration));
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if type_mismatch || name_mismatch {
            return Reply::Now(SyncResponse::error(
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncResponse::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncResponse::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                    m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                }
                if self.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    self.complete_sync(req.assignments, now_ms);
                }
                Reply::Later(rx)
            }
            GroupState::Stable => {
                let Some(m) = self.members.get_mut(&req.member_id) else {
                    return Reply::Now(SyncResponse::error(ResponseError::UnknownMemberId));
                };
                m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
                Reply::Now(SyncResponse {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
        }
    }

    /// The leader's assignment arrived: store it, answer every parked SyncGroup, go Stable.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>, now_ms: i64) {
        let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for (id, m) in self.members.iter_mut() {
            m.assignment = by_member.remove(id).unwrap_or_default();
        }
        self.transition(GroupState::Stable, now_ms);
        self.dirty = true;
        let (protocol_type, protocol_name) =
            (self.protocol_type.clone(), self.protocol_name.clone());
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResponse {
                    error: None,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
    }

    /// The member exists and is not fenced.
    fn check_member(&self, id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(e) = self.check_static(id, instance) {
            return Err(e);
        }
        if !self.members.contains_key(id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// Handles a Heartbeat; `None` is success.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Option<ResponseError> {
        if let Err(e) = self.check_member(member_id, instance) {
            return Some(e);
        }
        if generation_id != self.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        }
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => None,
        }
    }

    /// Handles one member of a LeaveGroup (`member_id` may be empty when `instance` is given).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now_ms: i64,
        cfg: &GroupConfig,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        let id = match instance {
            Some(instance) => match self.static_members.get(instance) {
                None => return Some(ResponseError::UnknownMemberId),
                Some(owner) if !member_id.is_empty() && owner != member_id => {
                    return Some(ResponseError::FencedInstanceId)
                }
                Some(owner) => owner.clone(),
            },
            None => {
                if self.pending_members.remove(member_id).is_some() {
                    self.complete_join_if_all_joined(now_ms);
                    return None;
                }
                if !self.members.contains_key(member_id) {
                    return Some(ResponseError::UnknownMemberId);
                }
                member_id.to_string()
            }
        };
        self.remove_member_and_rebalance(&id, now_ms, cfg);
        None
    }

    // ----- timers -----

    /// Expires pending member ids and silent members, and ends the join phase at its deadline.
    pub fn tick(&mut self, now_ms: i64, cfg: &GroupConfig) {
        if self.state == GroupState::Dead {
            return;
        }
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        if self.pending_members.len() != before {
            self.complete_join_if_all_joined(now_ms);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.is_waiting() && m.session_deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member_and_rebalance(&id, now_ms, cfg);
        }
        if self.state != GroupState::PreparingRebalance
            || self.join_deadline_ms.is_none_or(|d| d > now_ms)
        {
            return;
        }
        if let Some(remaining) = self.initial_delay_remaining_ms {
            if self.new_member_added && remaining > 0 {
                let delay = i64::from(cfg.initial_rebalance_delay_ms).min(remaining);
                self.join_deadline_ms = Some(now_ms + delay);
                self.initial_delay_remaining_ms = Some(remaining - delay);
                self.new_member_added = false;
                return;
            }
        }
        self.complete_join(now_ms);
    }

    // ----- offsets -----

    /// Checks an OffsetCommit's member fields. Commits without member (generation < 0) are
    /// accepted only while the group has no members (consumers with manual assignment, admin
    /// tools).
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.members.is_empty() {
            return Ok(());
        }
        self.check_member(member_id, instance)?;
        if generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.session_deadline_ms = now_ms + i64::from(m.session_timeout_ms);
        }
        Ok(())
    }

    /// Checks a transactional offset commit (TxnOffsetCommit) as Kafka does: more lenient than
    /// OffsetCommit, since producers that send only the group id (no member id, generation
    /// -1) must still commit while the group has members.
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if !member_id.is_empty() {
            self.check_member(member_id, instance)?;
        }
        if generation_id >= 0 && generation_id != self.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Records a committed offset (already persisted by the caller).
    pub fn set_offset(&mut self, topic: &str, partition: i32, value: CommittedOffset) {
        self.offsets.insert((topic.to_string(), partition), value);
    }

    /// The committed offset of a partition.
    pub fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    /// Every committed offset, by topic and partition.
    pub fn offsets(&self) -> &BTreeMap<(String, i32), CommittedOffset> {
        &self.offsets
    }

    /// Forgets a committed offset; whether there was one.
    pub fn remove_offset(&mut self, topic: &str, partition: i32) -> bool {
        self.offsets
            .remove(&(topic.to_string(), partition))
            .is_some()
    }

    /// Topics the members subscribe to (decoded from the consumer protocol metadata), or
    /// `None` when the group does not use the consumer protocol.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&protocol);
            topics.extend(super::decode_subscription(&mut meta));
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// Offsets due to expire (`offsets.retention.minutes`), as Kafka's
    /// `GroupMetadata.removeExpiredOffsets`: all of an empty group's once it has been empty that
    /// long (KIP-211); each of a simple group's by commit time; and in a stable consumer group,
    /// by commit time, those of topics no member subscribes to any more (KIP-496).
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let old = |o: &OffsetValue| o.commit_timestamp_ms.saturating_add(retention_ms) <= now_ms;
        let expired: Vec<(String, i32)> = match (self.protocol_type.as_deref(), self.state) {
            (Some(_), GroupState::Empty) => {
                if self.state_timestamp_ms.saturating_add(retention_ms) <= now_ms {
                    self.offsets.keys().cloned().collect()
                } else {
                    Vec::new()
                }
            }
            (None, GroupState::Empty) => self
                .offsets
                .iter()
                .filter(|(_, o)| old(o))
                .map(|(k, _)| k.clone())
                .collect(),
            (Some("consumer"), GroupState::Stable) => match self.subscribed_topics() {
                Some(subscribed) => self
                    .offsets
                    .iter()
                    .filter(|((topic, _), o)| !subscribed.contains(topic) && old(o))
                    .map(|(k, _)| k.clone())
                    .collect(),
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        for k in &expired {
            self.offsets.remove(k);
        }
        expired
    }

    /// Whether the group holds nothing at all (no members, no offsets) and can be forgotten.
    pub fn is_vacant(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.offsets.is_empty()
    }

    // ----- DescribeGroups -----

    /// (state, protocol type, protocol, members) as DescribeGroups shows them: metadata and
    /// assignments only once the group is stable, as Kafka does.
    pub fn describe(&self) -> (GroupState, String, String, Vec<MemberSummary>) {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = self
            .members
            .iter()
            .map(|(id, m)| MemberSummary {
                member_id: id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        (
            self.state,
            self.protocol_type().to_string(),
            protocol,
            members,
        )
    }

    // ----- persistence -----

    /// The group's metadata record value.
    pub fn to_record(&self) -> GroupValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type().to_string(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberValue {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its last metadata record, as Kafka does when it loads
    /// `__consumer_offsets`: members are back with their assignments and must heartbeat within
    /// their session timeout.
    pub fn restore(&mut self, value: GroupValue, now_ms: i64) {
        let protocol = value.protocol.clone().unwrap_or_default();
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.generation_id = value.generation;
        self.protocol_name = value.protocol;
        self.leader_id = value.leader;
        self.members.clear();
        self.static_members.clear();
        for m in value.members {
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            self.members.insert(
                m.member_id,
                Member {
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    join_waiter: None,
                    join_supports_skip: false,
                    sync_waiter: None,
                    session_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
                },
            );
        }
        let state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.state = state;
        self.state_timestamp_ms = if value.current_state_timestamp_ms > 0 {
            value.current_state_timestamp_ms
        } else {
            now_ms
        };
    }
}

#[cfg(test)]
mod tests;
