//! tessera-meta: Raft-replicated metadata.
//!
//! A `tessera-meta` process hosts replicas of several Raft groups (openraft)
//! in one RocksDB: group 0 is the cluster group (nodes, shard map, users,
//! tiering configuration, placement epoch), every other group is a metadata
//! shard owning a slice of users. See `docs/architecture.md`.

pub mod admin;
pub mod client;
pub mod cluster;
pub mod command;
pub mod host;
pub mod model;
pub mod node;
pub mod password;
pub mod raft;
pub mod shard_kv;
pub mod tiering;
pub mod user_placement;
