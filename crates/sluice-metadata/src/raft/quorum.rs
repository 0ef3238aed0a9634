//! [`RaftQuorum`]: the metadata quorum of several voters on openraft, implementing
//! [`MetadataQuorum`].
//!
//! A request is planned by the leader only ([`crate::controller::plan`] draws random topic ids
//! and placements), against the leader's latest applied image, and the planned records are what
//! replicates ([`PlannedBatch`]). The leader plans and commits one request at a time; a plan
//! made against an image that moved meanwhile (a new leader still applying its log) is skipped
//! by every voter and planned again. `submit` on a follower forwards the request to the leader
//! over the controllers' RPC, then waits for its own image to reach the committed offset, so
//! the caller reads its own write.
//!
//! Threading: everything runs on the tokio runtime [`RaftQuorum::start`] was called on (openraft's
//! core, the RPC server, the snapshot task). [`RaftQuorum::submit_async`] is the native call.
//! The synchronous [`MetadataQuorum::submit`] / [`MetadataQuorum::bootstrap`] block the calling
//! thread until the request commits or fails (at most [`RaftQuorumOptions::submit_timeout_ms`]):
//! call them from a thread that is not a runtime worker (a plain thread or `spawn_blocking`);
//! from a worker of a multi-thread runtime they still work (through `block_in_place`), from a
//! current-thread runtime they fail with [`RaftQuorumError::WouldBlockRuntime`] rather than
//! deadlock.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::network::{
    self, ForwardError, ForwardReply, ForwardRequest, Network, PeerContacts, RpcRequest,
    RpcResponse,
};
use super::state_machine::{OffsetIndex, Opened, SnapshotTrigger, StateMachine};
use super::store::LogStore;
use super::types::{ApplyOutcome, NodeId, PlannedBatch, TypeConfig};
use crate::controller::{self, ControllerError, ControllerReply, ControllerRequest};
use crate::image::MetadataImage;
use crate::log::{MetadataLogError, SNAPSHOT_BYTES_DEFAULT};
use crate::quorum::{Committed, MetadataQuorum, QuorumError, QuorumStatus, VoterState};
use crate::records::MetadataRecord;

/// Times a request is planned again after its plan went stale, before giving up.
const PLAN_ATTEMPTS_MAX: usize = 5;
/// Longest pause between two looks for a leader while a submit waits for one.
const LEADER_POLL_MS: u64 = 50;

/// Tunables of a [`RaftQuorum`]; the defaults suit a small machine on loopback.
#[derive(Debug, Clone)]
pub struct RaftQuorumOptions {
    /// Leader heartbeat period (openraft `heartbeat_interval`). Default 100 ms.
    pub heartbeat_interval_ms: u64,
    /// Shortest election timeout (openraft `election_timeout_min`). Default 500 ms.
    pub election_timeout_min_ms: u64,
    /// Longest election timeout (openraft `election_timeout_max`; Kafka's
    /// `controller.quorum.election.timeout.ms` is 1000). Default 1000 ms.
    pub election_timeout_max_ms: u64,
    /// How long a submit may take, waiting for a leader included. Default 5000 ms.
    pub submit_timeout_ms: u64,
    /// Record bytes applied between snapshots (`metadata.log.max.record.bytes.between.snapshots`).
    /// Default 20 MiB.
    pub snapshot_bytes: u64,
    /// Largest snapshot chunk sent in one InstallSnapshot RPC. Default 1 MiB.
    pub snapshot_chunk_bytes: u64,
}

impl Default for RaftQuorumOptions {
    fn default() -> RaftQuorumOptions {
        RaftQuorumOptions {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            submit_timeout_ms: 5000,
            snapshot_bytes: SNAPSHOT_BYTES_DEFAULT,
            snapshot_chunk_bytes: 1 << 20,
        }
    }
}

