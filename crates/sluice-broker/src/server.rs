//! The network server: accepts connections under a connection limit, runs one task per
//! connection that answers requests in order, and shuts down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use sluice_proto::api;
use sluice_proto::frame::{self, RequestPrefix};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection::{Connection, ConnectionError};
use crate::error::ApiError;
use crate::handlers::{self, api_versions, Reply};
use crate::shutdown::Shutdown;
use crate::zero_copy;

/// Longest wait for connections to finish their in-flight request at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the log dir's checkpoints are written (Kafka's
/// `log.flush.offset.checkpoint.interval.ms` default).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Longest backoff between failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A bound socket and the name of the listener it serves (`PLAINTEXT`, `CONTROLLER`, …).
#[derive(Debug)]
pub struct BoundListener {
    /// Listener name.
    pub name: String,
    /// The socket.
    pub socket: TcpListener,
}

/// Accepts client connections on one listener.
#[derive(Debug)]
struct Listener {
    /// The bound socket.
    listener: TcpListener,
    /// Its listener name; requests carry it in their context (responses name the endpoints of
    /// the same listener).
    name: Arc<str>,
    /// Shared broker state.
    broker: Arc<Broker>,
    /// Bounds open connections (`max.connections`); a permit is held per connection.
    limit: Arc<Semaphore>,
    /// Broadcasts the shutdown signal to every connection task.
    notify_shutdown: broadcast::Sender<()>,
    /// Dropped by each connection task when it ends; closing lets shutdown wait for all.
    shutdown_complete: mpsc::Sender<()>,
}

/// One connection's request loop.
#[derive(Debug)]
struct Handler {
    /// Shared broker state.
    broker: Arc<Broker>,
    /// The listener the connection came in on.
    listener: Arc<str>,
    /// The connection's bytes.
    connection: Connection,
    /// Peer address, for log lines.
    peer: std::net::SocketAddr,
    /// Reused buffer for encoding responses.
    out: BytesMut,
    /// Reused buffer for encoding zero-copy Fetch responses.
    fetch_out: zero_copy::GapBuf,
    /// Ends the loop between requests when the server shuts down.
    shutdown: Shutdown,
    /// Held until the task ends.
    _shutdown_complete: mpsc::Sender<()>,
}

/// Binds every listener the node serves: the client listeners of the broker role and the
/// controller listeners of the controller role. Split from [`run`] so tests and the binary can
/// learn the ports.
pub async fn bind(config: &BrokerConfig) -> std::io::Result<Vec<BoundListener>> {
    let node = &config.node;
    let mut bound = Vec::new();
    for l in &node.listeners {
        let controller = node.is_controller(&l.name);
        if (controller && !node.controller) || (!controller && !node.broker) {
            continue;
        }
        let host = if l.host.is_empty() {
            "0.0.0.0"
        } else {
            &l.host
        };
        let socket = TcpListener::bind((host, l.port)).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("listener {} on {host}:{}: {e}", l.name, l.port),
            )
        })?;
        bound.push(BoundListener {
            name: l.name.clone(),
            socket,
        });
    }
    Ok(bound)
}

