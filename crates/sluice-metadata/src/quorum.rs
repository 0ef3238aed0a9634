//! The metadata quorum as the rest of a node sees it: requests go to the active controller,
//! which plans them into records and commits them; everyone reads the latest committed image.
//!
//! [`SingleVoterQuorum`] is the quorum of one voter, this node, as in Kafka's combined mode with
//! one controller: the controller's batch is committed once it is fsynced to the local metadata
//! log. A Raft quorum of several voters implements the same trait.

use std::sync::{Arc, Mutex, RwLock};

use crate::controller::{self, ControllerError, ControllerReply, ControllerRequest};
use crate::image::MetadataImage;
use crate::log::{MetadataLog, MetadataLogError};
use crate::records::MetadataRecord;

/// Why a request did not commit.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// The controller refused the request; nothing was written.
    #[error(transparent)]
    Refused(#[from] ControllerError),
    /// The metadata log could not be written; nothing was committed.
    #[error(transparent)]
    Storage(#[from] MetadataLogError),
    /// No controller leads the quorum, or the leader was lost mid-request (whether it committed
    /// is then unknown); a retry may succeed.
    #[error("metadata quorum unavailable: {0}")]
    Unavailable(String),
}

/// A committed request: the image right after it, and the controller's reply.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image with the request's records applied.
    pub image: Arc<MetadataImage>,
    /// The controller's answer.
    pub reply: ControllerReply,
}

/// One voter's replication state, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterState {
    /// The voter's node id.
    pub id: i32,
    /// The end of its metadata log (the next offset it would write).
    pub log_end_offset: i64,
    /// When the leader last heard from it (ms since the epoch; -1 unknown).
    pub last_fetch_ms: i64,
    /// When it was last caught up with the leader (ms since the epoch; -1 unknown).
    pub last_caught_up_ms: i64,
}

/// The quorum's state, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The active controller, -1 while there is none.
    pub leader_id: i32,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// One past the last committed offset.
    pub high_watermark: i64,
    /// Every voter.
    pub voters: Vec<VoterState>,
}

/// The metadata quorum.
pub trait MetadataQuorum: Send + Sync + std::fmt::Debug {
    /// The quorum's leader, epoch, high watermark and voters.
    fn status(&self) -> QuorumStatus;

    /// Plans `request` on the active controller and waits until its records are committed.
    fn submit(&self, request: ControllerRequest) -> Result<Committed, QuorumError>;

    /// The latest committed image.
    fn image(&self) -> Arc<MetadataImage>;

    /// Committed images as they come, for a node that must follow changes other nodes make;
    /// `None` when every change is submitted through this value (a single voter).
    fn watch(&self) -> Option<tokio::sync::watch::Receiver<Arc<MetadataImage>>> {
        None
    }

    /// Appends records as they are, with no planning (bootstrap and upgrade, before the node
    /// serves anything).
    fn bootstrap(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, QuorumError>;
}

/// A quorum of one voter: this node.
#[derive(Debug)]
pub struct SingleVoterQuorum {
    /// This node, the only voter and so the leader.
    node_id: i32,
    /// The log; locked for the whole of plan, append and publish, so requests apply one at a
    /// time in log order.
    log: Mutex<MetadataLog>,
    /// The latest committed image.
    image: RwLock<Arc<MetadataImage>>,
}

impl SingleVoterQuorum {
    /// A quorum over an opened log and the image it rebuilt, led by `node_id`. As a Kafka
    /// controller does when it wins an election, the node starts a new epoch on each start.
    pub fn new(node_id: i32, mut log: MetadataLog, image: MetadataImage) -> SingleVoterQuorum {
        let epoch = log.epoch().saturating_add(1);
        log.set_epoch(epoch);
        SingleVoterQuorum {
            node_id,
            log: Mutex::new(log),
            image: RwLock::new(Arc::new(image)),
        }
    }

    fn commit(
        &self,
        plan: impl FnOnce(
            &MetadataImage,
            i64,
        ) -> Result<(Vec<MetadataRecord>, ControllerReply), ControllerError>,
    ) -> Result<Committed, QuorumError> {
        // A panic while holding the lock left the log and the published image as they were
        // before the failed request (the image is published only after a successful append).
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.image();
        let (records, reply) = plan(&current, log.next_offset())?;
        if records.is_empty() {
            return Ok(Committed {
                image: current,
                reply,
            });
        }
        let next = Arc::new(log.append(&current, records)?);
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        Ok(Committed { image: next, reply })
    }
}

impl MetadataQuorum for SingleVoterQuorum {
    fn status(&self) -> QuorumStatus {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        QuorumStatus {
            leader_id: self.node_id,
            leader_epoch: log.epoch(),
            high_watermark: log.next_offset(),
            voters: vec![VoterState {
                id: self.node_id,
                log_end_offset: log.next_offset(),
                last_fetch_ms: now_ms,
                last_caught_up_ms: now_ms,
            }],
        }
    }

    fn submit(&self, request: ControllerRequest) -> Result<Committed, QuorumError> {
        self.commit(|image, next_offset| controller::plan(image, &request, next_offset))
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn bootstrap(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, QuorumError> {
        Ok(self
            .commit(|_, _| Ok((records, ControllerReply::Done)))?
            .image)
    }
}
