//! Consensus plumbing: openraft type configuration, the RocksDB-backed log
//! and state-machine stores shared by every Raft group of a process, and the
//! gRPC transport between replicas.

// openraft's StorageError is large by design; it is what its traits return.
#![allow(clippy::result_large_err)]

pub mod db;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod transport;

use std::io::Cursor;

pub use db::MetaDb;
pub use log_store::LogStore;
pub use state_machine::StateMachineStore;

use crate::command::{GroupResponse, Proposal};

/// Identifies a Raft group: 0 is the cluster group, others are metadata shards.
pub type GroupId = u64;
/// Identifies a `tessera-meta` process (a replica host).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft types of every Tessera Raft group.
    pub TypeConfig:
        D = Proposal,
        R = GroupResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
