//! `DataPath`: what uploads and downloads share — the cluster view, the
//! chunking and erasure-code settings, and counters.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::cluster_view::ClusterView;
use crate::codec::{ChunkerParams, ErasureCode, ErasureError};

/// Data-path settings (part of the router's TOML config).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPathConfig {
    pub chunker: ChunkerParams,
    pub data_shards: usize,
    pub parity_shards: usize,
    /// Chunks processed concurrently per transfer (bounds memory: each holds
    /// one chunk and its fragments).
    pub parallel_chunks: usize,
}

impl Default for DataPathConfig {
    fn default() -> Self {
        Self { chunker: ChunkerParams::default(), data_shards: 4, parity_shards: 2, parallel_chunks: 4 }
    }
}

#[derive(Default)]
pub struct DataPathCounters {
    pub chunks_uploaded: AtomicU64,
    pub chunks_deduped: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    /// Chunks rebuilt from parity because data fragments were missing or corrupt.
    pub degraded_reads: AtomicU64,
    /// Bloom "maybe" answers that the exact check found absent.
    pub bloom_false_positives: AtomicU64,
    pub bloom_checks: AtomicU64,
}

pub struct DataPath {
    pub view: Arc<ClusterView>,
    pub config: DataPathConfig,
    pub code: Arc<ErasureCode>,
    pub counters: DataPathCounters,
}

impl DataPath {
    pub fn new(view: Arc<ClusterView>, config: DataPathConfig) -> Result<Arc<Self>, ErasureError> {
        let code = Arc::new(ErasureCode::new(config.data_shards, config.parity_shards)?);
        Ok(Arc::new(Self { view, config, code, counters: DataPathCounters::default() }))
    }

    pub fn fragments_per_chunk(&self) -> usize {
        self.config.data_shards + self.config.parity_shards
    }
}

/// Milliseconds since the Unix epoch (the proposer's clock for commands).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
