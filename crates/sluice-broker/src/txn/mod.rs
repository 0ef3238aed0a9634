//! The transaction coordinator: transactional ids, their producer ids and epochs, and the state
//! of each one's current transaction (Kafka's `TransactionCoordinator` and
//! `TransactionStateManager`).
//!
//! Each transactional id's state is a record in the compacted internal topic
//! `__transaction_state` (Kafka's formats, [`records`]), in the partition Kafka would choose,
//! written before every answer that depends on it and rebuilt from the topic when the broker
//! opens. Ending a transaction writes `PrepareCommit`/`PrepareAbort`, then a commit or abort
//! marker into every partition of the transaction (for `__consumer_offsets` partitions the
//! group coordinator then applies or drops the transaction's offsets), then
//! `CompleteCommit`/`CompleteAbort`. A single node writes the markers itself, so no
//! WriteTxnMarkers round trip is needed; a marker that cannot be written leaves the
//! transaction prepared, and the timers retry it, as does a restart.
//!
//! The timers abort transactions older than their `transaction.timeout.ms`, bumping the
//! producer epoch so that the producer is fenced, and forget transactional ids unused for
//! `transactional.id.expiration.ms`.

pub mod records;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::broker::{Broker, Topic};
use crate::error::ApiError;
use crate::group::records::partition_for;
use crate::group::{wall_ms, OFFSETS_TOPIC};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Segment size of the transaction state topic (Kafka's `transaction.state.log.segment.bytes`).
const TXN_TOPIC_SEGMENT_BYTES: &str = "104857600";
/// The coordinator epoch written into markers: a single node's coordinators never move.
const COORDINATOR_EPOCH: i32 = 0;
/// Most transactional ids kept (bounds memory against clients inventing ids).
pub const TXNS_MAX: usize = 1_000_000;
/// Longest pause between timer runs.
const TICK_MAX: Duration = Duration::from_secs(1);

/// A transaction's state, with Kafka's ids (in `__transaction_state`) and names (in
/// DescribeTransactions and ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions have been added; the transaction is open.
    Ongoing,
    /// EndTxn(commit) is durable; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing InitProducerId is durable; markers are being
    /// written.
    PrepareAbort,
    /// Every commit marker is written.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The transactional id expired.
    Dead,
    /// Kafka's state while an epoch bump fences a producer; here the fence is written as
    /// `PrepareAbort` at the bumped epoch, so this state is only ever read.
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, in id order.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in `__transaction_state`.
    pub fn id(self) -> i8 {
        TxnState::ALL.iter().position(|s| *s == self).unwrap_or(0) as i8
    }

    /// The state with this stored id.
    pub fn from_id(id: i8) -> Option<TxnState> {
        usize::try_from(id)
            .ok()
            .and_then(|i| TxnState::ALL.get(i).copied())
    }

    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state with this name.
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether a new transaction (or a producer-id bump) may start from this state.
    fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Everything the coordinator knows about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// -1 until the first InitProducerId completes.
    pub producer_epoch: i16,
    /// The producer id and epoch before the last InitProducerId bump, so that a producer retrying
    /// that call with its old id and epoch (KIP-360) gets the same answer instead of being
    /// fenced. Not persisted, as in Kafka's v0 records.
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions of the open (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the open transaction started (its first AddPartitions), or -1.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMetadata {
    /// A new transactional id with its producer id, before any epoch.
    pub fn new(transactional_id: &str, producer_id: i64, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: -1,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms: 0,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// Kafka's producer checks for AddPartitions/AddOffsets/EndTxn.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if self.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if self.producer_epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// Moves to PrepareAbort at a bumped epoch, which fences the producer's current epoch
    /// (timeouts, and InitProducerId while a transaction is open).
    fn fence_and_abort(&mut self, now_ms: i64) {
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.state = TxnState::PrepareAbort;
        self.last_update_ms = now_ms;
    }
}

/// The coordinator's settings.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub num_partitions: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i64,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_interval_ms: i64,
    /// `transaction.partition.verification.enable`.
    pub verify_partitions: bool,
}

impl TxnConfig {
    /// The coordinator's settings from the broker configuration.
    pub fn from_broker(c: &crate::config::BrokerConfig) -> TxnConfig {
        TxnConfig {
            num_partitions: c.transaction_state_log_num_partitions,
            max_timeout_ms: c.transaction_max_timeout_ms,
            id_expiration_ms: c.transactional_id_expiration_ms,
            abort_interval_ms: c.transaction_abort_timed_out_interval_ms,
            remove_interval_ms: c.transaction_remove_expired_interval_ms,
            verify_partitions: c.transaction_partition_verification_enable,
        }
    }
}

/// The transaction coordinator.
#[derive(Debug)]
pub struct TxnCoordinator {
    config: TxnConfig,
    /// Transactional ids; each behind its own lock, never held across an await.
    txns: Mutex<HashMap<String, Arc<Mutex<TxnMetadata>>>>,
    /// `__transaction_state`, once it exists.
    topic: RwLock<Option<Arc<Topic>>>,
    /// When timed-out transactions are next looked for, and expired ids.
    next_abort_check_ms: Mutex<i64>,
    next_expiry_check_ms: Mutex<i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each operation leaves a transaction in a valid state before it can panic, so a poisoned
    // lock still guards consistent data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(e: ApiError) -> ResponseError {
    tracing::warn!(error = %e, "transaction coordinator write failed");
    ResponseError::CoordinatorNotAvailable
}

impl TxnCoordinator {
    /// A coordinator with no transactional ids yet.
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        let now = wall_ms();
        TxnCoordinator {
            next_abort_check_ms: Mutex::new(now + config.abort_interval_ms),
            next_expiry_check_ms: Mutex::new(now + config.remove_interval_ms),
            config,
            txns: Mutex::new(HashMap::new()),
            topic: RwLock::new(None),
        }
    }

    /// The transaction state topic, created (compacted, internal) on first use.
    pub fn state_topic(&self, broker: &Broker) -> Result<Arc<Topic>, ApiError> {
        if let Some(t) = self.topic.read().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let topic = crate::internal::ensure_topic(
            broker,
            TXN_TOPIC,
            self.config.num_partitions,
            TXN_TOPIC_SEGMENT_BYTES,
        )?;
        if let Ok(mut slot) = self.topic.write() {
            *slot = Some(topic.clone());
        }
        Ok(topic)
    }

    /// FindCoordinator for a transactional id: the state topic, once it exists (the
    /// coordinator is its partition's leader).
    pub fn find(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<Arc<Topic>, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        self.state_topic(broker)
            .map_err(|_| ResponseError::CoordinatorNotAvailable)
    }

    /// Writes a transactional id's state (or its tombstone) to its partition of the topic.
    fn persist(&self, broker: &Broker, id: &str, m: Option<&TxnMetadata>) -> Result<(), ApiError> {
        let topic = self.state_topic(broker)?;
        let index = partition_for(id, topic.partitions.len() as i32);
        let partition = topic.partition(index).ok_or_else(|| {
            ApiError::new(
                ResponseError::NotCoordinator,
                "this broker does not host the transactional id's partition",
            )
        })?;
        let now = wall_ms();
        let record = (records::encode_key(id), m.map(records::encode_value));
        let batch = crate::internal::encode_batch(&[record], now, None)?;
        partition.append(&batch.freeze(), now)?;
        Ok(())
    }

    /// Rebuilds every transactional id from the state topic, then finishes transactions a
    /// crash left prepared. Called once, as the broker opens, after the group coordinator
    /// loaded (the markers of prepared transactions complete pending offset commits).
    pub fn load(&self, broker: &Broker) -> Result<(), ApiError> {
        let Some(topic) = broker.topic(TXN_TOPIC) else {
            return Ok(());
        };
        let mut loaded: HashMap<String, Option<TxnMetadata>> = HashMap::new();
        let mut count = 0;
        for partition in topic.hosted() {
            count += crate::internal::for_each_record(partition, |record| {
                if record.control {
                    return;
                }
                let Some(Ok(id)) = record.key.clone().map(records::decode_key) else {
                    tracing::debug!(offset = record.offset, "skipping transaction state record");
                    return;
                };
                match record.value.clone() {
                    None => {
                        loaded.insert(id, None);
                    }
                    Some(value) => match records::decode_value(&id, value) {
                        Ok(m) => {
                            loaded.insert(id, Some(m));
                        }
                        Err(e) => tracing::warn!(error = %e, id, "skipping transaction state"),
                    },
                }
            })?;
        }
        let prepared: Vec<Arc<Mutex<TxnMetadata>>> = {
            let mut txns = lock(&self.txns);
            for (id, m) in loaded {
                if let Some(m) = m.filter(|m| m.state != TxnState::Dead) {
                    txns.insert(id, Arc::new(Mutex::new(m)));
                }
            }
            tracing::info!(records = count, ids = txns.len(), "loaded {TXN_TOPIC}");
            txns.values()
                .filter(|m| lock(m).state.is_prepared())
                .cloned()
                .collect()
        };
        if let Ok(mut slot) = self.topic.write() {
            *slot = Some(topic);
        }
        for m in prepared {
            let mut m = lock(&m);
            if let Err(e) = self.complete(broker, &mut m) {
                tracing::warn!(id = %m.transactional_id, error = %e, "cannot finish a prepared transaction yet; retrying later");
            }
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<TxnMetadata>>> {
        lock(&self.txns).get(id).cloned()
    }

    /// Writes the markers of a prepared transaction and completes it. On failure it stays
    /// prepared, with the partitions still lacking a marker, for the timers to retry.
    fn complete(&self, broker: &Broker, m: &mut TxnMetadata) -> Result<(), ApiError> {
        let commit = match m.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return Ok(()),
        };
        let now = wall_ms();
        let mut failed = BTreeSet::new();
        let mut first_error = None;
        for (topic, index) in &m.partitions {
            // A partition whose topic was deleted since has nothing left to mark.
            let Some(partition) = broker
                .topic(topic)
                .and_then(|t| t.partition(*index).cloned())
            else {
                continue;
            };
            match partition.write_txn_marker(
                m.producer_id,
                m.producer_epoch,
                commit,
                COORDINATOR_EPOCH,
                now,
            ) {
                Ok(()) if topic == OFFSETS_TOPIC => {
                    broker.groups.complete_txn(*index, m.producer_id, commit)
                }
                Ok(()) => {}
                Err(e) => {
                    failed.insert((topic.clone(), *index));
                    first_error.get_or_insert(e);
                }
            }
        }
        broker.data_arrived.notify_waiters();
        if let Some(e) = first_error {
            m.partitions = failed;
            return Err(e);
        }
        m.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        m.partitions.clear();
        m.last_update_ms = now;
        // If this write fails the log still says "prepared": a restart writes the markers
        // again, which is harmless.
        self.persist(broker, &m.transactional_id, Some(m))
    }

    /// Finishes a prepared transaction now if its markers can be written; CONCURRENT_TRANSACTIONS
    /// (retriable) if not.
    fn finish_prepared(&self, broker: &Broker, m: &mut TxnMetadata) -> Result<(), ResponseError> {
        if m.state.is_prepared() {
            self.complete(broker, m)
                .map_err(|_| ResponseError::ConcurrentTransactions)?;
        }
        Ok(())
    }

    /// Writes a state change, restoring `before` in memory if it cannot be written.
    fn commit_change(
        &self,
        broker: &Broker,
        m: &mut TxnMetadata,
        before: TxnMetadata,
    ) -> Result<(), ResponseError> {
        if let Err(e) = self.persist(broker, &m.transactional_id, Some(m)) {
            *m = before;
            return Err(unavailable(e));
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: aborts the id's open transaction (fencing the
    /// old producer), bumps the epoch (or takes a new producer id once the epoch is exhausted),
    /// and returns (producer id, epoch). `expected` is the producer's current id and epoch
    /// (v3+, KIP-360), `None` for a fresh producer.
    pub fn init_producer_id(
        &self,
        broker: &Broker,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        self.state_topic(broker).map_err(unavailable)?;
        let entry = match self.get(transactional_id) {
            Some(m) => m,
            None => {
                let producer_id = broker.allocate_producer_id().map_err(unavailable)?;
                let mut txns = lock(&self.txns);
                if txns.len() >= TXNS_MAX && !txns.contains_key(transactional_id) {
                    return Err(ResponseError::CoordinatorNotAvailable);
                }
                txns.entry(transactional_id.to_string())
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(TxnMetadata::new(
                            transactional_id,
                            producer_id,
                            wall_ms(),
                        )))
                    })
                    .clone()
            }
        };
        let mut m = lock(&entry);
        if let Some((pid, epoch)) = expected {
            let retried = pid == m.last_producer_id
                && epoch == m.last_producer_epoch
                && m.state == TxnState::Empty;
            if retried {
                return Ok((m.producer_id, m.producer_epoch));
            }
            let current =
                m.producer_epoch == -1 || (pid == m.producer_id && epoch == m.producer_epoch);
            if !current {
                return Err(ResponseError::ProducerFenced);
            }
        }
        let (old_id, old_epoch) = (m.producer_id, m.producer_epoch);
        let now = wall_ms();
        match m.state {
            TxnState::Ongoing => {
                let before = m.clone();
                m.fence_and_abort(now);
                self.commit_change(broker, &mut m, before)?;
                self.finish_prepared(broker, &mut m)?;
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                self.finish_prepared(broker, &mut m)?
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            _ => {}
        }
        let before = m.clone();
        if m.producer_epoch >= i16::MAX - 1 {
            m.producer_id = broker.allocate_producer_id().map_err(unavailable)?;
            m.producer_epoch = 0;
        } else {
            m.producer_epoch += 1;
        }
        m.last_producer_id = old_id;
        m.last_producer_epoch = old_epoch;
        m.timeout_ms = timeout_ms;
        m.state = TxnState::Empty;
        m.partitions.clear();
        m.start_ms = -1;
        m.last_update_ms = now;
        self.commit_change(broker, &mut m, before)?;
        tracing::debug!(
            id = transactional_id,
            producer_id = m.producer_id,
            epoch = m.producer_epoch,
            "initialised transactional producer"
        );
        Ok((m.producer_id, m.producer_epoch))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): opens the
    /// transaction or adds to it.
    pub fn add_partitions(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        let entry = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = lock(&entry);
        m.check_producer(producer_id, epoch)?;
        self.finish_prepared(broker, &mut m)?;
        if !(m.state.is_idle() || m.state == TxnState::Ongoing) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return Ok(());
        }
        let before = m.clone();
        let now = wall_ms();
        if m.state != TxnState::Ongoing {
            m.start_ms = now;
            m.partitions.clear();
        }
        m.state = TxnState::Ongoing;
        m.partitions.extend(partitions.iter().cloned());
        m.last_update_ms = now;
        self.commit_change(broker, &mut m, before)
    }

    /// EndTxn: commits or aborts the open transaction; returns once its markers are written
    /// (or, if some cannot be written yet, once the decision is durable).
    pub fn end_txn(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let entry = self
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let mut m = lock(&entry);
        m.check_producer(producer_id, epoch)?;
        let wanted = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        let done = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        match m.state {
            TxnState::Ongoing => {
                let before = m.clone();
                m.state = wanted;
                m.last_update_ms = wall_ms();
                self.commit_change(broker, &mut m, before)?;
                if let Err(e) = self.complete(broker, &mut m) {
                    tracing::warn!(id = transactional_id, error = %e, "transaction decided; markers pending");
                }
                Ok(())
            }
            // A retry of an EndTxn that already went through.
            s if s == done => Ok(()),
            // Decided before, markers still pending: finish them now, or ask for a retry.
            s if s == wanted => self.finish_prepared(broker, &mut m),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Whether producer `producer_id` at `epoch` may write a transactional batch to
    /// `topic`-`partition` (KIP-890 part 1 verification): the transaction must be open and hold
    /// the partition. Stops hanging transactions from late or stray writes.
    pub fn verify(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        if !self.config.verify_partitions {
            return Ok(());
        }
        let entry = transactional_id
            .and_then(|id| self.get(id))
            .ok_or(ResponseError::InvalidTxnState)?;
        let m = lock(&entry);
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch < m.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        let key = (topic.to_string(), partition);
        if m.state != TxnState::Ongoing || epoch != m.producer_epoch || !m.partitions.contains(&key)
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    }

    /// The state of one transactional id (DescribeTransactions).
    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.get(transactional_id).map(|m| lock(&m).clone())
    }

    /// Every transactional id, optionally only those in `states`, of `producer_ids`, whose
    /// last transaction started longer than `min_duration_ms` ago, and matching `id_pattern`
    /// (ListTransactions).
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
        id_pattern: Option<&TxnIdPattern>,
    ) -> Vec<TxnMetadata> {
        let now = wall_ms();
        let entries: Vec<Arc<Mutex<TxnMetadata>>> = lock(&self.txns).values().cloned().collect();
        let mut out: Vec<TxnMetadata> = entries
            .iter()
            .map(|m| lock(m).clone())
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| longer_than(m.start_ms, now, min_duration_ms))
            .filter(|m| id_pattern.is_none_or(|p| p.matches(&m.transactional_id)))
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    // ----- timers -----

    /// Aborts timed-out transactions and retries unfinished ones when due, and forgets expired
    /// transactional ids.
    pub fn tick(&self, broker: &Broker, now_ms: i64) {
        if due(
            &self.next_abort_check_ms,
            now_ms,
            self.config.abort_interval_ms,
        ) {
            self.abort_timed_out(broker, now_ms);
        }
        if due(
            &self.next_expiry_check_ms,
            now_ms,
            self.config.remove_interval_ms,
        ) {
            self.remove_expired(broker, now_ms);
        }
    }

    fn abort_timed_out(&self, broker: &Broker, now_ms: i64) {
        let entries: Vec<Arc<Mutex<TxnMetadata>>> = lock(&self.txns).values().cloned().collect();
        for entry in entries {
            let mut m = lock(&entry);
            if m.state == TxnState::Ongoing
                && m.start_ms >= 0
                && now_ms - m.start_ms > i64::from(m.timeout_ms)
            {
                tracing::info!(id = %m.transactional_id, producer_id = m.producer_id, timeout_ms = m.timeout_ms, "aborting a timed-out transaction");
                let before = m.clone();
                m.fence_and_abort(now_ms);
                if self.commit_change(broker, &mut m, before).is_err() {
                    continue;
                }
            }
            if m.state.is_prepared() {
                if let Err(e) = self.complete(broker, &mut m) {
                    tracing::warn!(id = %m.transactional_id, error = %e, "transaction markers still pending");
                }
            }
        }
    }

    fn remove_expired(&self, broker: &Broker, now_ms: i64) {
        let mut txns = lock(&self.txns);
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, m)| {
                let m = lock(m);
                m.state.is_idle() && now_ms - m.last_update_ms > self.config.id_expiration_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Err(e) = self.persist(broker, &id, None) {
                tracing::warn!(id, error = %e, "cannot expire transactional id");
                continue;
            }
            if let Some(m) = txns.remove(&id) {
                lock(&m).state = TxnState::Dead;
            }
            tracing::info!(id, "expired transactional id");
        }
    }
}

