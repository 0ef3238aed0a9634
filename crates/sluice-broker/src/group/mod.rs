//! The group coordinator: classic consumer groups and committed offsets.
//!
//! Owns every group's state ([`state::Group`], one lock per group, never held across an await),
//! persists offsets and group metadata as records in the compacted internal topic
//! `__consumer_offsets` (Kafka's record formats, [`records`]), rebuilds everything from that topic
//! when the broker opens, and runs the timers (session and rebalance timeouts, the initial
//! rebalance delay, offset retention) from one periodic task, [`run_timers`].
//!
//! A single node coordinates every group; the partition of `__consumer_offsets` a group lives in
//! is still chosen as Kafka does, so that the layout is ready for coordinator fail-over.

pub mod consumer;
pub mod records;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;

use crate::broker::{Broker, Topic};
use crate::error::ApiError;
use crate::partition::Partition;
use records::{GroupValue, OffsetValue, RecordKey};
use state::Group;
pub use state::{
    GroupConfig, GroupState, JoinRequest, JoinResponse, MemberSummary, Reply, SyncRequest,
    SyncResponse,
};

/// The internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often the timers run; session and rebalance timeouts are this precise.
const TICK: Duration = Duration::from_millis(100);
/// Most groups one coordinator keeps (bounds memory against clients inventing group ids).
pub const GROUPS_MAX: usize = 1_000_000;
/// Offsets of one group by (topic, partition).
type GroupOffsets = BTreeMap<(String, i32), OffsetValue>;
/// Offsets committed by open transactions: producer id → group → offsets.
type PendingTxnOffsets = HashMap<i64, HashMap<String, GroupOffsets>>;

/// Milliseconds since the Unix epoch (the coordinator's clock, as Kafka's).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Coordinator settings beyond the group state machine's.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The state machine's limits.
    pub group: GroupConfig,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// Consumer groups of the KIP-848 protocol (`group.consumer.*`).
    pub consumer: consumer::ConsumerGroupConfig,
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Committed offsets of one group by topic: (topic, [(partition, offset if committed)]).
pub type TopicOffsets = Vec<(String, Vec<(i32, Option<FetchedOffset>)>)>;

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// Who sends a TxnOffsetCommit: the group, the transactional producer, and the consumer's
/// group metadata (member id, instance id, generation; empty / `None` / -1 when not sent).
#[derive(Debug, Clone, Copy)]
pub struct TxnCommit<'a> {
    pub group_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub member_id: &'a str,
    pub instance: Option<&'a str>,
    pub generation_id: i32,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A group as DescribeGroups shows it (`None` state when the group does not exist).
#[derive(Debug, Clone)]
pub struct DescribedGroup {
    pub state: Option<GroupState>,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// The group coordinator.
#[derive(Debug)]
pub struct GroupCoordinator {
    /// Limits and delays.
    config: CoordinatorConfig,
    /// Groups by id; each behind its own lock so groups do not wait on each other.
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    /// `__consumer_offsets`, once it exists.
    topic: RwLock<Option<Arc<Topic>>>,
    /// When offsets are next checked for expiry.
    next_retention_check_ms: Mutex<i64>,
    /// Offsets committed by transactions not yet ended (TxnOffsetCommit), by producer id; they
    /// become committed offsets when the commit marker is written, and vanish on abort.
    txn_offsets: Mutex<PendingTxnOffsets>,
    /// Membership of consumer groups (KIP-848); their offsets live in `groups`.
    pub consumer: consumer::ConsumerGroups,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned group lock means a panic mid-operation on a broken invariant; the state is
    // still a valid group (each operation leaves it so), so carry on rather than fail forever.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Topics listed in a consumer-protocol subscription (`ConsumerProtocolSubscription`: version,
/// then an array of topic names; later fields ignored). Malformed metadata lists nothing.
pub(crate) fn decode_subscription(meta: &mut Bytes) -> Vec<String> {
    let mut topics = Vec::new();
    if meta.remaining() < 6 {
        return topics;
    }
    let _version = meta.get_i16();
    let count = meta.get_i32();
    for _ in 0..count.max(0) {
        if meta.remaining() < 2 {
            break;
        }
        let len = meta.get_i16();
        if len < 0 || meta.remaining() < len as usize {
            break;
        }
        let name = meta.split_to(len as usize);
        topics.push(String::from_utf8_lossy(&name).into_owned());
    }
    topics
}

impl GroupCoordinator {
    /// A coordinator with no groups yet.
    pub fn new(config: CoordinatorConfig) -> GroupCoordinator {
        GroupCoordinator {
            next_retention_check_ms: Mutex::new(
                wall_ms() + config.offsets_retention_check_interval_ms,
            ),
            consumer: consumer::ConsumerGroups::new(config.consumer.clone(), GROUPS_MAX),
            config,
            groups: Mutex::new(HashMap::new()),
            topic: RwLock::new(None),
            txn_offsets: Mutex::new(HashMap::new()),
        }
    }

