//! Record batch v2 (magic 2) header view: parse, validate and patch batches in place.
//!
//! The broker never decodes records on its hot paths: it reads the 61-byte batch header, checks
//! the CRC32C, patches `baseOffset` / `partitionLeaderEpoch` (both outside the CRC) and stores or
//! forwards the bytes unchanged. Everything here works on borrowed byte slices, allocates nothing
//! and does no per-record work.
//!
//! Layout (big endian), offsets in bytes:
//! ```text
//!  0 baseOffset i64          8 batchLength i32       12 partitionLeaderEpoch i32
//! 16 magic i8               17 crc u32               21 attributes i16
//! 23 lastOffsetDelta i32    27 baseTimestamp i64     35 maxTimestamp i64
//! 43 producerId i64         51 producerEpoch i16     53 baseSequence i32
//! 57 recordsCount i32       61 records...
//! ```
//! `batchLength` counts the bytes after itself, so a batch occupies `batchLength + 12` bytes.
//! The CRC covers attributes (offset 21) to the end of the batch.

use std::ops::Range;

/// Size of the v2 batch header in bytes.
pub const HEADER_SIZE: usize = 61;
/// Bytes before and including `batchLength`; a batch's total size is `batch_length + LOG_OVERHEAD`.
pub const LOG_OVERHEAD: usize = 12;
/// The only record-batch format version Sluice stores.
pub const MAGIC_V2: i8 = 2;
/// Smallest legal value of `batchLength` (a header with no records).
pub const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;
/// Producer id of batches written without idempotence.
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch of batches written without idempotence.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence of batches written without idempotence.
pub const NO_SEQUENCE: i32 = -1;
/// Partition leader epoch of batches that were never stamped by a leader.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const BASE_OFFSET_OFFSET: usize = 0;
const LENGTH_OFFSET: usize = 8;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_MASK: i16 = 0x08;
const TRANSACTIONAL_MASK: i16 = 0x10;
const CONTROL_MASK: i16 = 0x20;

/// Why a byte range is not a valid v2 record batch. Positions are byte offsets in the buffer given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes remain than a batch header needs.
    #[error("{remaining} bytes at position {position} are too few for a {HEADER_SIZE}-byte batch header")]
    TooShort { position: usize, remaining: usize },
    /// The magic byte is not 2.
    #[error("batch at position {position} has magic {magic}; only magic 2 is supported")]
    UnsupportedMagic { position: usize, magic: i8 },
    /// `batchLength` is negative or smaller than a header.
    #[error("batch at position {position} has invalid length {length}")]
    InvalidLength { position: usize, length: i32 },
    /// `batchLength` points past the end of the buffer (a torn or truncated batch).
    #[error("batch at position {position} needs {size} bytes but only {remaining} remain")]
    Truncated {
        position: usize,
        size: usize,
        remaining: usize,
    },
    /// The stored CRC32C does not match the bytes.
    #[error(
        "batch at position {position} has crc {stored:#010x} but its bytes give {computed:#010x}"
    )]
    CrcMismatch {
        position: usize,
        stored: u32,
        computed: u32,
    },
    /// `recordsCount` and `lastOffsetDelta` contradict each other.
    #[error("batch at position {position} has {records_count} records but lastOffsetDelta {last_offset_delta}")]
    InconsistentCount {
        position: usize,
        records_count: i32,
        last_offset_delta: i32,
    },
    /// The compression bits name no known codec.
    #[error("unknown compression codec {0}")]
    InvalidCompression(i16),
}

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionCodec {
    /// Records stored uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy (xerial framing).
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// Meaning of the batch timestamps (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the batch.
    LogAppendTime,
}

