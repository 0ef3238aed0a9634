//! Sparse offset index (`.index`) and time index (`.timeindex`) of one segment.
//!
//! Both are kept whole in memory (8 or 12 bytes per entry, one entry per `index.interval.bytes`
//! of log) and mirrored to their files by appending entries; the files use Kafka's entry layout
//! (big endian) without Kafka's preallocation, so their length is always a whole number of
//! entries. Offsets are stored relative to the segment's base offset as `u32`.

/// Bytes per offset-index entry: relative offset u32, file position u32.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Bytes per time-index entry: timestamp i64, relative offset u32.
pub const TIME_ENTRY_SIZE: usize = 12;

/// One offset-index entry: the batch whose last offset is `relative_offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time-index entry: up to `relative_offset`, the largest timestamp seen is `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// In-memory offset index; entries strictly increase in both fields.
#[derive(Debug, Clone, Default)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Decodes an index file; `None` if it is not a whole number of strictly increasing entries
    /// inside a log of `log_size` bytes (the caller then rebuilds it).
    pub fn decode(bytes: &[u8], log_size: u64) -> Option<OffsetIndex> {
        if bytes.len() % OFFSET_ENTRY_SIZE != 0 {
            return None;
        }
        let mut index = OffsetIndex {
            entries: Vec::with_capacity(bytes.len() / OFFSET_ENTRY_SIZE),
        };
        for chunk in bytes.chunks_exact(OFFSET_ENTRY_SIZE) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if u64::from(entry.position) >= log_size || !index.accepts(entry) {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }

    /// Whether `entry` may follow the current last entry.
    pub fn accepts(&self, entry: OffsetEntry) -> bool {
        self.entries.last().is_none_or(|last| {
            entry.relative_offset > last.relative_offset && entry.position > last.position
        })
    }

    /// Adds an entry; the caller guarantees [`OffsetIndex::accepts`].
    pub fn push(&mut self, entry: OffsetEntry) {
        assert!(
            self.accepts(entry),
            "offset index entries must increase: {entry:?}"
        );
        self.entries.push(entry);
    }

    /// Encodes one entry as it is stored in the file.
    pub fn encode_entry(entry: OffsetEntry, out: &mut Vec<u8>) {
        out.extend_from_slice(&entry.relative_offset.to_be_bytes());
        out.extend_from_slice(&entry.position.to_be_bytes());
    }

    /// Position from which to scan for `relative_offset`: the entry with the largest offset
    /// `<= relative_offset`, or the segment start.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let count = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        count.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// The last batch start known to lie at or before `position`.
    pub fn floor_position(&self, position: u32) -> u32 {
        let count = self.entries.partition_point(|e| e.position <= position);
        count.checked_sub(1).map_or(0, |i| self.entries[i].position)
    }

    /// Drops entries for batches starting at or after `position`.
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Size of the index file holding these entries.
    pub fn file_len(&self) -> u64 {
        (self.entries.len() * OFFSET_ENTRY_SIZE) as u64
    }
}

/// In-memory time index; timestamps strictly increase, offsets never decrease.
#[derive(Debug, Clone, Default)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Decodes a time-index file; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if bytes.len() % TIME_ENTRY_SIZE != 0 {
            return None;
        }
        let mut index = TimeIndex {
            entries: Vec::with_capacity(bytes.len() / TIME_ENTRY_SIZE),
        };
        for chunk in bytes.chunks_exact(TIME_ENTRY_SIZE) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            if !index.accepts(entry) {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }

    /// Whether `entry` would add information: a strictly larger timestamp.
    pub fn accepts(&self, entry: TimeEntry) -> bool {
        self.entries.last().is_none_or(|last| {
            entry.timestamp > last.timestamp && entry.relative_offset >= last.relative_offset
        })
    }

    /// Adds an entry if it carries a larger timestamp; returns whether it was added.
    pub fn maybe_push(&mut self, entry: TimeEntry) -> bool {
        let accepted = self.accepts(entry);
        if accepted {
            self.entries.push(entry);
        }
        accepted
    }

    pub fn encode_entry(entry: TimeEntry, out: &mut Vec<u8>) {
        out.extend_from_slice(&entry.timestamp.to_be_bytes());
        out.extend_from_slice(&entry.relative_offset.to_be_bytes());
    }

    /// The relative offset from which to scan for the first batch with max timestamp `>= ts`:
    /// the offset of the last entry whose timestamp is `< ts` (all batches up to it are older),
    /// or the segment start.
    pub fn lookup(&self, timestamp: i64) -> Option<u32> {
        let count = self.entries.partition_point(|e| e.timestamp < timestamp);
        count
            .checked_sub(1)
            .map(|i| self.entries[i].relative_offset)
    }

    /// Drops entries pointing at `relative_offset` or later.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn file_len(&self) -> u64 {
        (self.entries.len() * TIME_ENTRY_SIZE) as u64
    }
}