    /// The state machine's configuration.
    pub fn group_config(&self) -> &GroupConfig {
        &self.config.group
    }

    // ----- the offsets topic -----

    /// The offsets topic, created (compacted, internal) on first use as Kafka does.
    pub fn offsets_topic(&self, broker: &Broker) -> Result<Arc<Topic>, ApiError> {
        if let Some(t) = self.topic.read().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let topic = crate::internal::ensure_topic(
            broker,
            OFFSETS_TOPIC,
            self.config.offsets_topic_num_partitions,
            &self.config.offsets_topic_segment_bytes.to_string(),
        )?;
        if let Ok(mut slot) = self.topic.write() {
            *slot = Some(topic.clone());
        }
        Ok(topic)
    }

    /// Appends `records` (key, value or tombstone) for `group` to its partition of the offsets
    /// topic, as one batch.
    fn write(
        &self,
        broker: &Broker,
        group: &str,
        records: &[(Bytes, Option<Bytes>)],
    ) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let partition = self.offsets_partition(broker, group)?;
        let now = wall_ms();
        let batch = crate::internal::encode_batch(records, now, None)?;
        partition.append(&batch.freeze(), now)?;
        broker.data_arrived.notify_waiters();
        Ok(())
    }

    /// The partition of the offsets topic that holds `group`.
    fn offsets_partition(&self, broker: &Broker, group: &str) -> Result<Arc<Partition>, ApiError> {
        let topic = self.offsets_topic(broker)?;
        let index = records::partition_for(group, topic.partitions.len() as i32);
        // Another broker leads the group's partition: the client looks the coordinator up again.
        topic.partition(index).cloned().ok_or_else(|| {
            ApiError::new(
                ResponseError::NotCoordinator,
                "this broker does not host the group's partition",
            )
        })
    }

    /// Persists the group's metadata if an operation changed it.
    fn persist_if_dirty(&self, broker: &Broker, group: &mut Group) {
        if !group.take_dirty() {
            return;
        }
        let key = RecordKey::Group {
            group: group.id.clone(),
        }
        .encode();
        let value = group.to_record().encode();
        if let Err(e) = self.write(broker, &group.id.clone(), &[(key, Some(value))]) {
            tracing::error!(group = %group.id, error = %e, "cannot persist group metadata");
        }
    }

