//! Placement: where a user's metadata and a chunk's fragments live.
//!
//! This module owns the two mappings the router needs on every request, both
//! computed locally from one immutable [`Placement`] snapshot per cluster epoch:
//!
//! * **users → metadata shard** ([`Placement::shard_for_user`]): the user's
//!   explicit assignment in the cluster group if it has one (a moved user),
//!   else a consistent hash ring (`hashring` crate) on which each shard sits at
//!   `vnodes` points named `shard-{group_id}-{i}`, so adding or removing a shard
//!   moves only the users that land on it, and a shard's share of users grows
//!   with its vnodes (`tessera_meta::user_placement`, shared with the cluster
//!   group's safety checks);
//! * **chunk → k+m block nodes** ([`Placement::nodes_for_chunk`]): rendezvous
//!   (highest-random-weight) hashing, one draw per fragment slot, spreading the
//!   fragments over distinct zones first and distinct nodes always (the
//!   `fragments` submodule explains why it is not a plain sorted top-k).
//!
//! Both mappings are pure functions of the node ids, zones and shard list, so
//! every router agrees without talking to the others, and the order in which
//! nodes or shards are listed does not matter. The hash schemes are part of the
//! persistent contract: changing them would relocate every fragment and user,
//! which is why the tests pin a few golden values.

mod fragments;
#[cfg(test)]
mod tests;

use fragments::FragmentTable;
use std::collections::BTreeMap;
use std::sync::Arc;

use tessera_meta::tiering::TieringConfig;
use tessera_meta::user_placement::UserPlacement;
use tessera_proto::ChunkHash;

/// A block node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockNodeInfo {
    /// Stable identity; fragment placement hashes it, so it must never be reused for another node.
    pub id: String,
    /// Failure domain (zone, rack, ...). Empty means "undeclared": the node is its own domain.
    pub zone: String,
    /// Where to reach the node (not used for placement).
    pub endpoint: String,
    /// Operator labels; a storage tier is the set of nodes carrying its label.
    pub labels: Vec<String>,
}

/// A metadata shard (Raft group) and its weight on the user ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub group_id: u64,
    /// Points on the ring; a shard's expected share of users is proportional to it. 0 = owns no users.
    pub vnodes: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("placement needs {needed} distinct block nodes but only {available} are known")]
    NotEnoughNodes { needed: usize, available: usize },
    #[error("no metadata shard owns any users (no shards, or all have 0 vnodes)")]
    NoShards,
}

/// Immutable snapshot of placement at one cluster epoch (cheap to share in an
/// `Arc`; a router swaps in a new one when the epoch changes).
#[derive(Debug, Clone)]
pub struct Placement {
    epoch: u64,
    /// Sorted by id, ids unique; `fragment_table` is indexed in the same order.
    block_nodes: Vec<BlockNodeInfo>,
    fragment_table: FragmentTable,
    /// Sorted by group id, group ids unique.
    shards: Vec<ShardInfo>,
    users: UserPlacement,
    /// The cluster's storage tiers, when configured (`tessera admin tier set`).
    tiering: Option<Arc<TieringConfig>>,
}

impl Placement {
    /// Builds the snapshot and precomputes everything lookups need (per-node
    /// hash seeds, zone indexes, the shard ring).
    ///
    /// Inputs are normalised so results never depend on their order: nodes are
    /// sorted by id and shards by group id. A repeated node id or shard group id
    /// is a caller bug; it is resolved deterministically (first node by
    /// (id, zone, endpoint); the shard entry with the most vnodes) rather than
    /// letting list order decide.
    pub fn new(epoch: u64, mut block_nodes: Vec<BlockNodeInfo>, mut shards: Vec<ShardInfo>) -> Self {
        block_nodes.sort_by(|a, b| (&a.id, &a.zone, &a.endpoint).cmp(&(&b.id, &b.zone, &b.endpoint)));
        block_nodes.dedup_by(|later, kept| later.id == kept.id);
        shards.sort_by(|a, b| a.group_id.cmp(&b.group_id).then(b.vnodes.cmp(&a.vnodes)));
        shards.dedup_by_key(|shard| shard.group_id);

        let fragment_table = FragmentTable::new(&block_nodes);
        let users = UserPlacement::new(&ring_groups(&shards), BTreeMap::new());
        Self { epoch, block_nodes, fragment_table, shards, users, tiering: None }
    }

    /// The same snapshot with the cluster group's explicit user assignments (moved users).
    pub fn with_assignments(mut self, assignments: BTreeMap<String, u64>) -> Self {
        self.users = UserPlacement::new(&ring_groups(&self.shards), assignments);
        self
    }

    /// The explicit user → group assignments of this snapshot.
    pub fn assignments(&self) -> &BTreeMap<String, u64> {
        self.users.assignments()
    }

    /// The same snapshot with the cluster's tiering config.
    pub fn with_tiering(mut self, tiering: Option<TieringConfig>) -> Self {
        self.tiering = tiering.map(Arc::new);
        self
    }

    pub fn tiering(&self) -> Option<&TieringConfig> {
        self.tiering.as_deref()
    }

    /// The metadata shard keeping the location record of `chunk` (storage
    /// tiering): the lowest group of the map, which keeps every record so that
    /// adding groups moves none (`UserPlacement::chunk_record_group`).
    pub fn shard_for_chunk_record(&self, _chunk: &ChunkHash) -> Result<u64, PlacementError> {
        self.users.chunk_record_group().ok_or(PlacementError::NoShards)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The block nodes of this epoch, sorted by id.
    pub fn block_nodes(&self) -> &[BlockNodeInfo] {
        &self.block_nodes
    }

    /// The metadata shards of this epoch, sorted by group id.
    pub fn shards(&self) -> &[ShardInfo] {
        &self.shards
    }

    /// The metadata shard (group id) that owns `user_id`: its explicit
    /// assignment, else consistent hashing with the `hashring` crate, each shard
    /// placed at `vnodes` points named `shard-{group_id}-{i}`.
    pub fn shard_for_user(&self, user_id: &str) -> Result<u64, PlacementError> {
        self.users.group_for_user(user_id).ok_or(PlacementError::NoShards)
    }

    /// The `count` (= k+m) distinct block nodes that hold fragments `0..count`
    /// of `chunk`, in fragment order.
    ///
    /// Deterministic for the same node set. Fragments go to distinct zones
    /// first (no zone gets a second fragment while a zone with a free node has
    /// fewer), and always to distinct nodes. Adding a node only ever moves
    /// fragments onto the new node, and removing one only affects chunks that
    /// had a fragment on it.
    pub fn nodes_for_chunk(&self, chunk: &ChunkHash, count: usize) -> Result<Vec<&BlockNodeInfo>, PlacementError> {
        let available = self.block_nodes.len();
        if count > available {
            return Err(PlacementError::NotEnoughNodes { needed: count, available });
        }
        let picked = self.fragment_table.pick(&self.block_nodes, chunk.as_bytes(), count);
        if picked.len() < count {
            // Unreachable while count <= available; reported rather than trusted.
            return Err(PlacementError::NotEnoughNodes { needed: count, available: picked.len() });
        }
        Ok(picked)
    }
}

fn ring_groups(shards: &[ShardInfo]) -> Vec<(u64, u32)> {
    shards.iter().map(|s| (s.group_id, s.vnodes)).collect()
}