/// Why a [`RaftQuorum`] could not start or a request did not commit.
#[derive(Debug, thiserror::Error)]
pub enum RaftQuorumError {
    /// The controller refused the request; nothing was written.
    #[error(transparent)]
    Refused(#[from] ControllerError),
    /// No leader answered in time, or the leader failed the request. Whether it committed is
    /// not known when the leader was reached and then lost.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
    /// The Raft log, vote or snapshot could not be read or written.
    #[error("metadata quorum storage: {0}")]
    Storage(#[from] io::Error),
    /// The arguments of `start` do not make a quorum.
    #[error("metadata quorum configuration: {0}")]
    Config(String),
    /// A synchronous call was made on a current-thread runtime's thread, where it would block
    /// the very runtime it waits for.
    #[error("synchronous metadata quorum call on a current-thread tokio runtime")]
    WouldBlockRuntime,
}

/// Replication state of one voter, as the leader sees it (for DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftVoterStatus {
    /// The voter's `node.id`.
    pub node_id: i32,
    /// End of the Raft log the leader knows the voter holds: index of its last matched entry
    /// plus one (Raft log indexes, not metadata record offsets). `None` when not known.
    pub log_end_index: Option<u64>,
    /// Milliseconds since the voter last answered this node's RPC (0 for the leader itself).
    pub last_contact_ms_ago: Option<u64>,
}

/// The quorum as this voter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This voter's `node.id`.
    pub node_id: i32,
    /// The leader this voter knows of.
    pub leader_id: Option<i32>,
    /// This voter's current Raft term (Kafka's leader epoch).
    pub term: u64,
    /// Index of this voter's last Raft log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last Raft log entry applied to this voter's image.
    pub last_applied_index: Option<u64>,
    /// Offset of the last metadata record in this voter's image (-1 for none).
    pub image_offset: i64,
    /// Every voter's replication state; filled on the leader only.
    pub voters: Vec<RaftVoterStatus>,
}

/// What the leader is asked to commit.
#[derive(Debug, Clone)]
enum Work {
    Submit(ControllerRequest),
    Bootstrap(Vec<MetadataRecord>),
}

impl From<ForwardRequest> for Work {
    fn from(f: ForwardRequest) -> Work {
        match f {
            ForwardRequest::Submit(r) => Work::Submit(r),
            ForwardRequest::Bootstrap(r) => Work::Bootstrap(r),
        }
    }
}

impl From<Work> for ForwardRequest {
    fn from(w: Work) -> ForwardRequest {
        match w {
            Work::Submit(r) => ForwardRequest::Submit(r),
            Work::Bootstrap(r) => ForwardRequest::Bootstrap(r),
        }
    }
}

/// Why the leader-side commit failed.
#[derive(Debug)]
enum LocalError {
    NotLeader(Option<NodeId>),
    Refused(ControllerError),
    Failed(String),
}

/// State shared by the quorum handle and its RPC server.
pub(crate) struct Shared {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    /// The latest applied image, published by the state machine.
    image: watch::Receiver<Arc<MetadataImage>>,
    /// Raft index → record offset, for DescribeQuorum.
    offsets: OffsetIndex,
    /// Voters' RPC addresses.
    voters: BTreeMap<NodeId, String>,
    /// Held by the leader for the whole of plan and commit.
    write_lock: tokio::sync::Mutex<()>,
    /// When each peer last answered.
    contacts: PeerContacts,
    submit_timeout: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.node_id)
            .field("voters", &self.voters)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// Plans and commits `work` as the leader. Returns the reply and the offset of the image's
    /// last record once committed.
    async fn commit_local(&self, work: &Work) -> Result<(ControllerReply, i64), LocalError> {
        let _one_at_a_time = self.write_lock.lock().await;
        for _ in 0..PLAN_ATTEMPTS_MAX {
            let image = self.image();
            let base = image.offset + 1;
            let (batch, reply) = match work {
                Work::Submit(request) => {
                    let (records, reply) =
                        controller::plan(&image, request, base).map_err(LocalError::Refused)?;
                    let batch = PlannedBatch {
                        base_offset: Some(base),
                        records,
                    };
                    (batch, reply)
                }
                Work::Bootstrap(records) => {
                    let batch = PlannedBatch {
                        base_offset: None,
                        records: records.clone(),
                    };
                    (batch, ControllerReply::Done)
                }
            };
            if batch.records.is_empty() {
                // Nothing to write, but the answer must come from an image with every committed
                // entry in it: confirm leadership and wait for the apply, then plan again if the
                // image moved.
                match self.raft.ensure_linearizable().await {
                    Ok(_) => {}
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                        return Err(LocalError::NotLeader(f.leader_id));
                    }
                    Err(e) => return Err(LocalError::Failed(e.to_string())),
                }
                if self.image().offset != image.offset {
                    continue;
                }
                return Ok((reply, image.offset));
            }
            let batch_bytes = serde_json::to_vec(&batch).map_or(usize::MAX, |v| v.len());
            if batch_bytes > network::BATCH_BYTES_MAX {
                return Err(LocalError::Failed(format!(
                    "a batch of {batch_bytes} bytes is over the limit of {}",
                    network::BATCH_BYTES_MAX
                )));
            }
            match self.raft.client_write(batch).await {
                Ok(response) => match response.data {
                    ApplyOutcome::Applied { last_offset, .. } => return Ok((reply, last_offset)),
                    ApplyOutcome::Stale { image_offset } => {
                        tracing::debug!(
                            planned_at = image.offset,
                            image_offset,
                            "stale plan; planning again"
                        );
                    }
                    ApplyOutcome::Refused(why) => return Err(LocalError::Failed(why)),
                    ApplyOutcome::Nothing => {
                        return Err(LocalError::Failed("a batch applied as nothing".into()));
                    }
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    return Err(LocalError::NotLeader(f.leader_id));
                }
                Err(e) => return Err(LocalError::Failed(e.to_string())),
            }
        }
        Err(LocalError::Failed(format!(
            "the image kept moving under the plan ({PLAN_ATTEMPTS_MAX} attempts)"
        )))
    }

    /// Serves a follower's forwarded request.
    pub(crate) async fn serve_forward(
        &self,
        request: ForwardRequest,
    ) -> Result<ForwardReply, ForwardError> {
        match self.commit_local(&Work::from(request)).await {
            Ok((reply, offset)) => Ok(ForwardReply { reply, offset }),
            Err(LocalError::NotLeader(leader)) => Err(ForwardError::NotLeader(leader)),
            Err(LocalError::Refused(e)) => Err(ForwardError::Refused(e.into())),
            Err(LocalError::Failed(why)) => Err(ForwardError::Failed(why)),
        }
    }
}