    /// Rebuilds offsets and groups from the offsets topic. Called once, as the broker opens.
    /// Transactional offset commits count once their commit marker is read; those of
    /// transactions still open stay pending until the transaction coordinator ends them.
    pub fn load(&self, topic: Arc<Topic>) -> Result<(), ApiError> {
        let mut offsets: HashMap<String, BTreeMap<(String, i32), OffsetValue>> = HashMap::new();
        let mut metadata: HashMap<String, Option<GroupValue>> = HashMap::new();
        let mut loaded = 0usize;
        let mut open_txns = lock(&self.txn_offsets);
        for partition in topic.hosted() {
            // Per producer id: the offsets its open transaction committed in this partition.
            let mut pending: PendingTxnOffsets = HashMap::new();
            loaded += crate::internal::for_each_record(partition, |record| {
                if let Some(commit) = crate::internal::marker_commits(record) {
                    let ended = pending.remove(&record.producer_id).unwrap_or_default();
                    if commit {
                        for (group, committed) in ended {
                            offsets.entry(group).or_default().extend(committed);
                        }
                    }
                } else if record.transactional {
                    let by_group = pending.entry(record.producer_id).or_default();
                    apply_txn_record(record, by_group);
                } else if !record.control {
                    apply_record(record, &mut offsets, &mut metadata);
                }
            })?;
            for (pid, by_group) in pending {
                open_txns.entry(pid).or_default().extend(by_group);
            }
        }
        drop(open_txns);
        let now = wall_ms();
        let mut groups = lock(&self.groups);
        let ids: Vec<String> = offsets.keys().chain(metadata.keys()).cloned().collect();
        for id in ids {
            if groups.contains_key(&id) {
                continue;
            }
            let mut group = Group::new(&id, now);
            if let Some(Some(value)) = metadata.remove(&id) {
                group.restore(value, now);
            }
            for ((t, p), o) in offsets.remove(&id).unwrap_or_default() {
                group.set_offset(&t, p, o);
            }
            if !group.is_vacant() || group.protocol_type() != "" {
                groups.insert(id, Arc::new(Mutex::new(group)));
            }
        }
        tracing::info!(
            records = loaded,
            groups = groups.len(),
            "loaded {OFFSETS_TOPIC}"
        );
        drop(groups);
        if let Ok(mut slot) = self.topic.write() {
            *slot = Some(topic);
        }
        Ok(())
    }

    // ----- group lookup -----

    fn group(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        lock(&self.groups).get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> Result<Arc<Mutex<Group>>, ResponseError> {
        let mut groups = lock(&self.groups);
        if let Some(g) = groups.get(id) {
            return Ok(g.clone());
        }
        if groups.len() >= GROUPS_MAX {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let g = Arc::new(Mutex::new(Group::new(id, wall_ms())));
        groups.insert(id.to_string(), g.clone());
        Ok(g)
    }

    /// Whether a classic group with members has this id.
    pub fn classic_has_members(&self, id: &str) -> bool {
        self.group(id).is_some_and(|g| lock(&g).member_count() > 0)
    }

    /// Whether a classic group (or a group holding only offsets) has this id.
    pub fn classic_exists(&self, id: &str) -> bool {
        self.group(id)
            .is_some_and(|g| lock(&g).state() != GroupState::Dead)
    }

    /// Checks the group id and makes sure the offsets topic exists.
    fn ready(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.offsets_topic(broker)
            .map(|_| ())
            .map_err(|_| ResponseError::CoordinatorNotAvailable)
    }

    // ----- membership -----

    /// JoinGroup; waits (without blocking other connections) until the join phase completes.
    pub async fn join(&self, broker: &Broker, group_id: &str, req: JoinRequest) -> JoinResponse {
        let member_id = req.member_id.clone();
        let failed = |e: ResponseError| JoinResponse {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.clone(),
            ..JoinResponse::default()
        };
        if let Err(e) = self.ready(broker, group_id) {
            return failed(e);
        }
        // A consumer group (KIP-848) with members holds the id; an empty one gives way.
        if self.consumer.remove_if_empty(group_id).is_err() {
            return failed(ResponseError::InconsistentGroupProtocol);
        }
        let group = if req.member_id.is_empty() {
            match self.group_or_create(group_id) {
                Ok(g) => g,
                Err(e) => return failed(e),
            }
        } else {
            match self.group(group_id) {
                Some(g) => g,
                None => return failed(ResponseError::UnknownMemberId),
            }
        };
        let reply = {
            let mut g = lock(&group);
            let reply = g.join(req, wall_ms(), &self.config.group);
            self.persist_if_dirty(broker, &mut g);
            reply
        };
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx
                .await
                .unwrap_or_else(|_| failed(ResponseError::CoordinatorNotAvailable)),
        }
    }

    /// SyncGroup; the followers wait for the leader's assignment.
    pub async fn sync(&self, broker: &Broker, group_id: &str, req: SyncRequest) -> SyncResponse {
        let failed = |e: ResponseError| SyncResponse {
            error: Some(e),
            ..SyncResponse::default()
        };
        if let Err(e) = self.ready(broker, group_id) {
            return failed(e);
        }
        let Some(group) = self.group(group_id) else {
            return failed(ResponseError::UnknownMemberId);
        };
        let reply = {
            let mut g = lock(&group);
            let reply = g.sync(req, wall_ms());
            self.persist_if_dirty(broker, &mut g);
            reply
        };
        match reply {
            Reply::Now(r) => r,
            Reply::Later(rx) => rx
                .await
                .unwrap_or_else(|_| failed(ResponseError::RebalanceInProgress)),
        }
    }

    /// Heartbeat; `None` is success.
    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        if let Err(e) = self.ready(broker, group_id) {
            return Some(e);
        }
        let Some(group) = self.group(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let mut g = lock(&group);
        g.heartbeat(member_id, instance, generation_id, wall_ms())
    }

    /// LeaveGroup for each (member id, instance id); the error of each, `None` for success.
    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.ready(broker, group_id)?;
        let Some(group) = self.group(group_id) else {
            return Ok(vec![Some(ResponseError::UnknownMemberId); members.len()]);
        };
        let mut g = lock(&group);
        let now = wall_ms();
        let results = members
            .iter()
            .map(|(id, instance)| g.leave(id, instance.as_deref(), now, &self.config.group))
            .collect();
        self.persist_if_dirty(broker, &mut g);
        Ok(results)
    }

