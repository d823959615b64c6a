//! tessera-router: the stateless front of a Tessera cluster.
//!
//! This crate owns the data-path primitives ([`codec`]: content-defined
//! chunking, chunk hashing, Reed–Solomon coding); placement, the upload and
//! download pipelines and the client-facing APIs build on them.

pub mod api;
pub mod auth;
pub mod blocks;
pub mod changes_http;
pub mod chunk_read;
pub mod client;
pub mod cluster_view;
pub mod codec;
pub mod console;
pub mod datapath;
pub mod download;
pub mod error;
pub mod feed;
pub mod gc;
pub mod links;
pub mod meta_cache;
pub mod ops;
pub mod placement;
pub mod repair;
pub mod s3;
pub mod server;
pub mod sessions;
pub mod sharing;
pub mod status;
pub mod tiering;
pub mod upload;
pub mod user_move;
