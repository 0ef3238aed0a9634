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
}

/// A committed request: the image right after it, and the controller's reply.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image with the request's records applied.
    pub image: Arc<MetadataImage>,
    /// The controller's answer.
    pub reply: ControllerReply,
}

/// The metadata quorum.
pub trait MetadataQuorum: Send + Sync + std::fmt::Debug {
    /// Plans `request` on the active controller and waits until its records are committed.
    fn submit(&self, request: ControllerRequest) -> Result<Committed, QuorumError>;

    /// The latest committed image.
    fn image(&self) -> Arc<MetadataImage>;

    /// Appends records as they are, with no planning (bootstrap and upgrade, before the node
    /// serves anything).
    fn bootstrap(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, QuorumError>;
}

/// A quorum of one voter: this node.
#[derive(Debug)]
pub struct SingleVoterQuorum {
    /// The log; locked for the whole of plan, append and publish, so requests apply one at a
    /// time in log order.
    log: Mutex<MetadataLog>,
    /// The latest committed image.
    image: RwLock<Arc<MetadataImage>>,
}

impl SingleVoterQuorum {
    /// A quorum over an opened log and the image it rebuilt.
    pub fn new(log: MetadataLog, image: MetadataImage) -> SingleVoterQuorum {
        SingleVoterQuorum {
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
