//! The append's per-batch work in as few passes over the batch headers as possible: the log
//! checks a request once (with the CRC) before taking its lock, then, under the lock, one pass
//! stamps offsets and the leader epoch and records each batch's stored header in a plan that
//! the write, the indexes and producer state all read. The bytes reach the file with one write
//! call, either from a buffer stamped in place or, for a caller's immutable buffer, gathered
//! from patched copies of the 61-byte headers and the untouched rest of each batch.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;

use sluice_proto::batch::{self, BatchHeader, TimestampType, HEADER_SIZE};

use crate::error::Result;
use crate::io::LogIo;

/// Batches gathered into one `pwritev` call (two buffers each: header copy and the rest). A
/// request with more batches takes one call per this many; the log publishes none of them
/// until all are written.
const GATHER_BATCHES_MAX: usize = 32;
/// A plan keeps at most this many entries' room between appends (an odd request of thousands
/// of tiny batches does not pin its memory for the partition's lifetime).
const PLAN_CAPACITY_KEPT_MAX: usize = 1024;

/// One batch of an append as it will be stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlannedBatch {
    /// The header as written to the file (offsets and epoch stamped).
    pub(crate) header: BatchHeader,
    /// Where the batch starts in the caller's buffer.
    pub(crate) start: usize,
}

impl PlannedBatch {
    /// The batch's bytes in the caller's buffer.
    pub(crate) fn range(&self) -> Range<usize> {
        self.start..self.start + self.header.total_size()
    }
}

/// What a leader or coordinator writes into every batch it appends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// Offset of the first record of the append (the log end offset).
    pub(crate) base_offset: i64,
    pub(crate) leader_epoch: i32,
    /// `Some` for `message.timestamp.type=LogAppendTime`: `maxTimestamp` and the timestamp type
    /// are set too, and the CRC recomputed.
    pub(crate) log_append_time_ms: Option<i64>,
}

/// The caller's bytes for a stamped append.
#[derive(Debug)]
pub(crate) enum ClientBytes<'a> {
    /// Stamped in place, then written as they are.
    InPlace(&'a mut [u8]),
    /// Never modified: stamped copies of the headers are written beside them.
    Shared(&'a [u8]),
}

impl ClientBytes<'_> {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            ClientBytes::InPlace(bytes) => bytes,
            ClientBytes::Shared(bytes) => bytes,
        }
    }
}

/// What one append writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Payload<'a> {
    /// Bytes exactly as they go to the file.
    Whole(&'a [u8]),
    /// Unstamped batches and the stamped copies of their headers, in plan order.
    Split {
        batches: &'a [u8],
        headers: &'a [[u8; HEADER_SIZE]],
    },
}

impl<'a> Payload<'a> {
    /// Bytes the payload occupies in the file.
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Whole(bytes) | Payload::Split { batches: bytes, .. } => bytes.len(),
        }
    }

    /// The batches' bytes after their headers are the same in the file and here (control
    /// records are read from them).
    pub(crate) fn records_source(&self) -> &'a [u8] {
        match self {
            Payload::Whole(bytes) | Payload::Split { batches: bytes, .. } => bytes,
        }
    }
}

/// Writes `stamp` into one batch's header bytes; `records` is the rest of the batch (read for
/// the CRC only when the append time is stamped).
fn stamp_header(header: &mut [u8], records: &[u8], stamp: &Stamp, base_offset: i64) {
    batch::set_base_offset(header, base_offset);
    batch::set_partition_leader_epoch(header, stamp.leader_epoch);
    if let Some(time) = stamp.log_append_time_ms {
        batch::set_max_timestamp_split(header, records, TimestampType::LogAppendTime, time);
    }
}

