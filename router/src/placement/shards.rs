//! Users → metadata shard: a consistent hash ring from the `hashring` crate.
//!
//! `hashring` has no notion of weight, so each shard is added at `vnodes`
//! points; a point's position is the ring's hash of its name
//! `shard-{group_id}-{i}`, so positions depend only on the shard list and a
//! shard that joins or leaves moves only the users that land on its points.

use std::hash::{Hash, Hasher};

use hashring::HashRing;

use super::ShardInfo;

/// One point of a shard on the ring. Kept as numbers; the name is only built
/// while hashing, which the ring does once per point when it is added.
#[derive(Debug, Clone, Copy)]
struct ShardPoint {
    group_id: u64,
    vnode: u32,
}

impl Hash for ShardPoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        format!("shard-{}-{}", self.group_id, self.vnode).hash(state);
    }
}

#[derive(Debug, Clone)]
pub(super) struct ShardRing {
    ring: HashRing<ShardPoint>,
}

impl ShardRing {
    /// `shards` must be sorted by group id with unique ids: the ring keeps equal
    /// positions in insertion order, so a fixed order keeps (astronomically rare)
    /// position collisions deterministic too.
    pub(super) fn new(shards: &[ShardInfo]) -> Self {
        let points = shards
            .iter()
            .flat_map(|shard| (0..shard.vnodes).map(move |vnode| ShardPoint { group_id: shard.group_id, vnode }))
            .collect();
        let mut ring = HashRing::new();
        ring.batch_add(points);
        Self { ring }
    }

    pub(super) fn shard_for(&self, user_id: &str) -> Option<u64> {
        self.ring.get(&user_id).map(|point| point.group_id)
    }
}
