//! The transaction index (`<base offset>.txnindex`, Kafka's `TransactionIndex`): one entry per
//! transaction aborted in the segment, written when its abort marker is appended. A fetch at
//! `read_committed` collects the entries that overlap the fetched range, so consumers can drop
//! the aborted records.
//!
//! Entry format (34 bytes, big-endian): version i16 (0), producer id i64, first offset i64,
//! last offset i64 (the abort marker's offset), last stable offset i64 (the LSO right after the
//! marker: the first offset of the oldest other open transaction, or the marker's offset + 1).

/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first record in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// Last stable offset once the marker was written.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Appends the entry's 34 bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        for field in [
            self.producer_id,
            self.first_offset,
            self.last_offset,
            self.last_stable_offset,
        ] {
            out.extend_from_slice(&field.to_be_bytes());
        }
    }

    /// Decodes a whole file. Stops at a torn trailing entry or an entry of an unknown version
    /// and says so in the second value, so recovery can rewrite the file.
    pub fn decode_all(bytes: &[u8]) -> (Vec<AbortedTxn>, Option<String>) {
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
        for (i, chunk) in bytes.chunks(ENTRY_SIZE).enumerate() {
            if chunk.len() < ENTRY_SIZE {
                return (
                    entries,
                    Some(format!("torn entry of {} bytes at entry {i}", chunk.len())),
                );
            }
            let version = i16::from_be_bytes([chunk[0], chunk[1]]);
            if version != VERSION {
                return (
                    entries,
                    Some(format!("unknown version {version} at entry {i}")),
                );
            }
            let field = |at: usize| {
                i64::from_be_bytes(chunk[at..at + 8].try_into().expect("8 bytes of a chunk"))
            };
            entries.push(AbortedTxn {
                producer_id: field(2),
                first_offset: field(10),
                last_offset: field(18),
                last_stable_offset: field(26),
            });
        }
        (entries, None)
    }
}

/// A transaction ended by a commit or abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    pub aborted: bool,
    /// Last stable offset right after the marker.
    pub last_stable_offset: i64,
}

impl CompletedTxn {
    /// The index entry of an aborted transaction; `None` for a committed one.
    pub fn aborted_entry(&self) -> Option<AbortedTxn> {
        self.aborted.then_some(AbortedTxn {
            producer_id: self.producer_id,
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            last_stable_offset: self.last_stable_offset,
        })
    }
}

/// Adds to `out` the entries of `entries` that overlap `[start_offset, upper_bound_offset)`;
/// returns true once an entry shows that no later segment can hold an overlapping one (its
/// last stable offset reaches the upper bound), as Kafka's `collectAbortedTxns` does.
pub fn collect_overlapping(
    entries: &[AbortedTxn],
    start_offset: i64,
    upper_bound_offset: i64,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for entry in entries {
        if entry.last_offset >= start_offset && entry.first_offset < upper_bound_offset {
            out.push(*entry);
        }
        if entry.last_stable_offset >= upper_bound_offset {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_round_trip_and_torn_tails_are_reported() {
        let entries = [txn(1, 0, 10, 11), txn(-2, 5, i64::MAX, 6)];
        let mut bytes = Vec::new();
        for e in &entries {
            e.encode(&mut bytes);
        }
        assert_eq!(bytes.len(), 2 * ENTRY_SIZE);
        assert_eq!(AbortedTxn::decode_all(&bytes), (entries.to_vec(), None));
        let (torn, why) = AbortedTxn::decode_all(&bytes[..ENTRY_SIZE + 7]);
        assert_eq!(torn, vec![entries[0]]);
        assert!(why.unwrap().contains("torn"));
        bytes[ENTRY_SIZE + 1] = 9;
        let (bad, why) = AbortedTxn::decode_all(&bytes);
        assert_eq!(bad, vec![entries[0]]);
        assert!(why.unwrap().contains("version 9"));
    }

    #[test]
    fn collecting_keeps_overlaps_and_stops_at_the_upper_bound() {
        let entries = [txn(1, 0, 4, 5), txn(2, 6, 9, 10), txn(3, 12, 20, 21)];
        let mut out = Vec::new();
        // Fetch [5, 10): only the second overlaps; its LSO 10 reaches the bound.
        assert!(collect_overlapping(&entries, 5, 10, &mut out));
        assert_eq!(out, vec![entries[1]]);
        out.clear();
        // Fetch [0, 100): all three, and later segments may still hold more.
        assert!(!collect_overlapping(&entries, 0, 100, &mut out));
        assert_eq!(out.len(), 3);
    }
}