/// Stamps every batch of `batches` (already checked: whole v2 batches) in place and fills
/// `plan` with them.
pub(crate) fn stamp_in_place(
    batches: &mut [u8],
    stamp: &Stamp,
    plan: &mut Vec<PlannedBatch>,
) -> Result<()> {
    plan.clear();
    let mut next_offset = stamp.base_offset;
    let mut start = 0;
    while start < batches.len() {
        let size = BatchHeader::parse(&batches[start..])?.total_size();
        let (header, records) = batches[start..start + size].split_at_mut(HEADER_SIZE);
        stamp_header(header, records, stamp, next_offset);
        let header = BatchHeader::parse(header)?;
        next_offset = header.next_offset();
        plan.push(PlannedBatch { header, start });
        start += size;
    }
    Ok(())
}

/// Like [`stamp_in_place`] but leaves `batches` alone: the stamped headers go to `headers`.
pub(crate) fn stamp_copies(
    batches: &[u8],
    stamp: &Stamp,
    plan: &mut Vec<PlannedBatch>,
    headers: &mut Vec<[u8; HEADER_SIZE]>,
) -> Result<()> {
    plan.clear();
    headers.clear();
    let mut next_offset = stamp.base_offset;
    let mut start = 0;
    while start < batches.len() {
        let size = BatchHeader::parse(&batches[start..])?.total_size();
        let (original, records) = batches[start..start + size].split_at(HEADER_SIZE);
        let mut copy = [0u8; HEADER_SIZE];
        copy.copy_from_slice(original);
        stamp_header(&mut copy, records, stamp, next_offset);
        let header = BatchHeader::parse(&copy)?;
        next_offset = header.next_offset();
        plan.push(PlannedBatch { header, start });
        headers.push(copy);
        start += size;
    }
    Ok(())
}

/// Fills `plan` with already stamped batches (a follower's), unchanged.
pub(crate) fn plan_as_is(batches: &[u8], plan: &mut Vec<PlannedBatch>) -> Result<()> {
    plan.clear();
    let mut start = 0;
    while start < batches.len() {
        let header = BatchHeader::parse(&batches[start..])?;
        plan.push(PlannedBatch { header, start });
        start += header.total_size();
    }
    Ok(())
}

/// Empties a plan for reuse, giving back the room of an unusually large one.
pub(crate) fn recycle<T>(scratch: &mut Vec<T>) {
    scratch.clear();
    if scratch.capacity() > PLAN_CAPACITY_KEPT_MAX {
        scratch.shrink_to(PLAN_CAPACITY_KEPT_MAX);
    }
}

/// Writes `payload` at `position`: one write call, or for a split payload one gathered call
/// per [`GATHER_BATCHES_MAX`] batches. On error some prefix may have reached the file.
pub(crate) fn write_payload(
    io: &dyn LogIo,
    file: &File,
    payload: Payload<'_>,
    plan: &[PlannedBatch],
    position: u64,
) -> io::Result<()> {
    let (batches, headers) = match payload {
        Payload::Whole(bytes) => return io.write_at(file, bytes, position),
        Payload::Split { batches, headers } => (batches, headers),
    };
    assert_eq!(
        plan.len(),
        headers.len(),
        "one header copy per planned batch"
    );
    let mut at = position;
    let mut slices = [IoSlice::new(&[]); 2 * GATHER_BATCHES_MAX];
    for (group, group_headers) in plan
        .chunks(GATHER_BATCHES_MAX)
        .zip(headers.chunks(GATHER_BATCHES_MAX))
    {
        let mut bytes = 0;
        for (i, (planned, header)) in group.iter().zip(group_headers).enumerate() {
            let range = planned.range();
            slices[2 * i] = IoSlice::new(header);
            slices[2 * i + 1] = IoSlice::new(&batches[range.start + HEADER_SIZE..range.end]);
            bytes += range.len();
        }
        io.write_vectored_at(file, &mut slices[..2 * group.len()], at)?;
        at += bytes as u64;
    }
    assert_eq!(
        at - position,
        batches.len() as u64,
        "the plan covers the payload"
    );
    Ok(())
}
