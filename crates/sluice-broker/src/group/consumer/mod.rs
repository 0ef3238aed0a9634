//! Consumer groups of the KIP-848 protocol (ConsumerGroupHeartbeat, ConsumerGroupDescribe),
//! as Kafka 4.1's group coordinator runs them.
//!
//! The group holds a group epoch (bumped whenever a subscription, a member or the subscribed
//! topics' partitions change), a target assignment computed by a server-side assignor for the
//! latest epoch, and per member its epoch and current assignment. Each heartbeat moves its
//! member one step towards the target ([`member::reconcile`], Kafka's CurrentAssignmentBuilder):
//! partitions leave a member first (it must stop owning them: UNREVOKED_PARTITIONS) and reach
//! the next owner only once released (UNRELEASED_PARTITIONS until then).
//!
//! Committed offsets of these groups stay with the classic coordinator's group of the same id
//! (so they persist and load exactly as before); membership lives here, in memory: after a
//! restart members get UNKNOWN_MEMBER_ID and rejoin with epoch 0, as after a coordinator
//! fail-over.

pub mod assignor;
mod member;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

pub use assignor::{Assignment, Assignor};
pub use member::{Member, MemberState};

/// Member epoch of a leave request.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member's temporary leave.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// Longest `subscribed_topic_regex` accepted (bounds the compiled automaton).
const REGEX_LEN_MAX: usize = 4096;
/// Compiled-regex size limit in bytes.
const REGEX_SIZE_MAX: usize = 1 << 20;
/// Most topics one member may subscribe to by name.
const SUBSCRIBED_TOPICS_MAX: usize = 100_000;
/// How often subscribed regexes are resolved again, to find new topics.
const REGEX_REFRESH_INTERVAL_MS: i64 = 1_000;

/// An error answered to a client: the code and Kafka's message.
pub type GroupError = (ResponseError, String);

fn err(code: ResponseError, message: impl Into<String>) -> GroupError {
    (code, message.into())
}

/// Settings of consumer groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<Assignor>,
    /// `group.consumer.max.size`.
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            assignors: vec![Assignor::Uniform, Assignor::Range],
            max_size: i32::MAX as usize,
        }
    }
}

/// What the coordinator needs to know about topics: id and partition count by name.
pub trait TopicLookup {
    /// The topic's id and partition count, if it exists.
    fn topic(&self, name: &str) -> Option<(Uuid, i32)>;
    /// The topic's name, if a topic with that id exists.
    fn topic_name(&self, id: Uuid) -> Option<String>;
    /// Names of every non-internal topic (for regex subscriptions).
    fn topic_names(&self) -> Vec<String>;
}

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when not sent.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns, by topic id; `None` when not sent.
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    /// The request's API version.
    pub version: i16,
}

/// A successful ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the request was a full one.
    pub assignment: Option<Assignment>,
}

/// The group's state as ListGroups and ConsumerGroupDescribe show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// One consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    /// Group id.
    pub id: String,
    /// The group epoch: bumped on every change that needs a new target assignment.
    pub epoch: i32,
    /// The epoch the target assignment was computed for (≤ `epoch`).
    pub assignment_epoch: i32,
    /// Members by member id.
    members: BTreeMap<String, Member>,
    /// Member id of each static member, by instance id.
    static_members: HashMap<String, String>,
    /// Target assignment by member id.
    target: BTreeMap<String, Assignment>,
    /// Subscribed topics that exist: name → (id, partition count), as last computed.
    subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    /// Which member owns (is assigned, or has not yet revoked) each partition.
    owners: HashMap<(Uuid, i32), String>,
    /// Topics each subscribed regex matched when last resolved, by pattern.
    resolved_regexes: BTreeMap<String, BTreeSet<String>>,
    /// When the regexes are next resolved again (new topics).
    regex_refresh_due_ms: i64,
}