/// Opens the broker and serves until `shutdown` completes, then closes every log cleanly.
pub async fn run(
    config: BrokerConfig,
    listeners: Vec<BoundListener>,
    shutdown: impl Future,
) -> Result<(), ApiError> {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let dir = config.log_dir.clone();
    let storage_error = |e: crate::node::StorageError| {
        ApiError::new(ResponseError::KafkaStorageError, e.to_string())
    };
    let mut listeners = listeners;
    let multi_voter = crate::node::is_multi_voter(&config);
    let controller_socket = if multi_voter {
        // The controller listener carries the quorum's Raft traffic.
        let at = listeners
            .iter()
            .position(|l| config.node.is_controller(&l.name))
            .ok_or_else(|| {
                ApiError::new(
                    ResponseError::UnknownServerError,
                    "a voter of several needs its controller listener bound",
                )
            })?;
        Some(listeners.remove(at).socket)
    } else {
        None
    };
    let opening = async move {
        let storage = match controller_socket {
            Some(socket) => Some(
                crate::node::open_cluster(&config, socket)
                    .await
                    .map_err(storage_error)?,
            ),
            None => None,
        };
        tokio::task::spawn_blocking(move || match storage {
            Some(s) => Broker::open(config, s.cluster_id, s.quorum),
            None => Broker::open_local(config),
        })
        .await
        .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))?
    };
    // A node may wait for its quorum at start: a shutdown signal ends the wait.
    tokio::pin!(shutdown);
    let broker = tokio::select! {
        opened = opening => opened?,
        _ = &mut shutdown => {
            tracing::info!("shut down before the node was ready");
            return Ok(());
        }
    };
    let broker = Arc::new(broker);
    let follower = broker
        .quorum()
        .watch()
        .map(|rx| tokio::spawn(follow_images(broker.clone(), rx)));
    let liveness = multi_voter.then(|| tokio::spawn(crate::liveness::run(broker.clone())));
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel(1);
    let mut accept_loops = tokio::task::JoinSet::new();
    for bound in listeners {
        tracing::info!(listener = %bound.name, addr = %bound.socket.local_addr()?, dir = %dir.display(), "sluice node serving");
        let mut server = Listener {
            listener: bound.socket,
            name: bound.name.into(),
            broker: broker.clone(),
            limit: limit.clone(),
            notify_shutdown: notify_shutdown.clone(),
            shutdown_complete: shutdown_complete_tx.clone(),
        };
        accept_loops.spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(listener = %server.name, error = %e, "accept loop failed");
            }
        });
    }
    let c = &broker.config;
    // Checkpoints at Kafka's `log.flush.offset.checkpoint.interval.ms` so that a crash recovers
    // from a recent recovery point.
    let checkpointer = tokio::spawn(every(
        broker.clone(),
        CHECKPOINT_INTERVAL.as_millis() as i64,
        Broker::checkpoint,
    ));
    let producer_expiry = tokio::spawn(every(
        broker.clone(),
        c.producer_id_expiration_check_interval_ms,
        Broker::expire_producers,
    ));
    let retention = tokio::spawn(every(
        broker.clone(),
        c.log_retention_check_interval_ms,
        Broker::enforce_retention,
    ));
    let cleaner = c.log_cleaner_enable.then(|| {
        tokio::spawn(every(
            broker.clone(),
            c.log_cleaner_backoff_ms,
            Broker::clean_logs,
        ))
    });
    let group_timers = tokio::spawn(crate::group::run_timers(broker.clone()));
    let txn_timers = tokio::spawn(crate::txn::run_timers(broker.clone()));
    tokio::select! {
        _ = accept_loops.join_next() => {}
        _ = &mut shutdown => tracing::info!("shutting down"),
    }
    if let Some(l) = liveness {
        l.abort();
    }
    if multi_voter {
        controlled_shutdown(&broker).await;
    }
    // Ending the accept loops drops their senders; the connection tasks hold the rest.
    accept_loops.shutdown().await;
    if let Some(f) = follower {
        f.abort();
    }
    checkpointer.abort();
    producer_expiry.abort();
    group_timers.abort();
    txn_timers.abort();
    retention.abort();
    if let Some(cleaner) = cleaner {
        cleaner.abort();
    }
    drop(notify_shutdown);
    drop(shutdown_complete_tx);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, shutdown_complete_rx.recv()).await;
    tokio::task::spawn_blocking(move || broker.close())
        .await
        .map_err(|e| {
            ApiError::new(
                kafka_protocol::error::ResponseError::UnknownServerError,
                e.to_string(),
            )
        })?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Kafka's controlled shutdown: asks the controller to move this broker's leaderships to other
/// in-sync replicas (and fence it) before the node stops, so clients move on at once rather
/// than after a session timeout. Bounded by the quorum's own submit timeout.
async fn controlled_shutdown(broker: &Arc<Broker>) {
    let request = sluice_metadata::controller::ControllerRequest::ControlledShutdown {
        broker_id: broker.config.node_id,
        broker_epoch: broker.broker_epoch(),
    };
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.quorum().submit(request)).await {
        Ok(Ok(_)) => tracing::info!("controlled shutdown: leaderships moved"),
        Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown did not commit"),
        Err(e) => tracing::warn!(error = %e, "controlled shutdown task failed"),
    }
}