/// The metadata quorum of several voters, this node one of them.
#[derive(Debug)]
pub struct RaftQuorum {
    shared: Arc<Shared>,
    /// The RPC server and the snapshot task; aborted on shutdown.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The runtime everything runs on.
    runtime: Handle,
    /// The node directory (for error messages).
    dir: PathBuf,
}

fn to_node_id(id: i32) -> Result<NodeId, RaftQuorumError> {
    u64::try_from(id).map_err(|_| RaftQuorumError::Config(format!("node id {id} is negative")))
}

fn to_kafka_id(id: NodeId) -> i32 {
    // Every id came from an i32 (see `to_node_id`).
    i32::try_from(id).unwrap_or(i32::MAX)
}

impl RaftQuorum {
    /// Starts voter `node_id` of the quorum `voters` (`node.id` → controller `host:port`), with
    /// its Raft log, vote and snapshots in `dir`, serving the controllers' RPC on `listener`,
    /// and a snapshot every `snapshot_bytes` bytes of records. Default timeouts; see
    /// [`RaftQuorum::start_with`].
    pub async fn start(
        node_id: i32,
        dir: &Path,
        voters: BTreeMap<i32, String>,
        listener: TcpListener,
        snapshot_bytes: u64,
    ) -> Result<RaftQuorum, RaftQuorumError> {
        let options = RaftQuorumOptions {
            snapshot_bytes,
            ..RaftQuorumOptions::default()
        };
        RaftQuorum::start_with(node_id, dir, voters, listener, options).await
    }