/// Whether a periodic check is due; if so, schedules the next one.
fn due(next: &Mutex<i64>, now_ms: i64, interval_ms: i64) -> bool {
    let mut next = lock(next);
    if now_ms < *next {
        return false;
    }
    *next = now_ms + interval_ms;
    true
}

/// Runs the coordinator's timers until the task is aborted.
pub async fn run_timers(broker: Arc<Broker>) {
    let period = Duration::from_millis(
        broker
            .config
            .transaction_abort_timed_out_interval_ms
            .clamp(10, TICK_MAX.as_millis() as i64) as u64,
    );
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let b = broker.clone();
        // Marker writes do file I/O: keep them off the async workers.
        let _ = tokio::task::spawn_blocking(move || b.txns.tick(&b, wall_ms())).await;
    }
}

/// ListTransactions' duration filter, as Kafka's `TransactionStateManager`: a negative filter
/// keeps everything, otherwise an id is kept when `now_ms - start_ms` exceeds it. An id with no
/// transaction started since its InitProducerId (`start_ms` -1, state Empty) is therefore kept
/// by any filter shorter than the wall clock, as Kafka 4.1.2 lists it.
fn longer_than(start_ms: i64, now_ms: i64, min_duration_ms: i64) -> bool {
    min_duration_ms < 0 || now_ms.saturating_sub(start_ms) > min_duration_ms
}

