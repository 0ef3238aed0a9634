//! The controllers' RPC: a small TCP protocol between the voters of the metadata quorum.
//!
//! Every message is one frame, `[u32 length, big-endian][JSON body]`, of at most
//! [`RPC_FRAME_BYTES_MAX`]. A connection carries requests one at a time, each answered by one
//! response frame, in order. Requests (`RpcRequest`) are openraft's AppendEntries, Vote and
//! InstallSnapshot, and `Forward`: a follower hands a controller request to the leader, which
//! plans, commits and answers it.
//!
//! Client side: [`Network`] is openraft's network factory; its [`PeerClient`] keeps one
//! connection per peer and reconnects after any error. Server side: `serve` accepts on a
//! listener the caller bound, at most [`CONNECTIONS_MAX`] connections at once; a frame that is
//! too long, cut short or not a request is answered with an error where possible and the
//! connection closed. Nothing from the network can panic the server.
//!
//! There is no authentication: like Kafka's PLAINTEXT controller listener, the port must only
//! be reachable by the controllers.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::quorum::Shared;
use super::types::{Node, NodeId, TypeConfig};
use crate::controller::{ControllerError, ControllerReply, ControllerRequest};
use crate::records::MetadataRecord;

/// Largest RPC frame, either way (snapshot chunks are sized well below it).
pub const RPC_FRAME_BYTES_MAX: usize = 16 << 20;
/// Largest planned batch (JSON bytes) the leader accepts, so that an AppendEntries carrying it
/// alone always fits in a frame.
pub const BATCH_BYTES_MAX: usize = RPC_FRAME_BYTES_MAX / 2;
/// Most connections the RPC server serves at once; more are closed on accept.
pub const CONNECTIONS_MAX: usize = 64;
/// A connection that sends nothing for this long is closed (peers send heartbeats far more
/// often, and reconnect when needed).
pub const CONNECTION_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Pause between retries to a peer that could not be reached.
pub const PEER_BACKOFF_MS: u64 = 200;

/// A request between controllers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    /// Raft AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a Raft InstallSnapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A controller request for the leader.
    Forward(ForwardRequest),
}

/// The answer to an [`RpcRequest`] of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcResponse {
    /// To AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To Vote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To InstallSnapshot.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// To Forward.
    Forward(Result<ForwardReply, ForwardError>),
    /// The request could not be read; the server closes the connection after this.
    BadRequest(String),
}

/// What a follower asks the leader to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardRequest {
    /// Plan and commit a controller request.
    Submit(ControllerRequest),
    /// Commit records as they are.
    Bootstrap(Vec<MetadataRecord>),
}

/// A forwarded request that committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardReply {
    /// The controller's reply.
    pub(crate) reply: ControllerReply,
    /// The offset of the last record of the image it committed in; the follower waits for its
    /// own image to reach it before answering its caller.
    pub(crate) offset: i64,
}

/// Why a forwarded request did not commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ForwardError {
    /// The receiver is not the leader; the leader it knows of, if any.
    NotLeader(Option<NodeId>),
    /// The controller refused the request.
    Refused(Refusal),
    /// Something else failed; whether the request committed is not known.
    Failed(String),
}

/// [`ControllerError`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    TopicAlreadyExists(String),
    UnknownTopic(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidReplicaAssignment(String),
    StaleBroker(String),
}

impl From<ControllerError> for Refusal {
    fn from(e: ControllerError) -> Refusal {
        match e {
            ControllerError::TopicAlreadyExists(m) => Refusal::TopicAlreadyExists(m),
            ControllerError::UnknownTopic(m) => Refusal::UnknownTopic(m),
            ControllerError::InvalidPartitions(m) => Refusal::InvalidPartitions(m),
            ControllerError::InvalidReplicationFactor(m) => Refusal::InvalidReplicationFactor(m),
            ControllerError::InvalidReplicaAssignment(m) => Refusal::InvalidReplicaAssignment(m),
            ControllerError::StaleBroker(m) => Refusal::StaleBroker(m),
        }
    }
}