    /// [`RaftQuorum::start`] with explicit options.
    ///
    /// A voter that finds no Raft state proposes the membership `voters`; every voter does so
    /// with the same set, which openraft allows, so the quorum forms whichever voters come up
    /// first. A voter restarted from its directory keeps its log and vote and skips this.
    pub async fn start_with(
        node_id: i32,
        dir: &Path,
        voters: BTreeMap<i32, String>,
        listener: TcpListener,
        options: RaftQuorumOptions,
    ) -> Result<RaftQuorum, RaftQuorumError> {
        let id = to_node_id(node_id)?;
        let mut members = BTreeMap::new();
        for (voter, addr) in &voters {
            members.insert(to_node_id(*voter)?, addr.clone());
        }
        if !members.contains_key(&id) {
            return Err(RaftQuorumError::Config(format!(
                "node {node_id} is not one of the voters {:?}",
                voters.keys().collect::<Vec<_>>()
            )));
        }
        let config = Config {
            cluster_name: "sluice-metadata".into(),
            heartbeat_interval: options.heartbeat_interval_ms,
            election_timeout_min: options.election_timeout_min_ms,
            election_timeout_max: options.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            // A chunk travels as a JSON array of numbers, up to 4 bytes per byte.
            snapshot_max_chunk_size: options
                .snapshot_chunk_bytes
                .clamp(1, (network::RPC_FRAME_BYTES_MAX / 5) as u64),
            max_payload_entries: 64,
            ..Config::default()
        }
        .validate()
        .map_err(|e| RaftQuorumError::Config(e.to_string()))?;

        std::fs::create_dir_all(dir)?;
        let store = LogStore::open(dir)?;
        let Opened {
            state_machine,
            images,
            trigger,
            offsets,
        } = StateMachine::open(dir, options.snapshot_bytes)?;
        let contacts = PeerContacts::default();
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network::new(contacts.clone()),
            store,
            state_machine,
        )
        .await
        .map_err(|e| RaftQuorumError::Unavailable(format!("raft did not start: {e}")))?;

