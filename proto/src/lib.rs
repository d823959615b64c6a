//! Tessera's wire protocol.
//!
//! Owns the gRPC definitions (generated from `proto/*.proto`), the small wire
//! types every component shares (such as [`ChunkHash`]), and [`listener`], the
//! one way a Tessera process exposes gRPC, `/metrics` and `/health` on a port.

pub mod chunk_hash;
pub mod config;
pub mod listener;
pub mod recent_events;
pub mod request_id;

pub use chunk_hash::{ChunkHash, ChunkHashError};

/// Generated code, nested like the protobuf packages so cross-package
/// references resolve.
#[allow(clippy::all, missing_docs)]
pub mod generated {
    pub mod tessera {
        pub mod block {
            pub mod v1 {
                tonic::include_proto!("tessera.block.v1");
            }
        }
        pub mod raft {
            pub mod v1 {
                tonic::include_proto!("tessera.raft.v1");
            }
        }
        pub mod api {
            pub mod v1 {
                tonic::include_proto!("tessera.api.v1");
            }
        }
    }
}

/// Native client API (`proto/api.proto`).
pub use generated::tessera::api::v1 as api;
/// Block node protocol (`proto/block.proto`).
pub use generated::tessera::block::v1 as block;
/// The metadata protocol (`proto/raft.proto`): Raft transport between
/// metadata nodes, and group administration, proposals and reads.
pub use generated::tessera::raft::v1 as raft;
