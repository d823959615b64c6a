//! Data-path primitives shared by the router and the client tools, which must
//! agree byte for byte on chunk boundaries and hashes:
//!
//! * [`chunker`]: FastCDC (v2020) content-defined chunking, push-based so it
//!   works on any stream with memory bounded by the maximum chunk size;
//! * [`hash`]: SHA-256 chunk hashes (SHA-NI used when the CPU has it);
//! * [`erasure`]: Reed–Solomon k+m coding of a chunk into fragments and its
//!   reconstruction from any k of them;
//! * [`compress`]: zstd frames for storage tiers that compress.

pub mod chunker;
pub mod compress;
pub mod erasure;
pub mod hash;

pub use chunker::{Chunk, Chunker, ChunkerParams};
pub use erasure::{ErasureCode, ErasureError};
pub use hash::hash_chunk;
