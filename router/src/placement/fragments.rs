//! Chunk → block nodes: rendezvous hashing with one draw per fragment slot.
//!
//! For fragment slot `s` of chunk `c`, every node `n` gets the score
//! `h(c, s, n)`, and the slot goes to the highest-scoring node that is not
//! yet used, looking only at zones used least so far (so fragments fill
//! distinct zones before any zone gets a second one).
//!
//! Why one draw per slot rather than "sort by one score, take the top k": the
//! position of a node in the result is its fragment index, and a sorted top-k
//! shifts every later fragment down when a node joins above them (or leaves),
//! so about 3 of 6 fragments of an affected chunk would change node. With a
//! draw per slot a joining node takes over only the slots it wins, the nodes
//! it displaces can only move to slots they now win, and a chunk without a
//! fragment on a joining (or leaving) node is not touched at all. When zones
//! are all distinct, set membership changes minimally too: a join can only
//! bring in the new node, a leave only one replacement. (With shared zones a
//! join can also reshuffle which nodes of a zone are used, to keep the spread.)
//!
//! Scores: each node has a 64-bit seed from SHA-256 of its id (computed once,
//! in `new`); a chunk hash is already uniform, so per lookup it is folded to a
//! 64-bit key and each score is one xor and one 64-bit finaliser (murmur3's
//! fmix64, a bijection with full avalanche). A lookup is `count × nodes` of
//! those and allocates only the result (and zone counters past 64 zones).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::BlockNodeInfo;

/// Zone-use counters up to this many zones live on the stack.
const INLINE_ZONES: usize = 64;

/// Domain separator so node seeds never coincide with other SHA-256 uses of an id.
const NODE_SEED_DOMAIN: &[u8] = b"tessera/placement/node/v1\0";

/// Per-node data precomputed for lookups, indexed like the node list it was built from.
#[derive(Debug, Clone)]
pub(super) struct FragmentTable {
    seeds: Vec<u64>,
    zones: Vec<u32>,
    zone_count: usize,
}

impl FragmentTable {
    pub(super) fn new(nodes: &[BlockNodeInfo]) -> Self {
        let seeds = nodes.iter().map(|node| node_seed(&node.id)).collect();
        let mut named_zones: BTreeMap<&str, u32> = BTreeMap::new();
        let mut zone_count: u32 = 0;
        let zones = nodes
            .iter()
            .map(|node| {
                let mut fresh_zone = || {
                    zone_count += 1;
                    zone_count - 1
                };
                if node.zone.is_empty() {
                    // An undeclared zone is only as wide as the node itself.
                    fresh_zone()
                } else {
                    *named_zones.entry(node.zone.as_str()).or_insert_with(fresh_zone)
                }
            })
            .collect();
        Self { seeds, zones, zone_count: zone_count as usize }
    }

    /// Picks up to `count` distinct nodes of `nodes` (the list this table was
    /// built from) in fragment order; exactly `count` whenever `count <= nodes.len()`.
    pub(super) fn pick<'a>(
        &self,
        nodes: &'a [BlockNodeInfo],
        chunk: &[u8; 32],
        count: usize,
    ) -> Vec<&'a BlockNodeInfo> {
        debug_assert_eq!(nodes.len(), self.seeds.len(), "table built from another node list");
        let mut picked: Vec<&'a BlockNodeInfo> = Vec::with_capacity(count);
        let mut inline_zone_use = [0u32; INLINE_ZONES];
        let mut heap_zone_use;
        let zone_use: &mut [u32] = if self.zone_count <= INLINE_ZONES {
            &mut inline_zone_use[..self.zone_count]
        } else {
            heap_zone_use = vec![0u32; self.zone_count];
            &mut heap_zone_use
        };

        let chunk_key = chunk_key(chunk);
        for slot in 0..count {
            let slot_key = slot_key(chunk_key, slot);
            // Best candidate so far, ordered by (zone use ascending, score descending);
            // ties on both keep the earlier node, i.e. the smaller id.
            let mut best: Option<(u32, u64, usize)> = None;
            for (index, ((&seed, &zone), node)) in self.seeds.iter().zip(&self.zones).zip(nodes).enumerate() {
                let use_of_zone = zone_use[zone as usize];
                if best.is_some_and(|(best_use, _, _)| use_of_zone > best_use) {
                    continue;
                }
                // A node in an unused zone is unused; only otherwise scan the (short) result.
                if use_of_zone > 0 && picked.iter().any(|&chosen| std::ptr::eq(chosen, node)) {
                    continue;
                }
                let score = fmix64(slot_key ^ seed);
                let better = match best {
                    None => true,
                    Some((best_use, best_score, _)) => use_of_zone < best_use || score > best_score,
                };
                if better {
                    best = Some((use_of_zone, score, index));
                }
            }
            let Some((_, _, index)) = best else { break };
            zone_use[self.zones[index] as usize] += 1;
            picked.push(&nodes[index]);
        }
        picked
    }
}

fn node_seed(node_id: &str) -> u64 {
    let digest: [u8; 32] =
        Sha256::new().chain_update(NODE_SEED_DOMAIN).chain_update(node_id.as_bytes()).finalize().into();
    u64::from_le_bytes(first_word(&digest))
}

/// Folds all 32 bytes (not just the first 8) so that a caller passing a
/// non-SHA-256 key with structure in only some bytes still spreads.
fn chunk_key(chunk: &[u8; 32]) -> u64 {
    chunk.chunks_exact(8).fold(0u64, |key, word| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        fmix64(key ^ u64::from_le_bytes(bytes))
    })
}

fn slot_key(chunk_key: u64, slot: usize) -> u64 {
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    fmix64(chunk_key ^ (slot as u64).wrapping_add(1).wrapping_mul(GOLDEN_GAMMA))
}

fn first_word(digest: &[u8; 32]) -> [u8; 8] {
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[..8]);
    word
}

/// MurmurHash3's 64-bit finaliser: a bijection in which every input bit affects every output bit.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^= x >> 33;
    x
}
