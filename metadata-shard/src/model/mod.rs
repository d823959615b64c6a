//! The deterministic data model of a metadata shard: the pure logic its Raft state
//! machine applies. All state lives in a key-value store behind [`kv::KvRead`] /
//! [`kv::KvWrite`] (RocksDB in production, [`kv::MemKv`] in tests); every key layout is
//! in [`keys`].
//!
//! - [`command`]: `ShardCommand` → [`apply`] (atomic, deterministic) → `ShardResponse`;
//! - [`query`]: `ShardQuery` → [`query()`] → `QueryResponse` (reads only);
//! - one module per idea: [`namespace`] (entries, mkdir -p, tombstones, detached files),
//!   [`tree_ops`] (move, delete, purge), [`listing`], [`versions`] (commit, conflicts,
//!   restore, pruning), [`chunks`] (refcounts, zero-ref log), [`chunk_tiers`] (chunk
//!   location records of storage tiering), [`sessions`] (resumable
//!   uploads), [`multipart`] (S3 multipart uploads), [`buckets`] (S3 bucket settings),
//!   [`usage`] (per-user usage and quotas), [`shares`], [`links`], [`access`], [`changelog`],
//!   [`shared_feed`] (a grantee's filtered view of an owner's change log), [`user_move`]
//!   (fences, export and import of a user moving between shard groups);
//! - support: [`paths`] (path rules, conflict names), [`codec`] (value encoding),
//!   [`types`] (ids, hashes, `ShardConfig`), [`error`].

pub mod access;
pub mod buckets;
pub mod changelog;
pub mod chunk_tiers;
pub mod chunks;
mod codec;
pub mod command;
pub mod error;
pub mod keys;
pub mod kv;
pub mod links;
pub mod listing;
pub mod multipart;
pub mod namespace;
pub mod paths;
pub mod query;
pub mod sessions;
pub mod shared_feed;
pub mod shares;
pub mod trash;
pub mod tree_ops;
pub mod types;
pub mod usage;
pub mod user_move;
pub mod versions;

#[cfg(test)]
mod tests;

pub use access::{AccessDecision, Action};
pub use buckets::{BucketConfig, BucketVersioning};
pub use changelog::{ChangeEvent, ChangeKind, ChangePage};
pub use chunk_tiers::{ChunkTier, ChunkTierMove, ChunkTierOutcome};
pub use chunks::{ChunkRefPage, ZeroRef, ZeroRefPage};
pub use command::{apply, ShardCommand, ShardResponse};
pub use error::{ModelError, ModelResult};
pub use kv::{KvError, KvPairs, KvRead, KvWrite, MemKv, Overlay};
pub use links::{hash_link_password, verify_link_password, Link, LinkPermission};
pub use listing::{FolderPage, ObjectPage};
pub use multipart::{ChosenPart, CompleteMultipart, MultipartUpload, PartPage, PartRecord, UploadPage};
pub use namespace::{DetachedPage, Entry, EntryKind, FileState};
pub use query::{query, QueryResponse, ShardQuery};
pub use sessions::{OpenSession, UploadSession};
pub use shared_feed::SharedChangePage;
pub use shares::{Permission, Share, ShareMove, SharedWithMe, SharedWithMePage};
pub use tree_ops::{DeleteOutcome, MoveOutcome, PurgeOutcome};
pub use types::{ChunkRef, Hash32, LinkToken, ObjectMeta, SessionId, ShardConfig, UploadId};
pub use versions::{CommitOutcome, CommitVersion, ConflictPolicy, FileRef, VersionPage, VersionRecord, VersionSummary};
