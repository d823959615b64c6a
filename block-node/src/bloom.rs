//! `HeldChunks`: the Bloom filter of chunk hashes this node holds, with a
//! sequence-numbered log of recent additions so routers can mirror it by
//! applying deltas instead of re-fetching the whole filter.
//!
//! A mirror built from a snapshot taken at sequence S plus every addition
//! after S holds every hash the node holds: no false negatives. Deletions are
//! not removed from a Bloom filter; they only raise the false-positive rate
//! until the filter is rebuilt at the next start.

use std::collections::VecDeque;

use growable_bloom_filter::GrowableBloom;
use tessera_proto::ChunkHash;

/// Target false-positive rate of the filter.
pub const BLOOM_FP_RATE: f64 = 0.001;

pub struct HeldChunks {
    filter: GrowableBloom,
    sequence: u64,
    recent: VecDeque<(u64, ChunkHash)>,
    window: usize,
    incarnation: String,
}

/// What a mirror needs to catch up.
pub enum BloomUpdate {
    Snapshot { sequence: u64, bytes: Vec<u8> },
    Delta { sequence: u64, added: Vec<ChunkHash> },
}

/// Creates an empty filter sized for `expected_chunks`.
pub fn new_filter(expected_chunks: u64) -> GrowableBloom {
    GrowableBloom::new(BLOOM_FP_RATE, expected_chunks.max(1024) as usize)
}

/// Decodes a snapshot produced by [`HeldChunks::update_since`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<GrowableBloom, postcard::Error> {
    postcard::from_bytes(bytes)
}

impl HeldChunks {
    pub fn new(expected_chunks: u64, window: usize) -> Self {
        Self {
            filter: new_filter(expected_chunks),
            sequence: 0,
            recent: VecDeque::new(),
            window: window.max(1),
            incarnation: random_incarnation(),
        }
    }

    pub fn incarnation(&self) -> &str {
        &self.incarnation
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn len(&self) -> usize {
        self.filter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    pub fn contains(&self, chunk: &ChunkHash) -> bool {
        self.filter.contains(chunk.as_bytes())
    }

    /// Records that the node now holds `chunk`.
    pub fn insert(&mut self, chunk: &ChunkHash) {
        // `insert` is false when all the hash's bits were already set; a mirror
        // with the same history has them set too, so no delta is needed.
        if self.filter.insert(chunk.as_bytes()) {
            self.sequence += 1;
            self.recent.push_back((self.sequence, *chunk));
            while self.recent.len() > self.window {
                self.recent.pop_front();
            }
        }
    }

    /// A delta of additions after `since` when the log still covers it and the
    /// mirror was built against this incarnation; otherwise a snapshot.
    pub fn update_since(&self, since: Option<u64>, incarnation: &str) -> Result<BloomUpdate, postcard::Error> {
        if let Some(since) = since {
            let covered = match self.recent.front() {
                Some((first, _)) => since + 1 >= *first,
                None => true,
            };
            if incarnation == self.incarnation && since <= self.sequence && covered {
                let skip = self.recent.partition_point(|(seq, _)| *seq <= since);
                let added = self.recent.iter().skip(skip).map(|(_, h)| *h).collect();
                return Ok(BloomUpdate::Delta { sequence: self.sequence, added });
            }
        }
        Ok(BloomUpdate::Snapshot { sequence: self.sequence, bytes: postcard::to_allocvec(&self.filter)? })
    }
}

fn random_incarnation() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// A router-side copy of a node's filter, kept current with [`BloomUpdate`]s.
pub struct BloomMirror {
    pub filter: GrowableBloom,
    pub sequence: u64,
    pub incarnation: String,
}

impl BloomMirror {
    pub fn from_snapshot(incarnation: String, sequence: u64, bytes: &[u8]) -> Result<Self, postcard::Error> {
        Ok(Self { filter: decode_snapshot(bytes)?, sequence, incarnation })
    }

    pub fn apply_delta(&mut self, sequence: u64, added: &[ChunkHash]) {
        for h in added {
            self.filter.insert(h.as_bytes());
        }
        self.sequence = sequence;
    }

    pub fn may_contain(&self, chunk: &ChunkHash) -> bool {
        self.filter.contains(chunk.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u32) -> ChunkHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        b[31] = 0xAB;
        ChunkHash(b)
    }

    #[test]
    fn mirror_from_snapshot_plus_deltas_has_no_false_negatives() {
        let mut held = HeldChunks::new(10_000, 100_000);
        for i in 0..5_000 {
            held.insert(&h(i));
        }
        let BloomUpdate::Snapshot { sequence, bytes } = held.update_since(None, "").unwrap() else {
            panic!("expected a snapshot");
        };
        let mut mirror = BloomMirror::from_snapshot(held.incarnation().to_owned(), sequence, &bytes).unwrap();
        for i in 5_000..20_000 {
            held.insert(&h(i));
            if i % 1_000 == 0 {
                match held.update_since(Some(mirror.sequence), &mirror.incarnation).unwrap() {
                    BloomUpdate::Delta { sequence, added } => mirror.apply_delta(sequence, &added),
                    BloomUpdate::Snapshot { .. } => panic!("window covers the gap"),
                }
            }
        }
        match held.update_since(Some(mirror.sequence), &mirror.incarnation).unwrap() {
            BloomUpdate::Delta { sequence, added } => mirror.apply_delta(sequence, &added),
            BloomUpdate::Snapshot { .. } => panic!("window covers the gap"),
        }
        for i in 0..20_000 {
            assert!(mirror.may_contain(&h(i)), "false negative for {i}");
        }
        // The false-positive rate stays near the target.
        let fp = (1_000_000..1_100_000).filter(|i| mirror.may_contain(&h(*i))).count();
        assert!(fp < 500, "{fp} false positives in 100000");
    }

    #[test]
    fn stale_or_foreign_mirrors_get_a_snapshot() {
        let mut held = HeldChunks::new(1_000, 10);
        for i in 0..100 {
            held.insert(&h(i));
        }
        let inc = held.incarnation().to_owned();
        assert!(matches!(held.update_since(Some(5), &inc).unwrap(), BloomUpdate::Snapshot { .. }));
        assert!(matches!(held.update_since(Some(95), "other").unwrap(), BloomUpdate::Snapshot { .. }));
        match held.update_since(Some(95), &inc).unwrap() {
            BloomUpdate::Delta { added, .. } => assert_eq!(added.len(), held.sequence() as usize - 95),
            BloomUpdate::Snapshot { .. } => panic!("95 is inside the window"),
        }
    }
}
