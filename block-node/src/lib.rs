//! tessera-block: the block node.
//!
//! Durably stores erasure-coded fragments of content-addressed chunks in
//! RocksDB (large values in blob files), verifies a CRC-32C on every read and
//! on scrub, and keeps a Bloom filter of the chunks it holds that routers
//! mirror through snapshots plus deltas.

pub mod bloom;
pub mod client;
pub mod config;
pub mod error;
pub mod fragment;
pub mod metrics;
pub mod node;
pub mod reads;
pub mod service;
pub mod store;
pub mod touch;

pub use client::BlockClient;
pub use config::BlockConfig;
pub use error::StoreError;
pub use fragment::{FragmentKey, FragmentMeta};
pub use node::{BlockNode, RunningBlockNode};
pub use store::{FragmentStore, ListedFragment};