impl OffsetIndex {
    /// All entries, oldest first.
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }
}

impl TimeIndex {
    /// All entries, oldest first.
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset_index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in entries {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn offset_lookup_is_a_floor_search() {
        let index = offset_index(&[(9, 4100), (19, 8200), (29, 12300)]);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(8), 0);
        assert_eq!(index.lookup(9), 4100);
        assert_eq!(index.lookup(25), 8200);
        assert_eq!(index.lookup(u32::MAX), 12300);
        assert_eq!(index.floor_position(8199), 4100);
        assert_eq!(index.floor_position(8200), 8200);
        assert_eq!(OffsetIndex::default().lookup(5), 0);
    }

    #[test]
    fn offset_index_round_trips_and_rejects_garbage() {
        let index = offset_index(&[(1, 10), (5, 90)]);
        let mut bytes = Vec::new();
        for entry in &index.entries {
            OffsetIndex::encode_entry(*entry, &mut bytes);
        }
        assert_eq!(bytes.len() as u64, index.file_len());
        assert_eq!(
            OffsetIndex::decode(&bytes, 100).unwrap().entries,
            index.entries
        );
        assert!(
            OffsetIndex::decode(&bytes, 90).is_none(),
            "position past the log"
        );
        assert!(
            OffsetIndex::decode(&bytes[..7], 100).is_none(),
            "partial entry"
        );
        let mut unordered = bytes.clone();
        unordered.extend_from_slice(&bytes[..8]);
        assert!(
            OffsetIndex::decode(&unordered, 100).is_none(),
            "not increasing"
        );
    }

    #[test]
    fn offset_truncation_drops_entries_at_or_after_position() {
        let mut index = offset_index(&[(9, 4100), (19, 8200), (29, 12300)]);
        index.truncate_to_position(8200);
        assert_eq!(
            index.last(),
            Some(OffsetEntry {
                relative_offset: 9,
                position: 4100
            })
        );
        index.truncate_to_position(0);
        assert!(index.is_empty());
    }

    #[test]
    fn time_index_keeps_only_increasing_timestamps() {
        let mut index = TimeIndex::default();
        assert!(index.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 0
        }));
        assert!(!index.maybe_push(TimeEntry {
            timestamp: 100,
            relative_offset: 5
        }));
        assert!(!index.maybe_push(TimeEntry {
            timestamp: 50,
            relative_offset: 6
        }));
        assert!(index.maybe_push(TimeEntry {
            timestamp: 200,
            relative_offset: 10
        }));
        assert_eq!(index.lookup(50), None);
        assert_eq!(index.lookup(100), None);
        assert_eq!(index.lookup(101), Some(0));
        assert_eq!(index.lookup(300), Some(10));
        let mut bytes = Vec::new();
        for entry in &index.entries {
            TimeIndex::encode_entry(*entry, &mut bytes);
        }
        assert_eq!(TimeIndex::decode(&bytes).unwrap().entries, index.entries);
        index.truncate_to_offset(10);
        assert_eq!(index.len(), 1);
    }
}