/// ListTransactions v2's transactional id filter (KIP-1152): a regular expression the whole id
/// must match, as Kafka's `Pattern.matcher(id).matches()`.
#[derive(Debug)]
pub struct TxnIdPattern(regex::Regex);

impl TxnIdPattern {
    /// Longest pattern accepted, in bytes: a bound on what one request can make us compile.
    pub const LEN_MAX: usize = 4096;

    /// `None` for an absent or empty pattern (no filter, as Kafka); INVALID_REGULAR_EXPRESSION
    /// for one that does not compile or is longer than [`Self::LEN_MAX`].
    pub fn parse(pattern: Option<&str>) -> Result<Option<Self>, ResponseError> {
        let Some(p) = pattern.filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        if p.len() > Self::LEN_MAX {
            return Err(ResponseError::InvalidRegularExpression);
        }
        regex::Regex::new(&format!("^(?:{p})$"))
            .map(|r| Some(Self(r)))
            .map_err(|_| ResponseError::InvalidRegularExpression)
    }

    /// Whether the whole of `transactional_id` matches.
    pub fn matches(&self, transactional_id: &str) -> bool {
        self.0.is_match(transactional_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_filter_is_kafkas() {
        assert!(longer_than(1_000, 1_000, -1), "a negative filter keeps all");
        assert!(longer_than(1_000, 6_001, 5_000));
        assert!(
            !longer_than(1_000, 6_000, 5_000),
            "only longer, not as long"
        );
        // Kafka 4.1.2 lists an Empty id (start -1) under a one-day filter
        let now_ms = 1_795_000_000_000;
        assert!(longer_than(-1, now_ms, 86_400_000));
        assert!(!longer_than(now_ms - 1_000, now_ms, 86_400_000));
    }

    #[test]
    fn id_pattern_matches_whole_ids_like_kafka() {
        // Kafka 4.1.2's answers to kafka-transactions list --transactional-id-pattern
        let p = |s: &str| TxnIdPattern::parse(Some(s)).unwrap().unwrap();
        assert!(p("held-x").matches("held-x"));
        assert!(!p("held").matches("held-x"), "a prefix is not a match");
        assert!(!p("kkp").matches("kkp-tx"));
        assert!(p(".*kkp-tx").matches("kkp-tx"));
        assert!(p("kkp-t.$").matches("kkp-tx"));
        assert!(p("a|b").matches("b"), "alternation is anchored as a whole");
        assert!(!p("a|b").matches("ab"));
        assert!(TxnIdPattern::parse(None).unwrap().is_none());
        assert!(TxnIdPattern::parse(Some("")).unwrap().is_none());
        assert_eq!(
            TxnIdPattern::parse(Some("[")).unwrap_err(),
            ResponseError::InvalidRegularExpression
        );
        let long = "a".repeat(TxnIdPattern::LEN_MAX + 1);
        assert_eq!(
            TxnIdPattern::parse(Some(&long)).unwrap_err(),
            ResponseError::InvalidRegularExpression
        );
    }

    #[test]
    fn state_ids_and_names_are_kafkas() {
        assert_eq!(TxnState::Empty.id(), 0);
        assert_eq!(TxnState::CompleteAbort.id(), 5);
        assert_eq!(TxnState::PrepareEpochFence.id(), 7);
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
            assert_eq!(TxnState::from_name(s.name()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_id(-1), None);
    }

    #[test]
    fn producer_checks() {
        let mut m = TxnMetadata::new("t", 10, 0);
        m.producer_epoch = 3;
        assert_eq!(
            m.check_producer(11, 3),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(m.check_producer(10, 2), Err(ResponseError::ProducerFenced));
        assert_eq!(m.check_producer(10, 3), Ok(()));
        m.state = TxnState::Ongoing;
        m.fence_and_abort(5);
        assert_eq!((m.producer_epoch, m.state), (4, TxnState::PrepareAbort));
        assert_eq!(m.check_producer(10, 3), Err(ResponseError::ProducerFenced));
    }
}
