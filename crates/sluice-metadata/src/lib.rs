//! Sluice's cluster metadata: the records every metadata change is made of ([`records`]), the
//! image they build ([`image`]), the controller's state machine that turns requests into records
//! ([`controller`]), the durable metadata log with its snapshots ([`log`]), `meta.properties`
//! and cluster ids ([`meta_properties`]), and the upgrade of the pre-log metadata file
//! ([`legacy`]).
//!
//! No networking and no partition storage here: the broker reads the image, and the quorum
//! layer moves batches of records between controllers.

pub mod controller;
pub mod features;
pub mod image;
pub mod legacy;
pub mod log;
pub mod meta_properties;
pub mod quorum;
pub mod raft;
pub mod records;

pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use log::MetadataLog;
pub use quorum::{MetadataQuorum, SingleVoterQuorum};
pub use records::MetadataRecord;
