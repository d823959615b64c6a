//! The router's background repair: a rebalance pass (rebuild what is missing,
//! move displaced fragments back, drop copies outside the placement) every
//! `[repair] interval_secs`, with a scrub first when `[repair] scrub` is set.
//! Progress and totals are exported on `/metrics`; each finished pass is
//! recorded in the cluster group for `tessera admin status`.
//!
//! Turn it on in one router of a cluster (passes are idempotent, so two
//! routers doing it waste work but do no harm).

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use super::{Mode, RepairOptions, RepairProgress};
use crate::datapath::DataPath;

/// `[repair]` in `router.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepairConfig {
    /// Seconds between background passes; 0 turns the background job off.
    pub interval_secs: u64,
    /// Scrub every block node at the start of each pass (reads every fragment).
    pub scrub: bool,
    /// Chunks worked on at once (bounds the load a pass adds).
    pub parallel: usize,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self { interval_secs: 0, scrub: false, parallel: 2 }
    }
}

/// `tessera_router_repair_*` on `/metrics`.
#[derive(Default, Clone)]
pub struct RepairMetrics {
    pub running: Gauge,
    pub passes: Counter,
    pub chunks_examined: Counter,
    pub fragments_rebuilt: Counter,
    pub fragments_copied: Counter,
    pub fragments_removed: Counter,
    pub bytes_written: Counter,
    pub corrupt_fragments: Counter,
    /// Chunks examined so far in the running pass.
    pub pass_chunks_examined: Gauge,
    /// Under-replicated chunks found by the last finished pass.
    pub under_replicated: Gauge,
    pub lost_chunks: Gauge,
    pub last_pass_end: Gauge<i64, AtomicI64>,
}

impl RepairMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_repair");
        r.register("running", "1 while a background repair pass runs", self.running.clone());
        r.register("passes", "Finished background repair passes", self.passes.clone());
        r.register("chunks_examined", "Chunks examined by repair passes", self.chunks_examined.clone());
        r.register("fragments_rebuilt", "Fragments reconstructed from other fragments", self.fragments_rebuilt.clone());
        r.register("fragments_copied", "Fragments copied onto their placement node", self.fragments_copied.clone());
        r.register("fragments_removed", "Copies outside the placement deleted", self.fragments_removed.clone());
        r.register("written_bytes", "Fragment bytes written by repair", self.bytes_written.clone());
        r.register("corrupt_fragments", "Corrupt fragments found by scrubs", self.corrupt_fragments.clone());
        r.register(
            "pass_chunks_examined",
            "Chunks examined so far in the running pass",
            self.pass_chunks_examined.clone(),
        );
        r.register(
            "under_replicated_chunks",
            "Under-replicated chunks after the last pass",
            self.under_replicated.clone(),
        );
        r.register("lost_chunks", "Chunks with fewer than k fragments after the last pass", self.lost_chunks.clone());
        r.register(
            "last_pass_end_timestamp_seconds",
            "When the last background pass finished",
            self.last_pass_end.clone(),
        );
    }

    fn finish(&self, p: &RepairProgress) {
        self.passes.inc();
        self.chunks_examined.inc_by(p.chunks_examined);
        self.fragments_rebuilt.inc_by(p.fragments_rebuilt);
        self.fragments_copied.inc_by(p.fragments_copied);
        self.fragments_removed.inc_by(p.fragments_removed);
        self.bytes_written.inc_by(p.bytes_written);
        self.corrupt_fragments.inc_by(p.corrupt_fragments);
        self.under_replicated.set((p.chunks_waiting_for_node + p.chunks_lost) as i64);
        self.lost_chunks.set(p.chunks_lost as i64);
        self.last_pass_end.set(crate::datapath::now_ms() / 1000);
    }
}

/// Runs passes every `config.interval_secs` until the task is dropped; `None`
/// when the background job is off.
pub fn spawn(
    dp: Arc<DataPath>,
    config: RepairConfig,
    metrics: RepairMetrics,
    by: String,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.interval_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(config.interval_secs);
    let options =
        RepairOptions { mode: Mode::Rebalance, scrub: config.scrub, parallel: config.parallel, ..Default::default() };
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            metrics.running.set(1);
            metrics.pass_chunks_examined.set(0);
            let started = Instant::now();
            let result = super::run(&dp, &options, |p| {
                metrics.pass_chunks_examined.set(p.chunks_examined as i64);
            })
            .await;
            metrics.running.set(0);
            match result {
                Ok(progress) => {
                    metrics.finish(&progress);
                    tracing::info!(
                        chunks = progress.chunks_examined,
                        rebuilt = progress.fragments_rebuilt,
                        copied = progress.fragments_copied,
                        removed = progress.fragments_removed,
                        under_replicated = progress.chunks_waiting_for_node + progress.chunks_lost,
                        "background repair pass finished"
                    );
                    if let Err(e) = super::record(&dp, &progress, &by, started.elapsed()).await {
                        tracing::warn!(error = %e, "repair outcome not recorded");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "background repair pass failed"),
            }
        }
    }))
}