impl From<Refusal> for ControllerError {
    fn from(e: Refusal) -> ControllerError {
        match e {
            Refusal::TopicAlreadyExists(m) => ControllerError::TopicAlreadyExists(m),
            Refusal::UnknownTopic(m) => ControllerError::UnknownTopic(m),
            Refusal::InvalidPartitions(m) => ControllerError::InvalidPartitions(m),
            Refusal::InvalidReplicationFactor(m) => ControllerError::InvalidReplicationFactor(m),
            Refusal::InvalidReplicaAssignment(m) => ControllerError::InvalidReplicaAssignment(m),
            Refusal::StaleBroker(m) => ControllerError::StaleBroker(m),
        }
    }
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    payload: &[u8],
) -> io::Result<()> {
    if payload.len() > RPC_FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("RPC frame of {} bytes is over the limit", payload.len()),
        ));
    }
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > RPC_FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("RPC frame of {len} bytes is over the limit of {RPC_FRAME_BYTES_MAX}"),
        ));
    }
    // Grows as bytes arrive, so a lying length costs nothing up front.
    let mut body = Vec::new();
    r.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "RPC frame cut short",
        ));
    }
    Ok(Some(body))
}

/// When each peer last answered an RPC of this node (for DescribeQuorum's last fetch and
/// caught-up times).
#[derive(Debug, Clone, Default)]
pub struct PeerContacts {
    last: Arc<Mutex<BTreeMap<NodeId, Instant>>>,
}

impl PeerContacts {
    fn touch(&self, peer: NodeId) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(peer, Instant::now());
    }

    /// When `peer` last answered.
    pub fn last_contact(&self, peer: NodeId) -> Option<Instant> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.get(&peer).copied()
    }
}

/// Openraft's network factory: a [`PeerClient`] per peer.
#[derive(Debug, Clone)]
pub struct Network {
    /// Updated on every answered RPC.
    contacts: PeerContacts,
}

impl Network {
    /// A factory recording contacts in `contacts`.
    pub fn new(contacts: PeerContacts) -> Network {
        Network { contacts }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            conn: None,
            contacts: self.contacts.clone(),
        }
    }
}

/// The RPC client of one peer, with at most one open connection.
#[derive(Debug)]
pub struct PeerClient {
    /// The peer's node id.
    target: NodeId,
    /// The peer's `host:port`.
    addr: String,
    /// The open connection, if any.
    conn: Option<TcpStream>,
    /// Updated on every answered RPC.
    contacts: PeerContacts,
}

/// Why an RPC got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The peer could not be connected to: the request was not sent.
    #[error("cannot connect to {addr}: {source}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// The error.
        source: io::Error,
    },
    /// The request does not fit in a frame; nothing was sent.
    #[error("RPC request of {bytes} bytes is over the frame limit")]
    TooLarge {
        /// The request's size.
        bytes: usize,
    },
    /// The request may have been sent, but no valid answer came.
    #[error("RPC to {addr} failed: {source}")]
    Failed {
        /// The peer's address.
        addr: String,
        /// The error.
        source: io::Error,
    },
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, Node, E> {
        match &self {
            CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&self)),
            CallError::TooLarge { .. } | CallError::Failed { .. } => {
                RPCError::Network(NetworkError::new(&self))
            }
        }
    }
}

/// Sends `request` on `conn` (connecting first when it is `None`) and reads the answer, all
/// within `ttl`. The connection is dropped after any error.
pub(crate) async fn call(
    conn: &mut Option<TcpStream>,
    addr: &str,
    request: &RpcRequest,
    ttl: Duration,
) -> Result<RpcResponse, CallError> {
    let failed = |source: io::Error| CallError::Failed {
        addr: addr.to_string(),
        source,
    };
    let payload = serde_json::to_vec(request).map_err(|e| failed(io::Error::other(e)))?;
    if payload.len() > RPC_FRAME_BYTES_MAX {
        return Err(CallError::TooLarge {
            bytes: payload.len(),
        });
    }
    let exchange = async {
        if conn.is_none() {
            let stream =
                TcpStream::connect(addr)
                    .await
                    .map_err(|source| CallError::Unreachable {
                        addr: addr.to_string(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            *conn = Some(stream);
        }
        let Some(stream) = conn.as_mut() else {
            return Err(failed(io::Error::other("no connection")));
        };
        write_frame(stream, &payload).await.map_err(failed)?;
        let body = read_frame(stream)
            .await
            .map_err(failed)?
            .ok_or_else(|| failed(io::ErrorKind::UnexpectedEof.into()))?;
        serde_json::from_slice::<RpcResponse>(&body)
            .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e)))
    };
    let result = match tokio::time::timeout(ttl, exchange).await {
        Ok(r) => r,
        Err(_) => Err(failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} ms", ttl.as_millis()),
        ))),
    };
    if result.is_err() {
        *conn = None;
    }
    result
}