/// The fields of a v2 batch header, copied out of the bytes (61 bytes, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after this field; see [`BatchHeader::total_size`].
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn read_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn read_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn read_i64(buf: &[u8], at: usize) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(bytes)
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without looking at the records or the CRC.
    /// Checks only what is needed to interpret the fields: enough bytes and magic 2.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::TooShort {
                position: 0,
                remaining: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic { position: 0, magic });
        }
        Ok(BatchHeader {
            base_offset: read_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: read_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: read_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic,
            crc: read_i32(buf, CRC_OFFSET) as u32,
            attributes: read_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: read_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: read_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: read_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: read_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: read_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: read_i32(buf, BASE_SEQUENCE_OFFSET),
            records_count: read_i32(buf, RECORDS_COUNT_OFFSET),
        })
    }

    /// Total bytes the batch occupies (`batch_length + 12`); 0 if the length is negative.
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length).map_or(0, |len| len + LOG_OVERHEAD)
    }

    /// Offset of the last record (`base_offset + last_offset_delta`), saturating.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// The offset that follows this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Compression codec named by attributes bits 0-2.
    pub fn compression(&self) -> Result<CompressionCodec, BatchError> {
        match self.attributes & COMPRESSION_MASK {
            0 => Ok(CompressionCodec::None),
            1 => Ok(CompressionCodec::Gzip),
            2 => Ok(CompressionCodec::Snappy),
            3 => Ok(CompressionCodec::Lz4),
            4 => Ok(CompressionCodec::Zstd),
            other => Err(BatchError::InvalidCompression(other)),
        }
    }

    /// Timestamp type named by attributes bit 3.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_MASK != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_MASK != 0
    }

    /// Whether the batch holds control records such as commit/abort markers (attributes bit 5).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_MASK != 0
    }

    /// Whether the batch was written by an idempotent or transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// `sequence + increment`, wrapping from `i32::MAX` to 0 (Kafka's `incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence < 0 || increment < 0 {
        return sequence;
    }
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// CRC32C of a batch as stored in its header (attributes to the end).
/// `batch` must hold exactly one whole batch of at least [`HEADER_SIZE`] bytes.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Whether the CRC stored in `batch` matches its bytes. False for anything shorter than a header.
pub fn validate_crc(batch: &[u8]) -> bool {
    batch.len() >= HEADER_SIZE && compute_crc(batch) == read_i32(batch, CRC_OFFSET) as u32
}

/// Overwrites `baseOffset` (outside the CRC: the CRC stays valid).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites `partitionLeaderEpoch` (outside the CRC: the CRC stays valid).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    let at = PARTITION_LEADER_EPOCH_OFFSET;
    batch[at..at + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the timestamp type and `maxTimestamp` and recomputes the CRC, as a broker does for
/// `message.timestamp.type=LogAppendTime`. `batch` must hold exactly one whole batch.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp: i64) {
    let (header, records) = batch.split_at_mut(HEADER_SIZE);
    set_max_timestamp_split(header, records, timestamp_type, max_timestamp);
}