    // ----- offsets -----

    /// OffsetCommit: validates the member, persists the offsets as one batch, then records
    /// them. Returns one error (or `None`) per partition, in order.
    pub fn commit(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        partitions: &[CommitPartition],
    ) -> Vec<Option<ResponseError>> {
        let all = |e: ResponseError| vec![Some(e); partitions.len()];
        if let Err(e) = self.ready(broker, group_id) {
            return all(e);
        }
        // Members of a consumer group (KIP-848) commit with their member epoch.
        let consumer = self
            .consumer
            .validate_commit(group_id, member_id, generation_id);
        if let Some(Err(e)) = consumer {
            return all(e);
        }
        let group = if consumer.is_some() || generation_id < 0 {
            self.group_or_create(group_id)
        } else {
            // Kafka: a generation-checked commit to a group that does not exist.
            self.group(group_id).ok_or(ResponseError::IllegalGeneration)
        };
        let group = match group {
            Ok(g) => g,
            Err(e) => return all(e),
        };
        let mut g = lock(&group);
        let now = wall_ms();
        if consumer.is_none() {
            if let Err(e) = g.validate_commit(member_id, instance, generation_id, now) {
                return all(e);
            }
        }
        let (mut results, accepted, batch) = self.offset_records(broker, group_id, partitions, now);
        if let Err(e) = self.write(broker, group_id, &batch) {
            tracing::error!(group = group_id, error = %e, "cannot persist offsets");
            for (i, _) in &accepted {
                results[*i] = Some(ResponseError::CoordinatorNotAvailable);
            }
            return results;
        }
        for (i, value) in accepted {
            let p = &partitions[i];
            g.set_offset(&p.topic, p.partition, value);
        }
        results
    }

    /// The partition index of `__consumer_offsets` that holds `group` (creating the topic).
    pub fn partition_index(&self, broker: &Broker, group: &str) -> Result<i32, ApiError> {
        let topic = self.offsets_topic(broker)?;
        Ok(records::partition_for(group, topic.partitions.len() as i32))
    }

