//! Placement (provisional version, replaced by the full module): users →
//! metadata shard with `hashring`, chunk → k+m distinct block nodes by
//! rendezvous hashing, preferring unused zones.

use hashring::HashRing;
use sha2::{Digest, Sha256};
use tessera_proto::ChunkHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockNodeInfo {
    pub id: String,
    pub zone: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub group_id: u64,
    pub vnodes: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("need {needed} block nodes, only {available} known")]
    NotEnoughNodes { needed: usize, available: usize },
    #[error("no metadata shard exists")]
    NoShards,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct VNode {
    group_id: u64,
    index: u32,
}

impl std::fmt::Display for VNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard-{}-{}", self.group_id, self.index)
    }
}

pub struct Placement {
    epoch: u64,
    nodes: Vec<BlockNodeInfo>,
    shards: Vec<ShardInfo>,
    ring: HashRing<String>,
}

impl Placement {
    pub fn new(epoch: u64, mut block_nodes: Vec<BlockNodeInfo>, mut shards: Vec<ShardInfo>) -> Self {
        block_nodes.sort_by(|a, b| a.id.cmp(&b.id));
        shards.sort_by_key(|s| s.group_id);
        let mut ring = HashRing::new();
        for s in &shards {
            for i in 0..s.vnodes.max(1) {
                ring.add(VNode { group_id: s.group_id, index: i }.to_string());
            }
        }
        Self { epoch, nodes: block_nodes, shards, ring }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn block_nodes(&self) -> &[BlockNodeInfo] {
        &self.nodes
    }

    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    pub fn shard_for_user(&self, user_id: &str) -> Result<u64, PlacementError> {
        let vnode = self.ring.get(&user_id).ok_or(PlacementError::NoShards)?;
        vnode
            .strip_prefix("shard-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|g| g.parse().ok())
            .ok_or(PlacementError::NoShards)
    }

    pub fn nodes_for_chunk(&self, chunk: &ChunkHash, count: usize) -> Result<Vec<&BlockNodeInfo>, PlacementError> {
        if self.nodes.len() < count {
            return Err(PlacementError::NotEnoughNodes { needed: count, available: self.nodes.len() });
        }
        let mut scored: Vec<([u8; 32], &BlockNodeInfo)> = self
            .nodes
            .iter()
            .map(|n| {
                let mut h = Sha256::new();
                h.update(chunk.as_bytes());
                h.update(n.id.as_bytes());
                (h.finalize().into(), n)
            })
            .collect();
        scored.sort_by_key(|s| std::cmp::Reverse(s.0));
        let mut out: Vec<&BlockNodeInfo> = Vec::with_capacity(count);
        // Prefer nodes in zones not used yet; then fill with the best remaining.
        for (_, n) in &scored {
            if out.len() < count && !out.iter().any(|o| o.zone == n.zone) {
                out.push(n);
            }
        }
        for (_, n) in &scored {
            if out.len() < count && !out.iter().any(|o| o.id == n.id) {
                out.push(n);
            }
        }
        Ok(out)
    }
}