/// Publishes every image the quorum commits to the hosted partitions (changes made through
/// other nodes), off the async workers, until the task is aborted.
async fn follow_images(
    broker: Arc<Broker>,
    mut images: tokio::sync::watch::Receiver<Arc<sluice_metadata::MetadataImage>>,
) {
    while images.changed().await.is_ok() {
        let image = images.borrow_and_update().clone();
        let b = broker.clone();
        let published = tokio::task::spawn_blocking(move || b.publish(image)).await;
        if let Ok(Err(e)) = published {
            tracing::error!(error = %e, "publishing a metadata image failed");
        }
    }
}

/// Runs the blocking `job` every `period_ms` (first after one period) off the async workers,
/// until the task is aborted: checkpoints, producer expiry, retention, the log cleaner.
pub(crate) async fn every(broker: Arc<Broker>, period_ms: i64, job: fn(&Broker)) {
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || job(&b)).await;
    }
}

impl Listener {
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let permit = self
                .limit
                .clone()
                .acquire_owned()
                .await
                .map_err(std::io::Error::other)?;
            let (socket, peer) = self.accept().await?;
            let mut handler = Handler {
                broker: self.broker.clone(),
                listener: self.name.clone(),
                connection: Connection::new(
                    socket,
                    self.broker.config.socket_request_max_bytes as usize,
                ),
                peer,
                out: BytesMut::with_capacity(64 * 1024),
                fetch_out: zero_copy::GapBuf::default(),
                shutdown: Shutdown::new(self.notify_shutdown.subscribe()),
                _shutdown_complete: self.shutdown_complete.clone(),
            };
            tokio::spawn(async move {
                if let Err(e) = handler.run().await {
                    tracing::info!(peer = %handler.peer, error = %e, "closing connection");
                }
                drop(permit);
            });
        }
    }

    /// Accepts one connection, backing off on errors such as running out of file descriptors.
    async fn accept(&mut self) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.listener.accept().await {
                Ok(pair) => return Ok(pair),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            }
        }
    }
}

/// Why a request ends its connection.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
}

impl Handler {
    async fn run(&mut self) -> Result<(), RequestError> {
        while !self.shutdown.is_shutdown() {
            let frame = tokio::select! {
                res = self.connection.read_frame() => res?,
                _ = self.shutdown.recv() => return Ok(()),
            };
            let Some(frame) = frame else {
                return Ok(());
            };
            self.process(frame).await?;
        }
        Ok(())
    }

    /// Decodes, handles and answers one request.
    async fn process(&mut self, mut frame: bytes::Bytes) -> Result<(), RequestError> {
        let prefix = RequestPrefix::peek(&frame)?;
        let api = ApiKey::try_from(prefix.api_key)
            .map_err(|_| frame::FrameError::UnknownApiKey(prefix.api_key))?;
        if !api::is_served(api, prefix.api_version) {
            if api == ApiKey::ApiVersions {
                // KIP-511: answer with a v0 body so the client can retry at a version we serve.
                let response = ResponseKind::ApiVersions(api_versions::unsupported_version());
                return self.send(api, 0, prefix.correlation_id, &response).await;
            }
            return Err(RequestError::UnsupportedVersion {
                api,
                version: prefix.api_version,
            });
        }
        let header = frame::decode_header(api, prefix.api_version, &mut frame)?;
        let request = frame::decode_body(api, prefix.api_version, &mut frame)?;
        let context = handlers::RequestContext {
            listener: &self.listener,
            api_version: prefix.api_version,
            client_id: header.client_id.as_ref().map_or("", |c| c.as_str()),
            peer: self.peer,
        };
        match handlers::handle(&self.broker, &context, request).await {
            Reply::Response(response) => {
                self.send(api, prefix.api_version, prefix.correlation_id, &response)
                    .await
            }
            Reply::Fetch(reply) => {
                zero_copy::write_fetch(
                    self.connection.stream(),
                    prefix.api_version,
                    prefix.correlation_id,
                    &reply.response,
                    &reply.fills,
                    &mut self.fetch_out,
                )
                .await
                .map_err(ConnectionError::Io)?;
                Ok(())
            }
            Reply::None => Ok(()),
        }
    }

    async fn send(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        response: &ResponseKind,
    ) -> Result<(), RequestError> {
        self.out.clear();
        frame::encode_response(api, version, correlation_id, response, &mut self.out)?;
        self.connection.write_all(&self.out).await?;
        Ok(())
    }
}
