//! Storage tiering: hot, warm and cold sets of block nodes, each with its own
//! erasure code and compression, and the background job that moves chunks
//! between them by how recently they were read.
//!
//! * [`tiers`]: which nodes form each tier (by label) and how a tier codes a
//!   chunk; without a tiering config there is one tier of every node;
//! * [`directory`]: the chunks' location records (compare-and-set by generation);
//! * [`mover`]: a crash-safe move (new copy durable → record committed → old copy
//!   deleted);
//! * [`pass`]: a whole-cluster pass (list read times, decide, move, clean up);
//! * [`promote`]: bringing chunks back to the first tier right after a read;
//! * [`usage`]: bytes per tier;
//! * [`background`]: the router's `[tiering]` job and its metrics.
//!
//! Tiering never changes a file's content, version or checksum: a chunk is
//! the same bytes under the same hash wherever it lives, and every read checks
//! the hash. The safety argument is in `docs/architecture.md`.

pub mod background;
pub mod directory;
pub mod mover;
pub mod pass;
pub mod promote;
pub mod tiers;
pub mod usage;

pub use pass::{run as run_pass, TierPassOptions};
pub use tiers::{decode_payload, Tier, TierSet};
pub use usage::{tier_usage, TierUsage};
