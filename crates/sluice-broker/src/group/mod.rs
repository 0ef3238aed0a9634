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

pub mod records;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::broker::{Broker, Topic};
use crate::error::ApiError;
use records::{GroupValue, OffsetValue, RecordKey};
use state::Group;
pub use state::{
    GroupConfig, GroupState, JoinRequest, JoinResponse, MemberSummary, Reply, SyncRequest,
    SyncResponse,
};

/// The internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Segment size of the offsets topic (Kafka's `offsets.topic.segment.bytes` default).
const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";
/// How often the timers run; session and rebalance timeouts are this precise.
const TICK: Duration = Duration::from_millis(100);
/// Most groups one coordinator keeps (bounds memory against clients inventing group ids).
pub const GROUPS_MAX: usize = 1_000_000;
/// Bytes read at a time when loading the offsets topic.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

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
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
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
            config,
            groups: Mutex::new(HashMap::new()),
            topic: RwLock::new(None),
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
        let topic = match broker.topic(OFFSETS_TOPIC) {
            Some(t) => t,
            None => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    (
                        "segment.bytes".to_string(),
                        OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
                    ),
                ]);
                match broker.create_topic(
                    OFFSETS_TOPIC,
                    self.config.offsets_topic_num_partitions,
                    1,
                    configs,
                ) {
                    Ok(t) => t,
                    Err(e) if e.code == ResponseError::TopicAlreadyExists => broker
                        .topic(OFFSETS_TOPIC)
                        .ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable, ""))?,
                    Err(e) => {
                        return Err(ApiError::new(
                            ResponseError::CoordinatorNotAvailable,
                            format!("cannot create {OFFSETS_TOPIC}: {e}"),
                        ))
                    }
                }
            }
        };
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
        let topic = self.offsets_topic(broker)?;
        let index = records::partition_for(group, topic.partitions.len() as i32);
        let partition = topic
            .partition(index)
            .ok_or_else(|| ApiError::new(ResponseError::CoordinatorNotAvailable, ""))?;
        let now = wall_ms();
        let batch: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now,
                key: Some(key.clone()),
                value: value.clone(),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &batch,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?;
        partition.append(&buf.freeze(), now)?;
        broker.data_arrived.notify_waiters();
        Ok(())
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
    pub fn load(&self, topic: Arc<Topic>) -> Result<(), ApiError> {
        let mut offsets: HashMap<String, BTreeMap<(String, i32), OffsetValue>> = HashMap::new();
        let mut metadata: HashMap<String, Option<GroupValue>> = HashMap::new();
        let mut loaded = 0usize;
        for partition in &topic.partitions {
            let mut next = partition.log_start_offset();
            let end = partition.high_watermark();
            while next < end {
                let info = partition.read(next, LOAD_CHUNK_BYTES, false, true)?;
                if info.slices.is_empty() {
                    break;
                }
                let mut bytes = partition.copy_slices(&info.slices)?;
                let sets = RecordBatchDecoder::decode_all(&mut bytes)
                    .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
                let before = next;
                for record in sets.iter().flat_map(|s| s.records.iter()) {
                    next = next.max(record.offset + 1);
                    if record.control {
                        continue;
                    }
                    loaded += 1;
                    apply_record(record, &mut offsets, &mut metadata);
                }
                if next == before {
                    break;
                }
            }
        }
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
        let group = if generation_id < 0 && member_id.is_empty() {
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
        if let Err(e) = g.validate_commit(member_id, instance, generation_id, now) {
            return all(e);
        }
        let mut results = Vec::with_capacity(partitions.len());
        let mut accepted = Vec::with_capacity(partitions.len());
        let mut batch = Vec::with_capacity(partitions.len());
        for p in partitions {
            let exists = broker
                .topic(&p.topic)
                .is_some_and(|t| t.partition(p.partition).is_some());
            if !exists {
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
        let mut groups = lock(&self.groups);
        let group = groups
            .get(group_id)
            .cloned()
            .ok_or(ResponseError::GroupIdNotFound)?;
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
        offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
    }
}