    /// TxnOffsetCommit: checks the member as Kafka does for transactional commits, writes the
    /// offsets as a transactional batch of the producer (an older epoch is fenced by the log),
    /// and keeps them pending until the transaction ends ([`Self::complete_txn`]). The caller
    /// has checked that the transaction holds the group's offsets partition.
    pub fn txn_commit(
        &self,
        broker: &Broker,
        txn: &TxnCommit<'_>,
        partitions: &[CommitPartition],
    ) -> Vec<Option<ResponseError>> {
        let all = |e: ResponseError| vec![Some(e); partitions.len()];
        if let Err(e) = self.ready(broker, txn.group_id) {
            return all(e);
        }
        let group = match self.group_or_create(txn.group_id) {
            Ok(g) => g,
            Err(e) => return all(e),
        };
        // Members of a consumer group (KIP-848) commit with their member epoch; clients of
        // TxnOffsetCommit know a stale one as ILLEGAL_GENERATION.
        let consumer =
            self.consumer
                .validate_commit(txn.group_id, txn.member_id, txn.generation_id);
        if let Some(Err(e)) = consumer {
            return all(match e {
                ResponseError::StaleMemberEpoch => ResponseError::IllegalGeneration,
                e => e,
            });
        }
        let g = lock(&group);
        if consumer.is_none() {
            if let Err(e) = g.validate_txn_commit(txn.member_id, txn.instance, txn.generation_id) {
                return all(e);
            }
        }
        let now = wall_ms();
        let (mut results, accepted, batch) =
            self.offset_records(broker, txn.group_id, partitions, now);
        let written = self
            .offsets_partition(broker, txn.group_id)
            .and_then(|partition| {
                let mut records = crate::internal::encode_batch(
                    &batch,
                    now,
                    Some((txn.producer_id, txn.producer_epoch)),
                )?;
                partition.append_from_coordinator(&mut records, now)
            });
        if let Err(e) = written {
            tracing::debug!(group = txn.group_id, error = %e, "transactional offset commit refused");
            let code = match e.code {
                ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => {
                    ResponseError::ProducerFenced
                }
                _ => ResponseError::CoordinatorNotAvailable,
            };
            for (i, _) in &accepted {
                results[*i] = Some(code);
            }
            return results;
        }
        broker.data_arrived.notify_waiters();
        let mut pending = lock(&self.txn_offsets);
        let offsets = pending
            .entry(txn.producer_id)
            .or_default()
            .entry(txn.group_id.to_string())
            .or_default();
        for (i, value) in accepted {
            let p = &partitions[i];
            offsets.insert((p.topic.clone(), p.partition), value);
        }
        results
    }

    /// Ends producer `producer_id`'s transaction in partition `index` of `__consumer_offsets`
    /// after its marker was written: on commit its pending offsets become the groups' committed
    /// offsets, on abort they are dropped.
    pub fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        let partitions = match self.topic.read().ok().and_then(|t| t.clone()) {
            Some(t) => t.partitions.len() as i32,
            None => return,
        };
        let ended: Vec<(String, GroupOffsets)> = {
            let mut pending = lock(&self.txn_offsets);
            let Some(by_group) = pending.get_mut(&producer_id) else {
                return;
            };
            let groups: Vec<String> = by_group
                .keys()
                .filter(|g| records::partition_for(g, partitions) == index)
                .cloned()
                .collect();
            let ended = groups
                .into_iter()
                .filter_map(|g| by_group.remove_entry(&g))
                .collect();
            if by_group.is_empty() {
                pending.remove(&producer_id);
            }
            ended
        };
        if !commit {
            return;
        }
        for (group_id, offsets) in ended {
            let Ok(group) = self.group_or_create(&group_id) else {
                continue;
            };
            let mut g = lock(&group);
            for ((topic, partition), value) in offsets {
                g.set_offset(&topic, partition, value);
            }
        }
    }