impl ConsumerGroup {
    fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            target: BTreeMap::new(),
            subscribed_topics: BTreeMap::new(),
            owners: HashMap::new(),
            resolved_regexes: BTreeMap::new(),
            regex_refresh_due_ms: 0,
        }
    }

    /// The group's state, as Kafka's ConsumerGroup.maybeUpdateGroupState.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Members by member id.
    pub fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    /// A member's target assignment.
    pub fn target_of(&self, member_id: &str) -> Assignment {
        self.target.get(member_id).cloned().unwrap_or_default()
    }

    /// Topics any member subscribes to (by name or regex) that exist.
    pub fn subscribed_topic_names(&self) -> Vec<String> {
        self.subscribed_topics.keys().cloned().collect()
    }

    /// Whether any partition is owned by someone other than `member_id`.
    fn owned_by_other(&self, member_id: &str, tp: (Uuid, i32)) -> bool {
        self.owners.get(&tp).is_some_and(|o| o != member_id)
    }

    /// Replaces `member_id`'s entry (or inserts it), keeping the owners map in step.
    fn put_member(&mut self, member: Member) {
        if let Some(old) = self.members.get(&member.id) {
            for tp in old.owned_partitions() {
                if self.owners.get(&tp) == Some(&member.id) {
                    self.owners.remove(&tp);
                }
            }
        }
        for tp in member.owned_partitions() {
            self.owners.insert(tp, member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member and bumps the group epoch (Kafka's consumerGroupFenceMember).
    fn remove_member(&mut self, member_id: &str, topics: &dyn TopicLookup) {
        let Some(old) = self.members.remove(member_id) else {
            return;
        };
        for tp in old.owned_partitions() {
            if self.owners.get(&tp).map(String::as_str) == Some(member_id) {
                self.owners.remove(&tp);
            }
        }
        if let Some(instance) = &old.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        self.forget_unused_regexes();
        self.subscribed_topics = self.compute_subscribed_topics(topics);
        self.epoch += 1;
    }

    /// Drops the resolution of regexes no member subscribes with any more (a regex subscribed
    /// again later is resolved afresh, after the heartbeat that brings it).
    fn forget_unused_regexes(&mut self) {
        let used: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.as_ref().map(|r| &r.0))
            .collect();
        self.resolved_regexes.retain(|p, _| used.contains(p));
    }

    /// Subscribed topics (names, and the resolved matches of every member's regex) that exist.
    fn compute_subscribed_topics(&self, topics: &dyn TopicLookup) -> BTreeMap<String, (Uuid, i32)> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for m in self.members.values() {
            names.extend(m.subscribed_topic_names.iter().map(String::as_str));
            if let Some(matched) = self.resolved(m) {
                names.extend(matched.iter().map(String::as_str));
            }
        }
        names
            .into_iter()
            .filter_map(|name| topics.topic(name).map(|t| (name.to_string(), t)))
            .collect()
    }

    /// The topics `m`'s regex matched when it was last resolved (`None`: no regex, or not
    /// resolved yet).
    fn resolved(&self, m: &Member) -> Option<&BTreeSet<String>> {
        let (pattern, _) = m.subscribed_topic_regex.as_ref()?;
        self.resolved_regexes.get(pattern)
    }

    /// Resolves the members' regexes against the topics, as Kafka does asynchronously to the
    /// heartbeats (a new regex's topics are assigned from a later heartbeat on): new patterns at
    /// once, all of them every [`REGEX_REFRESH_INTERVAL_MS`]. Bumps the group epoch when the
    /// subscribed topics change. Returns whether they did.
    fn resolve_regexes(&mut self, topics: &dyn TopicLookup, now_ms: i64) -> bool {
        let patterns: BTreeMap<String, regex::Regex> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        self.resolved_regexes
            .retain(|p, _| patterns.contains_key(p));
        let pending = patterns
            .keys()
            .any(|p| !self.resolved_regexes.contains_key(p));
        if patterns.is_empty() || (!pending && now_ms < self.regex_refresh_due_ms) {
            return false;
        }
        let names = topics.topic_names();
        for (pattern, re) in &patterns {
            let matched = names.iter().filter(|n| re.is_match(n)).cloned().collect();
            self.resolved_regexes.insert(pattern.clone(), matched);
        }
        self.regex_refresh_due_ms = now_ms + REGEX_REFRESH_INTERVAL_MS;
        let subscribed = self.compute_subscribed_topics(topics);
        if subscribed == self.subscribed_topics {
            return false;
        }
        self.subscribed_topics = subscribed;
        self.epoch += 1;
        true
    }

    /// Topic ids `m` subscribes to, among the group's subscribed topics.
    fn member_topic_ids(&self, m: &Member) -> BTreeSet<Uuid> {
        let matched = self.resolved(m);
        self.subscribed_topics
            .iter()
            .filter(|(name, _)| {
                m.subscribed_topic_names.contains(name)
                    || matched.is_some_and(|r| r.contains(*name))
            })
            .map(|(_, (id, _))| *id)
            .collect()
    }

    /// Recomputes the target assignment for the current epoch.
    fn update_target(&mut self, assignor: Assignor) {
        let specs: Vec<assignor::MemberSpec> = self
            .members
            .values()
            .map(|m| assignor::MemberSpec {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                topics: self.member_topic_ids(m),
                previous: self.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        let topics: BTreeMap<Uuid, i32> = self.subscribed_topics.values().copied().collect();
        self.target = assignor::assign(assignor, &specs, &topics);
        self.assignment_epoch = self.epoch;
    }

    /// The assignor for the next target assignment: the one members ask for most (ties by
    /// name), else the configured default (Kafka's ConsumerGroup.preferredServerAssignor).
    fn assignor(&self, config: &ConsumerGroupConfig) -> Assignor {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor {
                *counts.entry(a.name()).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .and_then(|(name, _)| Assignor::from_name(name))
            .or_else(|| config.assignors.first().copied())
            .unwrap_or(Assignor::Uniform)
    }

    /// The assignor the group uses now, for ConsumerGroupDescribe.
    pub fn assignor_name(&self, config: &ConsumerGroupConfig) -> &'static str {
        self.assignor(config).name()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every consumer group of the coordinator.
#[derive(Debug)]
pub struct ConsumerGroups {
    /// Settings.
    pub config: ConsumerGroupConfig,
    /// Groups by id, each behind its own lock.
    groups: Mutex<HashMap<String, Arc<Mutex<ConsumerGroup>>>>,
    /// Most groups kept (the classic coordinator's bound).
    groups_max: usize,
}

impl ConsumerGroups {
    /// No groups yet.
    pub fn new(config: ConsumerGroupConfig, groups_max: usize) -> ConsumerGroups {
        ConsumerGroups {
            config,
            groups: Mutex::new(HashMap::new()),
            groups_max,
        }
    }

    /// The group, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Mutex<ConsumerGroup>>> {
        lock(&self.groups).get(id).cloned()
    }

    /// Whether a consumer group with members has this id.
    pub fn has_members(&self, id: &str) -> bool {
        self.get(id).is_some_and(|g| !lock(&g).members.is_empty())
    }

    /// Forgets a group if it has no members; `Err(NON_EMPTY_GROUP)` if it has.
    pub fn remove_if_empty(&self, id: &str) -> Result<bool, ResponseError> {
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get(id) else {
            return Ok(false);
        };
        if !lock(g).members.is_empty() {
            return Err(ResponseError::NonEmptyGroup);
        }
        groups.remove(id);
        Ok(true)
    }

    /// Every group's (id, state).
    pub fn list(&self) -> Vec<(String, ConsumerGroupState)> {
        let groups: Vec<Arc<Mutex<ConsumerGroup>>> = lock(&self.groups).values().cloned().collect();
        groups
            .iter()
            .map(|g| {
                let g = lock(g);
                (g.id.clone(), g.state())
            })
            .collect()
    }

    /// Whether `member_id` is a member of consumer group `group_id`.
    pub fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.get(group_id)
            .is_some_and(|g| lock(&g).members.contains_key(member_id))
    }

    /// Validates an OffsetCommit's member id and epoch against a consumer group, as Kafka's
    /// ConsumerGroup.validateOffsetCommit. `None` when no consumer group has this id (the
    /// classic rules apply).
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Option<Result<(), ResponseError>> {
        let group = self.get(group_id)?;
        let g = lock(&group);
        if member_epoch < 0 && g.members.is_empty() {
            return Some(Ok(()));
        }
        let Some(m) = g.members.get(member_id) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        if m.epoch != member_epoch {
            return Some(Err(ResponseError::StaleMemberEpoch));
        }
        Some(Ok(()))
    }

    /// Validates an OffsetFetch's member id and epoch (v9+), as Kafka's validateOffsetFetch.
    pub fn validate_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        if member_id.is_none() && member_epoch < 0 {
            return Ok(());
        }
        let Some(group) = self.get(group_id) else {
            return Ok(());
        };
        let g = lock(&group);
        let Some(m) = member_id.and_then(|id| g.members.get(id)) else {
            return Err(ResponseError::UnknownMemberId);
        };
        if m.epoch != member_epoch {
            return Err(ResponseError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Checks a heartbeat request's fields (Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid).
    fn validate(&self, req: &HeartbeatRequest) -> Result<Option<regex::Regex>, GroupError> {
        let invalid = |m: &str| Err(err(ResponseError::InvalidRequest, m));
        if req.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        if req.version >= 1 && req.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        match req.member_epoch {
            e if e > 0 || e == LEAVE_GROUP_MEMBER_EPOCH => {
                if req.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
            }
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                let names = req.subscribed_topic_names.as_ref();
                if names.is_none() && req.subscribed_topic_regex.is_none() {
                    return invalid(
                        "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                    );
                }
            }
            LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                if req.member_id.is_empty() {
                    return invalid("MemberId can't be empty.");
                }
                if req.instance_id.is_none() {
                    return invalid("InstanceId can't be null.");
                }
            }
            _ => return invalid("MemberEpoch is invalid."),
        }
        if req.rebalance_timeout_ms < -1 {
            return invalid("RebalanceTimeoutMs is invalid.");
        }
        if req
            .subscribed_topic_names
            .as_ref()
            .is_some_and(|n| n.len() > SUBSCRIBED_TOPICS_MAX)
        {
            return invalid("SubscribedTopicNames has too many topics.");
        }
        if let Some(name) = &req.server_assignor {
            let known = Assignor::from_name(name).filter(|a| self.config.assignors.contains(a));
            if known.is_none() {
                let names: Vec<&str> = self.config.assignors.iter().map(|a| a.name()).collect();
                return Err(err(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {name} is not supported. Supported assignors: {}.",
                        names.join(", ")
                    ),
                ));
            }
        }
        match &req.subscribed_topic_regex {
            None => Ok(None),
            Some(re) => compile_regex(re).map(Some),
        }
    }

    /// ConsumerGroupHeartbeat for `group_id`. `classic_busy` says whether a classic group with
    /// members has this id (then the id is taken).
    pub fn heartbeat(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        classic_busy: bool,
        topics: &dyn TopicLookup,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, GroupError> {
        if group_id.is_empty() {
            return Err(err(
                ResponseError::InvalidRequest,
                "GroupId can't be empty.",
            ));
        }
        let regex = self.validate(&req)?;
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(group_id, &req, topics);
        }
        let group = if req.member_epoch == 0 {
            if classic_busy {
                return Err(err(
                    ResponseError::GroupIdNotFound,
                    format!("Group {group_id} is not a consumer group."),
                ));
            }
            self.get_or_create(group_id)?
        } else {
            self.get(group_id).ok_or_else(|| {
                err(
                    ResponseError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {group_id}.",
                        req.member_id
                    ),
                )
            })?
        };
        let mut g = lock(&group);
        member::heartbeat(&mut g, req, regex, &self.config, topics, now_ms)
    }

    fn get_or_create(&self, id: &str) -> Result<Arc<Mutex<ConsumerGroup>>, GroupError> {
        let mut groups = lock(&self.groups);
        if let Some(g) = groups.get(id) {
            return Ok(g.clone());
        }
        if groups.len() >= self.groups_max {
            return Err(err(
                ResponseError::CoordinatorNotAvailable,
                "too many groups",
            ));
        }
        let g = Arc::new(Mutex::new(ConsumerGroup::new(id)));
        groups.insert(id.to_string(), g.clone());
        Ok(g)
    }

    /// A leave (epoch -1) or a static member's temporary leave (-2).
    fn leave(
        &self,
        group_id: &str,
        req: &HeartbeatRequest,
        topics: &dyn TopicLookup,
    ) -> Result<HeartbeatResponse, GroupError> {
        let unknown = || {
            err(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {group_id}.",
                    req.member_id
                ),
            )
        };
        let group = self.get(group_id).ok_or_else(unknown)?;
        let mut g = lock(&group);
        let member_id = match &req.instance_id {
            None => {
                if !g.members.contains_key(&req.member_id) {
                    return Err(unknown());
                }
                req.member_id.clone()
            }
            Some(instance) => {
                let Some(id) = g.static_members.get(instance).cloned() else {
                    return Err(err(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ));
                };
                if id != req.member_id {
                    return Err(err(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {id}.",
                            req.member_id
                        ),
                    ));
                }
                id
            }
        };
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The static member keeps its partitions until it comes back or its session
            // expires (Kafka's consumerGroupStaticMemberGroupLeave).
            if let Some(m) = g.members.get(&member_id).cloned() {
                let mut m = m;
                m.epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                m.pending_revocation.clear();
                g.put_member(m);
            }
        } else {
            tracing::info!(group = group_id, member = %member_id, "member left the consumer group");
            g.remove_member(&member_id, topics);
        }
        Ok(HeartbeatResponse {
            member_id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Fences members whose session expired or who did not revoke in time.
    pub fn tick(&self, topics: &dyn TopicLookup, now_ms: i64) {
        let groups: Vec<Arc<Mutex<ConsumerGroup>>> = lock(&self.groups).values().cloned().collect();
        for group in groups {
            let mut g = lock(&group);
            g.resolve_regexes(topics, now_ms);
            let expired: Vec<(String, &'static str)> = g
                .members
                .values()
                .filter_map(|m| m.expired(now_ms).map(|why| (m.id.clone(), why)))
                .collect();
            for (id, why) in expired {
                tracing::info!(group = %g.id, member = %id, "fenced consumer group member: {why}");
                g.remove_member(&id, topics);
            }
        }
    }
}

/// Compiles a subscription regex as a full match of the topic name (Kafka matches with
/// RE2/J's `matches()`); bad or oversized patterns are INVALID_REGULAR_EXPRESSION.
fn compile_regex(pattern: &str) -> Result<regex::Regex, GroupError> {
    let bad = |why: String| {
        err(
            ResponseError::InvalidRegularExpression,
            format!("SubscribedTopicRegex {pattern} is invalid: {why}"),
        )
    };
    if pattern.len() > REGEX_LEN_MAX {
        return Err(bad("too long".into()));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_MAX)
        .build()
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests;

impl TopicLookup for crate::broker::Broker {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        crate::broker::Broker::topic(self, name).map(|t| (t.id, t.partitions.len() as i32))
    }

    fn topic_name(&self, id: Uuid) -> Option<String> {
        self.topic_by_id(id).map(|t| t.name.clone())
    }

    fn topic_names(&self) -> Vec<String> {
        self.topics()
            .iter()
            .filter(|t| !t.is_internal())
            .map(|t| t.name.clone())
            .collect()
    }
}