/// [`set_max_timestamp`] for a batch whose header (its first [`HEADER_SIZE`] bytes) is held
/// apart from the rest, which stays untouched: the broker writes a patched copy of the header
/// beside the producer's immutable bytes. `header` must be exactly [`HEADER_SIZE`] bytes.
pub fn set_max_timestamp_split(
    header: &mut [u8],
    records: &[u8],
    timestamp_type: TimestampType,
    max_timestamp: i64,
) {
    assert_eq!(header.len(), HEADER_SIZE, "a split batch header is whole");
    let mut attributes = read_i16(header, ATTRIBUTES_OFFSET);
    match timestamp_type {
        TimestampType::CreateTime => attributes &= !TIMESTAMP_TYPE_MASK,
        TimestampType::LogAppendTime => attributes |= TIMESTAMP_TYPE_MASK,
    }
    header[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    header[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES_OFFSET..]), records);
    header[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Checks the structure of the batch at `position` in `buf`: header, magic, length within
/// `buf`, count consistency and (if `verify_crc`) the CRC. Returns the header and the byte
/// range of the whole batch.
pub fn check_batch_at(
    buf: &[u8],
    position: usize,
    verify_crc: bool,
) -> Result<(BatchHeader, Range<usize>), BatchError> {
    let rest = buf.get(position..).unwrap_or(&[]);
    if rest.len() < HEADER_SIZE {
        return Err(BatchError::TooShort {
            position,
            remaining: rest.len(),
        });
    }
    let header = BatchHeader::parse(rest).map_err(|err| at_position(err, position))?;
    check_header(&header, position, rest.len())?;
    let size = header.total_size();
    let batch = &rest[..size];
    if verify_crc {
        let computed = compute_crc(batch);
        if computed != header.crc {
            return Err(BatchError::CrcMismatch {
                position,
                stored: header.crc,
                computed,
            });
        }
    }
    Ok((header, position..position + size))
}

/// Header-only checks that need no record bytes: length sane and within `remaining` bytes,
/// `recordsCount` and `lastOffsetDelta` not contradictory. Compacted batches may hold fewer
/// records than `lastOffsetDelta + 1`, never more.
pub fn check_header(
    header: &BatchHeader,
    position: usize,
    remaining: usize,
) -> Result<(), BatchError> {
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(BatchError::InvalidLength {
            position,
            length: header.batch_length,
        });
    }
    let size = header.total_size();
    if size > remaining {
        return Err(BatchError::Truncated {
            position,
            size,
            remaining,
        });
    }
    let count = header.records_count;
    let delta = header.last_offset_delta;
    if count < 0 || delta < 0 || i64::from(count) > i64::from(delta) + 1 {
        return Err(BatchError::InconsistentCount {
            position,
            records_count: count,
            last_offset_delta: delta,
        });
    }
    Ok(())
}

fn at_position(err: BatchError, position: usize) -> BatchError {
    match err {
        BatchError::TooShort { remaining, .. } => BatchError::TooShort {
            position,
            remaining,
        },
        BatchError::UnsupportedMagic { magic, .. } => {
            BatchError::UnsupportedMagic { position, magic }
        }
        other => other,
    }
}

/// Iterates over concatenated batches in a buffer, yielding each header with its byte range.
/// After the first error it yields nothing more; [`BatchIter::position`] then tells where the
/// valid prefix ends. Never panics, whatever the bytes.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    position: usize,
    verify_crc: bool,
    failed: bool,
}