    /// Whether an open transaction has committed an offset for this partition of `group`
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        lock(&self.txn_offsets)
            .values()
            .any(|by_group| by_group.get(group).is_some_and(|o| o.contains_key(&key)))
    }

    /// Checks each partition of a commit and encodes the accepted ones: (result per partition,
    /// the accepted ones with their values, the records to write).
    #[allow(clippy::type_complexity)]
    fn offset_records(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[CommitPartition],
        now: i64,
    ) -> (
        Vec<Option<ResponseError>>,
        Vec<(usize, OffsetValue)>,
        Vec<(Bytes, Option<Bytes>)>,
    ) {
        let mut results = Vec::with_capacity(partitions.len());
        let mut accepted = Vec::with_capacity(partitions.len());
        let mut batch = Vec::with_capacity(partitions.len());
        let image = broker.image();
        for p in partitions {
            if !image.has_partition(&p.topic, p.partition) {
                results.push(Some(ResponseError::UnknownTopicOrPartition));
            } else if p.metadata.len() > self.config.group.offset_metadata_max_bytes {
                results.push(Some(ResponseError::OffsetMetadataTooLarge));
            } else {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone(),
                    commit_timestamp_ms: now,
                };
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: p.topic.clone(),
                    partition: p.partition,
                };
                batch.push((key.encode(), Some(value.encode())));
                accepted.push((results.len(), value));
                results.push(None);
            }
        }
        (results, accepted, batch)
    }

    /// OffsetFetch of one group: `None` topics means every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> TopicOffsets {
        let group = self.group(group_id);
        let g = group.as_ref().map(|g| lock(g));
        let fetched = |o: &OffsetValue| FetchedOffset {
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(t, parts)| {
                    let parts = parts
                        .iter()
                        .map(|p| (*p, g.as_ref().and_then(|g| g.offset(t, *p)).map(fetched)))
                        .collect();
                    (t.clone(), parts)
                })
                .collect(),
            None => {
                let mut out: TopicOffsets = Vec::new();
                for ((t, p), o) in g.iter().flat_map(|g| g.offsets().iter()) {
                    match out.last_mut() {
                        Some((last, parts)) if last == t => parts.push((*p, Some(fetched(o)))),
                        _ => out.push((t.clone(), vec![(*p, Some(fetched(o)))])),
                    }
                }
                out
            }
        }
    }

    /// OffsetDelete: forgets committed offsets of partitions the group does not consume.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        self.ready(broker, group_id)?;
        let group = self.group(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut g = lock(&group);
        match g.state() {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ if g.protocol_type() != "consumer" => return Err(ResponseError::NonEmptyGroup),
            _ => {}
        }
        let subscribed = g.subscribed_topics().unwrap_or_default();
        let mut results = Vec::with_capacity(partitions.len());
        let mut batch = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if subscribed.contains(t) {
                results.push(Some(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            results.push(None);
            if g.offset(t, *p).is_some() {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: t.clone(),
                    partition: *p,
                };
                batch.push((key.encode(), None));
                removed.push((t.clone(), *p));
            }
        }
        self.write(broker, group_id, &batch)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        for (t, p) in removed {
            g.remove_offset(&t, p);
        }
        Ok(results)
    }

    // ----- admin -----

    /// Every group, optionally only those in `states` (matched case-insensitively).
    pub fn list(&self, states: &[String]) -> Vec<ListedGroup> {
        let groups: Vec<Arc<Mutex<Group>>> = lock(&self.groups).values().cloned().collect();
        let mut out: Vec<ListedGroup> = groups
            .iter()
            .map(|g| {
                let g = lock(g);
                ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type().to_string(),
                    state: g.state(),
                }
            })
            .filter(|l| l.state != GroupState::Dead)
            .filter(|l| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(l.state.name()))
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups of one group.
    pub fn describe(&self, group_id: &str) -> DescribedGroup {
        match self.group(group_id) {
            Some(g) => {
                let (state, protocol_type, protocol, members) = lock(&g).describe();
                DescribedGroup {
                    state: Some(state),
                    protocol_type,
                    protocol,
                    members,
                }
            }
            None => DescribedGroup {
                state: None,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups of one group: only an empty group, with tombstones for its offsets and
    /// metadata.
    pub fn delete_group(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        self.ready(broker, group_id)?;
        let consumer_removed = self.consumer.remove_if_empty(group_id)?;
        let mut groups = lock(&self.groups);
        let group = match groups.get(group_id).cloned() {
            Some(g) => g,
            None if consumer_removed => return Ok(()),
            None => return Err(ResponseError::GroupIdNotFound),
        };
        let mut g = lock(&group);
        match g.state() {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        let mut batch: Vec<(Bytes, Option<Bytes>)> = g
            .offsets()
            .keys()
            .map(|(t, p)| {
                let key = RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: t.clone(),
                    partition: *p,
                };
                (key.encode(), None)
            })
            .collect();
        batch.push((
            RecordKey::Group {
                group: group_id.to_string(),
            }
            .encode(),
            None,
        ));
        self.write(broker, group_id, &batch)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)?;
        g.mark_dead(wall_ms());
        groups.remove(group_id);
        Ok(())
    }

    // ----- timers -----

    /// Runs every group's timers, and the offset-retention pass when it is due.
    pub fn tick(&self, broker: &Broker, now_ms: i64) {
        let groups: Vec<Arc<Mutex<Group>>> = lock(&self.groups).values().cloned().collect();
        for group in &groups {
            let mut g = lock(group);
            g.tick(now_ms, &self.config.group);
            self.persist_if_dirty(broker, &mut g);
        }
        self.consumer.tick(broker, now_ms);
        let due = {
            let mut next = lock(&self.next_retention_check_ms);
            let due = now_ms >= *next;
            if due {
                *next = now_ms + self.config.offsets_retention_check_interval_ms;
            }
            due
        };
        if due {
            self.expire_offsets(broker, now_ms);
        }
    }

    /// Deletes expired offsets (tombstones) and forgets groups left with nothing.
    fn expire_offsets(&self, broker: &Broker, now_ms: i64) {
        let mut groups = lock(&self.groups);
        let mut vacant = Vec::new();
        for (id, group) in groups.iter() {
            let mut g = lock(group);
            let expired = g.expire_offsets(now_ms, self.config.group.offsets_retention_ms);
            let mut batch: Vec<(Bytes, Option<Bytes>)> = expired
                .into_iter()
                .map(|(topic, partition)| {
                    let key = RecordKey::Offset {
                        group: id.clone(),
                        topic,
                        partition,
                    };
                    (key.encode(), None)
                })
                .collect();
            if g.is_vacant() {
                batch.push((RecordKey::Group { group: id.clone() }.encode(), None));
                g.mark_dead(now_ms);
                vacant.push(id.clone());
            }
            if !batch.is_empty() {
                tracing::info!(group = %id, records = batch.len(), "expired offsets");
            }
            if let Err(e) = self.write(broker, id, &batch) {
                tracing::error!(group = %id, error = %e, "cannot write offset tombstones");
            }
        }
        for id in vacant {
            groups.remove(&id);
        }
    }
}

/// Applies one record of a transactional offset commit to its producer's pending offsets.
fn apply_txn_record(record: &Record, by_group: &mut HashMap<String, GroupOffsets>) {
    let Some(Ok(RecordKey::Offset {
        group,
        topic,
        partition,
    })) = record.key.clone().map(RecordKey::decode)
    else {
        return;
    };
    match record.value.clone().map(OffsetValue::decode) {
        Some(Ok(v)) => {
            by_group
                .entry(group)
                .or_default()
                .insert((topic, partition), v);
        }
        Some(Err(e)) => tracing::warn!(error = %e, "skipping transactional offset record"),
        None => {}
    }
}

/// Applies one loaded record to the maps being rebuilt (later records win; null values delete).
fn apply_record(
    record: &Record,
    offsets: &mut HashMap<String, BTreeMap<(String, i32), OffsetValue>>,
    metadata: &mut HashMap<String, Option<GroupValue>>,
) {
    let Some(key) = record.key.clone() else {
        return;
    };
    let key = match RecordKey::decode(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!(error = %e, offset = record.offset, "skipping record");
            return;
        }
    };
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            let entry = offsets.entry(group).or_default();
            match record.value.clone().map(OffsetValue::decode) {
                None => {
                    entry.remove(&(topic, partition));
                }
                Some(Ok(v)) => {
                    entry.insert((topic, partition), v);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "skipping offset record"),
            }
        }
        RecordKey::Group { group } => match record.value.clone().map(GroupValue::decode) {
            None => {
                metadata.insert(group.clone(), None);
                // A group tombstone follows its offsets' tombstones; drop any left.
                offsets.remove(&group);
            }
            Some(Ok(v)) => {
                metadata.insert(group, Some(v));
            }
            Some(Err(e)) => tracing::warn!(error = %e, "skipping group record"),
        },
    }
}

/// Runs the coordinator's timers until the task is aborted.
pub async fn run_timers(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        broker.groups.tick(&broker, wall_ms());
    }
}

/// The coordinator's settings from the broker configuration.
pub fn coordinator_config(config: &crate::config::BrokerConfig) -> CoordinatorConfig {
    CoordinatorConfig {
        group: GroupConfig {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            max_size: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
            offset_metadata_max_bytes: usize::try_from(config.offset_metadata_max_bytes)
                .unwrap_or(0),
            offsets_retention_ms: config.offsets_retention_minutes.saturating_mul(60_000),
        },
        offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        offsets_topic_segment_bytes: config.offsets_topic_segment_bytes,
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
        consumer: config.group_consumer.clone(),
    }
}