        let shared = Arc::new(Shared {
            node_id: id,
            raft: raft.clone(),
            image: images,
            offsets,
            voters: members.clone(),
            write_lock: tokio::sync::Mutex::new(()),
            contacts,
            submit_timeout: Duration::from_millis(options.submit_timeout_ms),
        });
        let runtime = Handle::current();
        let server = runtime.spawn(network::serve(listener, shared.clone()));
        let snapshots = runtime.spawn(take_snapshots(raft.clone(), trigger));
        let quorum = RaftQuorum {
            shared,
            tasks: Mutex::new(vec![server, snapshots]),
            runtime,
            dir: dir.to_path_buf(),
        };

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| RaftQuorumError::Unavailable(e.to_string()))?;
        if !initialized {
            let nodes: BTreeMap<NodeId, BasicNode> = members
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            match raft.initialize(nodes).await {
                Ok(()) => tracing::info!(node_id, "proposed the initial metadata quorum"),
                // Another voter was first, or this one has state already: both fine.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => {
                    quorum.shutdown().await;
                    return Err(RaftQuorumError::Unavailable(format!(
                        "could not initialize the quorum: {e}"
                    )));
                }
            }
        }
        Ok(quorum)
    }

    /// Stops this voter: closes the RPC listener and its connections, stops the snapshot task
    /// and openraft. The directory keeps everything needed to start again.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Err(e) = self.shared.raft.shutdown().await {
            tracing::warn!(error = %e, "openraft did not shut down cleanly");
        }
    }

    /// This voter's `node.id`.
    pub fn node_id(&self) -> i32 {
        to_kafka_id(self.shared.node_id)
    }

    /// The leader this voter knows of.
    pub fn leader_id(&self) -> Option<i32> {
        self.shared
            .raft
            .metrics()
            .borrow()
            .current_leader
            .map(to_kafka_id)
    }

    /// This voter's current Raft term (Kafka's quorum epoch).
    pub fn current_term(&self) -> u64 {
        self.shared.raft.metrics().borrow().current_term
    }

    /// The quorum in Raft terms (log indexes) as this voter sees it, with every voter's
    /// replication state on the leader. [`MetadataQuorum::status`] gives it in Kafka's terms.
    pub fn raft_status(&self) -> RaftStatus {
        let metrics = self.shared.raft.metrics().borrow().clone();
        let now = Instant::now();
        let voters = match &metrics.replication {
            Some(replication) => self
                .shared
                .voters
                .keys()
                .map(|id| {
                    let (log_end_index, contact) = if *id == self.shared.node_id {
                        (metrics.last_log_index.map(|i| i + 1), Some(0))
                    } else {
                        let matched = replication.get(id).cloned().flatten();
                        let contact = self
                            .shared
                            .contacts
                            .last_contact(*id)
                            .map(|t| now.saturating_duration_since(t).as_millis() as u64);
                        (matched.map(|l| l.index + 1), contact)
                    };
                    RaftVoterStatus {
                        node_id: to_kafka_id(*id),
                        log_end_index,
                        last_contact_ms_ago: contact,
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        RaftStatus {
            node_id: self.node_id(),
            leader_id: metrics.current_leader.map(to_kafka_id),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied_index: metrics.last_applied.map(|l| l.index),
            image_offset: self.shared.image().offset,
            voters,
        }
    }

    /// openraft's metrics of this voter (state, term, log and snapshot positions).
    pub fn raft_metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.shared.raft.metrics().borrow().clone()
    }

    /// A receiver of every image this voter applies (for waiting on a change).
    pub fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.shared.image.clone()
    }

    /// Plans `request` on the leader (this voter or another) and waits until it commits.
    pub async fn submit_async(
        &self,
        request: ControllerRequest,
    ) -> Result<Committed, RaftQuorumError> {
        self.commit(Work::Submit(request)).await
    }

    /// Commits `records` as they are, through the leader.
    pub async fn bootstrap_async(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, RaftQuorumError> {
        Ok(self.commit(Work::Bootstrap(records)).await?.image)
    }

    async fn commit(&self, work: Work) -> Result<Committed, RaftQuorumError> {
        let shared = &self.shared;
        let deadline = Instant::now() + shared.submit_timeout;
        let mut metrics = shared.raft.metrics();
        let mut last_problem = "no leader elected".to_string();
        loop {
            let leader = metrics.borrow_and_update().current_leader;
            match leader {
                Some(leader) if leader == shared.node_id => {
                    match shared.commit_local(&work).await {
                        Ok((reply, _)) => {
                            return Ok(Committed {
                                image: shared.image(),
                                reply,
                            })
                        }
                        Err(LocalError::NotLeader(_)) => last_problem = "leadership moved".into(),
                        Err(LocalError::Refused(e)) => return Err(RaftQuorumError::Refused(e)),
                        Err(LocalError::Failed(why)) => {
                            return Err(RaftQuorumError::Unavailable(why))
                        }
                    }
                }
                Some(leader) => match self.forward(leader, &work, deadline).await {
                    Ok(Some(committed)) => return Ok(committed),
                    Ok(None) => {
                        last_problem = format!("leader {leader} could not be reached or moved")
                    }
                    Err(e) => return Err(e),
                },
                None => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RaftQuorumError::Unavailable(format!(
                    "nothing committed within {} ms: {last_problem}",
                    shared.submit_timeout.as_millis()
                )));
            }
            let pause = (deadline - now).min(Duration::from_millis(LEADER_POLL_MS));
            let _ = tokio::time::timeout(pause, metrics.changed()).await;
        }
    }

    /// Forwards `work` to `leader`. `Ok(None)` when it was not delivered or the receiver is no
    /// longer the leader (try again); an error when it was delivered and failed.
    async fn forward(
        &self,
        leader: NodeId,
        work: &Work,
        deadline: Instant,
    ) -> Result<Option<Committed>, RaftQuorumError> {
        let Some(addr) = self.shared.voters.get(&leader) else {
            return Ok(None);
        };
        let ttl = deadline.saturating_duration_since(Instant::now());
        let request = RpcRequest::Forward(ForwardRequest::from(work.clone()));
        let mut conn = None;
        let response = match network::call(&mut conn, addr, &request, ttl).await {
            Ok(r) => r,
            Err(e @ network::CallError::Unreachable { .. }) => {
                tracing::debug!(error = %e, "leader unreachable; retrying");
                return Ok(None);
            }
            Err(e) => return Err(RaftQuorumError::Unavailable(e.to_string())),
        };
        match response {
            RpcResponse::Forward(Ok(ForwardReply { reply, offset })) => {
                let mut images = self.shared.image.clone();
                let ttl = deadline.saturating_duration_since(Instant::now());
                let waited =
                    tokio::time::timeout(ttl, images.wait_for(|i| i.offset >= offset)).await;
                if !matches!(waited, Ok(Ok(_))) {
                    tracing::warn!(offset, "committed on the leader but not yet applied here");
                }
                Ok(Some(Committed {
                    image: self.shared.image(),
                    reply,
                }))
            }
            RpcResponse::Forward(Err(ForwardError::NotLeader(_))) => Ok(None),
            RpcResponse::Forward(Err(ForwardError::Refused(r))) => {
                Err(RaftQuorumError::Refused(r.into()))
            }
            RpcResponse::Forward(Err(ForwardError::Failed(why))) => {
                Err(RaftQuorumError::Unavailable(why))
            }
            other => Err(RaftQuorumError::Unavailable(format!(
                "unexpected answer from leader {leader}: {other:?}"
            ))),
        }
    }

    /// Runs `fut` to completion from synchronous code (see the module docs for the rule).
    fn block_on<T>(&self, fut: impl std::future::Future<Output = T>) -> Result<T, RaftQuorumError> {
        match Handle::try_current() {
            Err(_) => Ok(self.runtime.block_on(fut)),
            Ok(current) if current.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Ok(tokio::task::block_in_place(|| self.runtime.block_on(fut)))
            }
            Ok(_) => Err(RaftQuorumError::WouldBlockRuntime),
        }
    }

    fn quorum_error(&self, e: RaftQuorumError) -> QuorumError {
        match e {
            RaftQuorumError::Refused(e) => QuorumError::Refused(e),
            RaftQuorumError::Storage(source) => QuorumError::Storage(MetadataLogError::Io {
                path: self.dir.clone(),
                source,
            }),
            other => QuorumError::Unavailable(other.to_string()),
        }
    }
}

