//! `DataPath`: what uploads and downloads share — the cluster view, the
//! chunking and erasure-code settings, and counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock, RwLock};

use tessera_proto::ChunkHash;

use crate::cluster_view::ClusterView;
use crate::codec::{ChunkerParams, ErasureCode, ErasureError};
use crate::error::RouterError;
use crate::placement::{BlockNodeInfo, Placement};
use crate::tiering::TierSet;

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
    /// Fragments of a new chunk that must be durable on distinct block nodes
    /// before the chunk counts as stored: writes go on with up to k+m−quorum
    /// nodes down, and repair completes such chunks later. Default and minimum
    /// k+1 (one more node may fail after the acknowledgement), at most k+m.
    pub write_quorum: Option<usize>,
}

impl Default for DataPathConfig {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::default(),
            data_shards: 4,
            parity_shards: 2,
            parallel_chunks: 4,
            write_quorum: None,
        }
    }
}

/// Data-path counters, exported on `/metrics` as `tessera_router_*_total`.
#[derive(Default, Clone)]
pub struct DataPathCounters {
    pub chunks_uploaded: Counter,
    pub chunks_deduped: Counter,
    /// Fragments written to a fallback node because their placement node failed.
    pub fragments_displaced: Counter,
    /// Chunks acknowledged with fewer than k+m fragments (a write quorum only).
    pub chunks_stored_degraded: Counter,
    pub bytes_uploaded: Counter,
    pub bytes_downloaded: Counter,
    /// Chunks rebuilt from parity because data fragments were missing or corrupt.
    pub degraded_reads: Counter,
    /// Bloom "maybe" answers that the exact check found absent.
    pub bloom_false_positives: Counter,
    pub bloom_checks: Counter,
    /// Chunks served from a tier other than the first.
    pub colder_tier_reads: Counter,
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
            "chunks_stored_degraded",
            "Chunks stored with fewer fragments than the code's k+m but at least the write quorum (repair completes them)",
            self.chunks_stored_degraded.clone(),
        );
        r.register(
            "bloom_false_positives",
            "Bloom maybe answers the exact check refuted",
            self.bloom_false_positives.clone(),
        );
        r.register("bloom_checks", "Fragment presence checks", self.bloom_checks.clone());
        r.register(
            "colder_tier_reads",
            "Chunks read from a storage tier other than the first",
            self.colder_tier_reads.clone(),
        );
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
    /// The code of the first (or only) tier, where new chunks are written.
    pub code: Arc<ErasureCode>,
    pub counters: DataPathCounters,
    /// The tiers of the latest placement, rebuilt when the placement changes.
    tiers: RwLock<Option<(Arc<Placement>, Arc<TierSet>)>>,
    /// Chunks served from a colder tier, for the tiering job to bring back
    /// (set when this router runs the job).
    promotions: OnceLock<tokio::sync::mpsc::Sender<ChunkHash>>,
}

impl DataPath {
    pub fn new(view: Arc<ClusterView>, config: DataPathConfig) -> Result<Arc<Self>, ErasureError> {
        let code = Arc::new(ErasureCode::new(config.data_shards, config.parity_shards)?);
        Ok(Arc::new(Self {
            view,
            config,
            code,
            counters: DataPathCounters::default(),
            tiers: RwLock::new(None),
            promotions: OnceLock::new(),
        }))
    }

    pub fn fragments_per_chunk(&self) -> usize {
        self.config.data_shards + self.config.parity_shards
    }

    /// Fragments a new chunk needs on distinct nodes before it counts as stored
    /// ([`DataPathConfig::write_quorum`], kept within k+1..=k+m).
    pub fn write_quorum(&self) -> usize {
        let all = self.fragments_per_chunk();
        self.config
            .write_quorum
            .unwrap_or(self.config.data_shards + 1)
            .clamp((self.config.data_shards + 1).min(all), all)
    }

    /// The storage tiers of the current placement (one `default` tier of every
    /// node when tiering is not configured).
    pub fn tiers(&self) -> Arc<TierSet> {
        let placement = self.view.placement();
        if let Some((built_for, tiers)) = self.tiers.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if Arc::ptr_eq(built_for, &placement) {
                return tiers.clone();
            }
        }
        let tiers = Arc::new(TierSet::build(&placement, self.code.clone()).unwrap_or_else(|e| {
            // A stored config is validated, so this is a code the crate refuses:
            // serve with the hot tier only rather than not at all.
            tracing::error!(error = %e, "tiering config not usable; serving without tiers");
            TierSet::single(&placement, self.code.clone())
        }));
        *self.tiers.write().unwrap_or_else(|p| p.into_inner()) = Some((placement, tiers.clone()));
        tiers
    }

    /// Routes chunks read from a colder tier to this router's tiering job.
    pub fn set_promotion_queue(&self, queue: tokio::sync::mpsc::Sender<ChunkHash>) {
        let _ = self.promotions.set(queue);
    }

    /// Asks for `hash` to be moved back to the first tier (dropped when no job
    /// listens or its queue is full: the next pass finds the read on the block nodes).
    pub fn request_promotion(&self, hash: ChunkHash) {
        if let Some(queue) = self.promotions.get() {
            let _ = queue.try_send(hash);
        }
    }

    /// Every block node of the first tier in placement order for `hash`: the first
    /// k+m hold fragments 0..k+m, the rest are the fallbacks (in order) for a
    /// placement node that cannot take its fragment.
    pub fn chunk_ranking(&self, hash: &ChunkHash) -> Result<Vec<BlockNodeInfo>, RouterError> {
        let tiers = self.tiers();
        let placement = &tiers.hot().placement;
        let all = placement.block_nodes().len().max(self.fragments_per_chunk());
        Ok(placement
            .nodes_for_chunk(hash, all)
            .map_err(|e| RouterError::Unavailable(e.to_string()))?
            .into_iter()
            .cloned()
            .collect())
    }

    /// The block nodes of the first tier holding fragments 0..k+m of `hash` under
    /// the current placement, in fragment order.
    pub fn chunk_nodes(&self, hash: &ChunkHash) -> Result<Vec<BlockNodeInfo>, RouterError> {
        self.tiers().hot().nodes_for(hash)
    }
}

/// Milliseconds since the Unix epoch (the proposer's clock for commands).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