impl PeerClient {
    async fn call(&mut self, request: RpcRequest, ttl: Duration) -> Result<RpcResponse, CallError> {
        let response = call(&mut self.conn, &self.addr, &request, ttl).await?;
        self.contacts.touch(self.target);
        Ok(response)
    }

    fn unexpected<E: std::error::Error>(
        &self,
        response: &RpcResponse,
    ) -> RPCError<NodeId, Node, E> {
        let what = match response {
            RpcResponse::BadRequest(why) => format!("peer refused the request: {why}"),
            _ => "answer of the wrong kind".to_string(),
        };
        RPCError::Network(NetworkError::new(&io::Error::new(
            io::ErrorKind::InvalidData,
            what,
        )))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let response = match self
            .call(RpcRequest::AppendEntries(rpc), option.hard_ttl())
            .await
        {
            Ok(r) => r,
            // Too many entries for one frame: openraft sends fewer next time.
            Err(CallError::TooLarge { .. }) if entries > 1 => {
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(entries / 2),
                ));
            }
            Err(e) => return Err(e.into_rpc()),
        };
        match response {
            RpcResponse::AppendEntries(Ok(r)) => Ok(r),
            RpcResponse::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let response = self
            .call(RpcRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        match response {
            RpcResponse::InstallSnapshot(Ok(r)) => Ok(r),
            RpcResponse::InstallSnapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let response = self
            .call(RpcRequest::Vote(rpc), option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        match response {
            RpcResponse::Vote(Ok(r)) => Ok(r),
            RpcResponse::Vote(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(&other)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(PEER_BACKOFF_MS)))
    }
}

/// Serves the controllers' RPC on `listener` until the task is aborted (which closes the
/// listener and every connection it accepted).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve_connection(stream, shared.clone(), permit));
                    }
                    Err(_) => {
                        tracing::warn!(%peer, "too many controller RPC connections; closing one");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "controller RPC accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers the requests of one connection, in order, until it closes or misbehaves.
async fn serve_connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let idle = Duration::from_millis(CONNECTION_IDLE_TIMEOUT_MS);
    loop {
        let frame = match tokio::time::timeout(idle, read_frame(&mut stream)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "bad controller RPC frame; closing the connection");
                let answer = RpcResponse::BadRequest(e.to_string());
                let _ = respond(&mut stream, &answer).await;
                return;
            }
        };
        let request: RpcRequest = match serde_json::from_slice(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "unreadable controller RPC request; closing the connection");
                let answer = RpcResponse::BadRequest(format!("unreadable request: {e}"));
                let _ = respond(&mut stream, &answer).await;
                return;
            }
        };
        let answer = dispatch(request, &shared).await;
        if respond(&mut stream, &answer).await.is_err() {
            return;
        }
    }
}

async fn respond(stream: &mut TcpStream, answer: &RpcResponse) -> io::Result<()> {
    let payload = serde_json::to_vec(answer).map_err(io::Error::other)?;
    write_frame(stream, &payload).await
}

async fn dispatch(request: RpcRequest, shared: &Shared) -> RpcResponse {
    let raft = shared.raft();
    match request {
        RpcRequest::AppendEntries(r) => RpcResponse::AppendEntries(raft.append_entries(r).await),
        RpcRequest::Vote(r) => RpcResponse::Vote(raft.vote(r).await),
        RpcRequest::InstallSnapshot(r) => {
            RpcResponse::InstallSnapshot(raft.install_snapshot(r).await)
        }
        RpcRequest::Forward(f) => RpcResponse::Forward(shared.serve_forward(f).await),
    }
}
