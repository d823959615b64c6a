//! `DataPath`: what uploads and downloads share — the cluster view, the
//! chunking and erasure-code settings, and counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::Arc;

use tessera_proto::ChunkHash;

use crate::cluster_view::ClusterView;
use crate::codec::{ChunkerParams, ErasureCode, ErasureError};
use crate::error::RouterError;
use crate::placement::BlockNodeInfo;

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

/// Data-path counters, exported on `/metrics` as `tessera_router_*_total`.
#[derive(Default, Clone)]
pub struct DataPathCounters {
    pub chunks_uploaded: Counter,
    pub chunks_deduped: Counter,
    /// Fragments written to a fallback node because their placement node failed.
    pub fragments_displaced: Counter,
    pub bytes_uploaded: Counter,
    pub bytes_downloaded: Counter,
    /// Chunks rebuilt from parity because data fragments were missing or corrupt.
    pub degraded_reads: Counter,
    /// Bloom "maybe" answers that the exact check found absent.
    pub bloom_false_positives: Counter,
    pub bloom_checks: Counter,
}

impl DataPathCounters {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router");
        r.register("chunks_uploaded", "Chunks whose fragments were sent to block nodes", self.chunks_uploaded.clone());
        r.register("chunks_deduped", "Chunks already stored (dedup hits)", self.chunks_deduped.clone());
        r.register("uploaded_bytes", "Bytes of new chunk data sent", self.bytes_uploaded.clone());
        r.register("downloaded_bytes", "Bytes of chunk data read", self.bytes_downloaded.clone());
        r.register("degraded_reads", "Chunks rebuilt from parity fragments", self.degraded_reads.clone());
        r.register(
            "fragments_displaced",
            "Fragments written to a fallback node because their placement node failed (rebalance moves them back)",
            self.fragments_displaced.clone(),
        );
        r.register(
            "bloom_false_positives",
            "Bloom maybe answers the exact check refuted",
            self.bloom_false_positives.clone(),
        );
        r.register("bloom_checks", "Fragment presence checks", self.bloom_checks.clone());
    }

    /// Registers the metadata cache's hit and miss counters.
    pub fn register_cache(cache: &crate::meta_cache::MetaCache, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_metadata_cache");
        r.register("hits", "Metadata reads answered from the router's cache", cache.hits.clone());
        r.register("misses", "Metadata reads that went to the shard", cache.misses.clone());
    }
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

    /// Every block node in placement order for `hash`: the first k+m hold fragments
    /// 0..k+m, the rest are the fallbacks (in order) for a placement node that
    /// cannot take its fragment.
    pub fn chunk_ranking(&self, hash: &ChunkHash) -> Result<Vec<BlockNodeInfo>, RouterError> {
        let placement = self.view.placement();
        let all = placement.block_nodes().len().max(self.fragments_per_chunk());
        Ok(placement
            .nodes_for_chunk(hash, all)
            .map_err(|e| RouterError::Unavailable(e.to_string()))?
            .into_iter()
            .cloned()
            .collect())
    }

    /// The block nodes holding fragments 0..k+m of `hash` under the current
    /// placement, in fragment order.
    pub fn chunk_nodes(&self, hash: &ChunkHash) -> Result<Vec<BlockNodeInfo>, RouterError> {
        Ok(self
            .view
            .placement()
            .nodes_for_chunk(hash, self.fragments_per_chunk())
            .map_err(|e| RouterError::Unavailable(e.to_string()))?
            .into_iter()
            .cloned()
            .collect())
    }
}

/// Milliseconds since the Unix epoch (the proposer's clock for commands).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