impl<'a> BatchIter<'a> {
    /// Iterates and checks every batch's CRC.
    pub fn new(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            position: 0,
            verify_crc: true,
            failed: false,
        }
    }

    /// Iterates without checking CRCs (for bytes already validated, such as a recovered log).
    pub fn without_crc(buf: &'a [u8]) -> BatchIter<'a> {
        BatchIter {
            buf,
            position: 0,
            verify_crc: false,
            failed: false,
        }
    }

    /// End of the last batch yielded: the length of the valid prefix of the buffer.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.buf.len() {
            return None;
        }
        match check_batch_at(self.buf, self.position, self.verify_crc) {
            Ok((header, range)) => {
                self.position = range.end;
                Some(Ok((header, range)))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

/// One record for [`encode_batch`]: relative timestamp, key, value. No headers.
#[derive(Debug, Clone, Copy)]
pub struct SimpleRecord<'a> {
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Batch-level fields for [`encode_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub base_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub transactional: bool,
    /// Control batch (commit/abort markers), attributes bit 5.
    pub control: bool,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            base_offset: 0,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            base_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            transactional: false,
            control: false,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// Appends an uncompressed v2 batch holding `records` to `out`, with a valid CRC. Used by tests,
/// benchmarks and (later) the broker's own control batches. Returns the batch's byte range.
pub fn encode_batch(
    out: &mut Vec<u8>,
    spec: &BatchSpec,
    records: &[SimpleRecord<'_>],
) -> Range<usize> {
    let start = out.len();
    out.resize(start + HEADER_SIZE, 0);
    let mut record_buf = Vec::new();
    let mut max_delta = 0i64;
    for (index, record) in records.iter().enumerate() {
        record_buf.clear();
        record_buf.push(0); // record attributes
        put_varint(&mut record_buf, record.timestamp_delta);
        put_varint(&mut record_buf, index as i64);
        for field in [record.key, record.value] {
            match field {
                Some(bytes) => {
                    put_varint(&mut record_buf, bytes.len() as i64);
                    record_buf.extend_from_slice(bytes);
                }
                None => put_varint(&mut record_buf, -1),
            }
        }
        put_varint(&mut record_buf, 0); // header count
        put_varint(out, record_buf.len() as i64);
        out.extend_from_slice(&record_buf);
        max_delta = max_delta.max(record.timestamp_delta);
    }
    let batch = &mut out[start..];
    let mut attributes: i16 = 0;
    if spec.transactional {
        attributes |= TRANSACTIONAL_MASK;
    }
    if spec.control {
        attributes |= CONTROL_MASK;
    }
    let count = records.len() as i32;
    batch[0..8].copy_from_slice(&spec.base_offset.to_be_bytes());
    let batch_length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
    batch[12..16].copy_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    batch[16] = MAGIC_V2 as u8;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[23..27].copy_from_slice(&(count - 1).max(0).to_be_bytes());
    batch[27..35].copy_from_slice(&spec.base_timestamp.to_be_bytes());
    batch[35..43].copy_from_slice(&(spec.base_timestamp + max_delta).to_be_bytes());
    batch[43..51].copy_from_slice(&spec.producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&spec.producer_epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&spec.base_sequence.to_be_bytes());
    batch[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    start..out.len()
}

/// What a control record says (its key: version i16, type i16). Kafka's `ControlRecordType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    /// End of an aborted transaction (type 0).
    Abort,
    /// End of a committed transaction (type 1).
    Commit,
    /// Any other type (e.g. KRaft's own control records); not a transaction marker.
    Other(i16),
}

/// Reads a signed zigzag varint at `*at`, moving `*at` past it.
fn get_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// The type of the first control record of a control batch (`batch` is the whole batch).
/// A prefix of the batch holding the first record is enough. `None` if the batch is not a
/// control batch or its first record cannot be read; control batches are never compressed, so
/// the record is read in place.
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.records_count < 1 {
        return None;
    }
    let records = batch.get(HEADER_SIZE..header.total_size().min(batch.len()))?;
    let mut at = 0;
    let _length = get_varint(records, &mut at)?;
    at += 1; // record attributes
    let _timestamp_delta = get_varint(records, &mut at)?;
    let _offset_delta = get_varint(records, &mut at)?;
    let key_length = get_varint(records, &mut at)?;
    if key_length < 4 {
        return None;
    }
    let key = records.get(at..at + 4)?;
    Some(match i16::from_be_bytes([key[2], key[3]]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        other => ControlType::Other(other),
    })
}

/// Appends a transaction marker batch (one control record: key version 0 and type 0 abort or
/// 1 commit; value version 0 and the coordinator epoch), as a transaction coordinator writes it.
pub fn encode_end_txn_marker(
    out: &mut Vec<u8>,
    spec: &BatchSpec,
    commit: bool,
    coordinator_epoch: i32,
) -> Range<usize> {
    let key = [0, 0, 0, u8::from(commit)];
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let spec = BatchSpec {
        transactional: true,
        control: true,
        ..*spec
    };
    let record = SimpleRecord {
        timestamp_delta: 0,
        key: Some(&key),
        value: Some(&value),
    };
    encode_batch(out, &spec, &[record])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    };
    use proptest::prelude::*;

    fn sample(records: usize, base_timestamp: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let values: Vec<Vec<u8>> = (0..records).map(|i| vec![i as u8; 10 + i]).collect();
        let recs: Vec<SimpleRecord<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, v)| SimpleRecord {
                timestamp_delta: i as i64 * 3,
                key: None,
                value: Some(v),
            })
            .collect();
        let spec = BatchSpec {
            base_timestamp,
            ..BatchSpec::default()
        };
        encode_batch(&mut out, &spec, &recs);
        out
    }

    #[test]
    fn encoded_batch_parses_and_decodes_with_kafka_protocol() {
        let buf = sample(3, 1_000);
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(header.total_size(), buf.len());
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_006);
        assert!(validate_crc(&buf));
        let mut bytes = bytes::Bytes::from(buf);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 3);
        assert_eq!(set.records[2].offset, 2);
        assert_eq!(set.records[2].timestamp, 1_006);
    }

    #[test]
    fn header_of_kafka_protocol_encoded_batch() {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id: 42,
                producer_epoch: 3,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: i,
                sequence: 10 + i as i32,
                timestamp: 500 + i,
                key: None,
                value: Some(bytes::Bytes::from_static(b"hello")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(header.producer_id, 42);
        assert_eq!(header.producer_epoch, 3);
        assert_eq!(header.base_sequence, 10);
        assert_eq!(header.last_sequence(), 13);
        assert_eq!(header.records_count, 4);
        assert_eq!(header.last_offset(), 3);
        assert_eq!(header.max_timestamp, 503);
        assert_eq!(header.compression(), Ok(CompressionCodec::None));
        assert!(validate_crc(&buf));
    }

    #[test]
    fn patching_offsets_and_epoch_keeps_crc_valid() {
        let mut buf = sample(2, 0);
        set_base_offset(&mut buf, 1234);
        set_partition_leader_epoch(&mut buf, 9);
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(
            (header.base_offset, header.partition_leader_epoch),
            (1234, 9)
        );
        assert_eq!(header.next_offset(), 1236);
        assert!(validate_crc(&buf));
    }

    #[test]
    fn set_max_timestamp_recomputes_crc() {
        let mut buf = sample(2, 100);
        set_max_timestamp(&mut buf, TimestampType::LogAppendTime, 99_999);
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(header.max_timestamp, 99_999);
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert!(validate_crc(&buf));
    }

    #[test]
    fn set_max_timestamp_on_a_split_header_gives_the_same_bytes() {
        let original = sample(3, 100);
        let mut in_place = original.clone();
        set_max_timestamp(&mut in_place, TimestampType::LogAppendTime, 77_777);
        let mut header = [0u8; HEADER_SIZE];
        header.copy_from_slice(&original[..HEADER_SIZE]);
        set_max_timestamp_split(
            &mut header,
            &original[HEADER_SIZE..],
            TimestampType::LogAppendTime,
            77_777,
        );
        assert_eq!(header[..], in_place[..HEADER_SIZE]);
        assert_eq!(original[HEADER_SIZE..], in_place[HEADER_SIZE..]);
    }

    #[test]
    fn end_txn_markers_are_read_back() {
        for commit in [false, true] {
            let mut buf = Vec::new();
            let spec = BatchSpec {
                producer_id: 7,
                producer_epoch: 1,
                ..BatchSpec::default()
            };
            encode_end_txn_marker(&mut buf, &spec, commit, 3);
            let header = BatchHeader::parse(&buf).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert!(validate_crc(&buf));
            let expected = if commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            };
            assert_eq!(control_type(&buf), Some(expected));
            // kafka-protocol reads the same record as a control record.
            let mut bytes = bytes::Bytes::from(buf);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert!(set.records[0].control);
        }
        // Not a control batch, or a control record too short to hold a type.
        assert_eq!(control_type(&sample(1, 0)), None);
        let mut buf = Vec::new();
        let spec = BatchSpec {
            control: true,
            ..BatchSpec::default()
        };
        let short = SimpleRecord {
            timestamp_delta: 0,
            key: Some(&[0, 0]),
            value: None,
        };
        encode_batch(&mut buf, &spec, &[short]);
        assert_eq!(control_type(&buf), None);
        assert_eq!(control_type(&buf[..HEADER_SIZE + 2]), None);
        // A prefix with the first record is enough.
        let mut marker = Vec::new();
        encode_end_txn_marker(&mut marker, &BatchSpec::default(), true, 0);
        assert_eq!(
            control_type(&marker[..HEADER_SIZE + 12]),
            Some(ControlType::Commit)
        );
    }

    #[test]
    fn attribute_bits() {
        let mut buf = sample(1, 0);
        buf[22] = 0x33; // lz4 | transactional | control
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(header.compression(), Ok(CompressionCodec::Lz4));
        assert!(header.is_transactional() && header.is_control());
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        buf[22] = 0x07;
        assert_eq!(
            BatchHeader::parse(&buf).unwrap().compression(),
            Err(BatchError::InvalidCompression(7))
        );
    }

    #[test]
    fn iterator_walks_concatenated_batches_and_stops_at_errors() {
        let mut buf = sample(1, 0);
        buf.extend_from_slice(&sample(5, 0));
        let first_len = BatchHeader::parse(&buf).unwrap().total_size();
        let items: Vec<_> = BatchIter::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].1, first_len..buf.len());

        // Torn tail: the second batch is cut short.
        let torn = &buf[..buf.len() - 3];
        let mut iter = BatchIter::new(torn);
        assert!(iter.next().unwrap().is_ok());
        assert!(matches!(
            iter.next(),
            Some(Err(BatchError::Truncated { .. }))
        ));
        assert!(iter.next().is_none());
        assert_eq!(iter.position(), first_len);

        // A flipped byte in the records of the second batch.
        let mut flipped = buf.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0x40;
        let errors: Vec<_> = BatchIter::new(&flipped).filter_map(Result::err).collect();
        assert!(
            matches!(errors[..], [BatchError::CrcMismatch { position, .. }] if position == first_len)
        );
        assert_eq!(
            BatchIter::without_crc(&flipped)
                .filter(Result::is_ok)
                .count(),
            2
        );
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let good = sample(2, 0);
        let mut bad_magic = good.clone();
        bad_magic[16] = 1;
        assert!(matches!(
            check_batch_at(&bad_magic, 0, true),
            Err(BatchError::UnsupportedMagic { magic: 1, .. })
        ));
        let mut negative = good.clone();
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            check_batch_at(&negative, 0, true),
            Err(BatchError::InvalidLength { .. })
        ));
        let mut huge = good.clone();
        huge[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            check_batch_at(&huge, 0, true),
            Err(BatchError::Truncated { .. })
        ));
        let mut count = good.clone();
        count[57..61].copy_from_slice(&5i32.to_be_bytes());
        assert!(matches!(
            check_batch_at(&count, 0, false),
            Err(BatchError::InconsistentCount { .. })
        ));
        assert!(matches!(
            check_batch_at(&good[..30], 0, true),
            Err(BatchError::TooShort { remaining: 30, .. })
        ));
        assert!(matches!(
            check_batch_at(&good, good.len() + 10, true),
            Err(BatchError::TooShort { remaining: 0, .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(NO_SEQUENCE, 3), NO_SEQUENCE);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut total = 0;
            let mut iter = BatchIter::new(&bytes);
            for (header, range) in iter.by_ref().flatten() {
                total += range.len();
                let _ = (header.compression(), header.last_sequence(), header.next_offset());
            }
            prop_assert_eq!(iter.position(), total);
        }

        #[test]
        fn random_header_bytes_on_valid_magic_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 61..200),
        ) {
            bytes[16] = 2;
            for item in BatchIter::without_crc(&bytes) {
                let _ = item;
            }
        }
    }
}