impl Drop for RaftQuorum {
    fn drop(&mut self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        if tasks.is_empty() {
            return;
        }
        // Not shut down: stop the tasks and openraft without waiting.
        for task in &tasks {
            task.abort();
        }
        let raft = self.shared.raft.clone();
        self.runtime.spawn(async move {
            let _ = raft.shutdown().await;
        });
    }
}

/// Builds a snapshot whenever the state machine says enough records went by.
async fn take_snapshots(raft: Raft<TypeConfig>, trigger: SnapshotTrigger) {
    loop {
        trigger.wait().await;
        if let Err(e) = raft.trigger().snapshot().await {
            tracing::warn!(error = %e, "openraft stopped; no more snapshots");
            return;
        }
    }
}

impl MetadataQuorum for RaftQuorum {
    fn watch(&self) -> Option<watch::Receiver<Arc<MetadataImage>>> {
        Some(self.watch_image())
    }

    /// Kafka's DescribeQuorum view. Complete on the leader; elsewhere only this voter's own log
    /// end is known (others read -1), as Kafka answers DescribeQuorum on the leader only.
    /// Offsets are metadata record offsets: a voter's log end is the record offset after the
    /// Raft entries the leader knows it holds (-1 when older than the leader remembers,
    /// [`super::state_machine::OFFSET_INDEX_ENTRIES_MAX`] entries), its last fetch the last
    /// time it answered the leader's RPC, and its last caught-up time that same time when it
    /// holds every entry the leader applied (-1 otherwise, an approximation of Kafka's).
    fn status(&self) -> QuorumStatus {
        let shared = &self.shared;
        let metrics = shared.raft.metrics().borrow().clone();
        let end = shared.image().offset + 1;
        let now = Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let at_ms = |t: Instant| now_ms - now.saturating_duration_since(t).as_millis() as i64;
        let applied = metrics.last_applied.map(|l| l.index);
        let voters = shared
            .voters
            .keys()
            .map(|id| {
                if *id == shared.node_id {
                    return VoterState {
                        id: to_kafka_id(*id),
                        log_end_offset: end,
                        last_fetch_ms: now_ms,
                        last_caught_up_ms: now_ms,
                    };
                }
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id).cloned().flatten());
                let log_end_offset = matched
                    .and_then(|m| shared.offsets.end_offset_at(m.index))
                    .unwrap_or(-1);
                let last_fetch_ms = match (&metrics.replication, shared.contacts.last_contact(*id))
                {
                    (Some(_), Some(t)) => at_ms(t),
                    _ => -1,
                };
                let caught_up = matched.is_some_and(|m| Some(m.index) >= applied);
                VoterState {
                    id: to_kafka_id(*id),
                    log_end_offset,
                    last_fetch_ms,
                    last_caught_up_ms: if caught_up { last_fetch_ms } else { -1 },
                }
            })
            .collect();
        QuorumStatus {
            leader_id: metrics.current_leader.map_or(-1, to_kafka_id),
            leader_epoch: i32::try_from(metrics.current_term).unwrap_or(i32::MAX),
            high_watermark: end,
            voters,
        }
    }

    fn submit(&self, request: ControllerRequest) -> Result<Committed, QuorumError> {
        self.block_on(self.submit_async(request))
            .and_then(|r| r)
            .map_err(|e| self.quorum_error(e))
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.shared.image()
    }

    fn bootstrap(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, QuorumError> {
        self.block_on(self.bootstrap_async(records))
            .and_then(|r| r)
            .map_err(|e| self.quorum_error(e))
    }
}
