//! The router's background tiering job (`[tiering]` in `router.toml`): a pass
//! every `interval_secs`, promotions of chunks this router served from a colder
//! tier as they come, and `tessera_router_tier_*` on `/metrics`. Turn it on in
//! one router of a cluster; concurrent movers are safe (location records are
//! compare-and-set) but waste work.

use std::collections::HashSet;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tessera_meta::cluster::TierPassRecord;

use super::TierPassOptions;
use crate::datapath::DataPath;

/// `[tiering]` in `router.toml` (the tiers themselves are cluster-wide:
/// `tessera admin tier set`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TieringJobConfig {
    /// Seconds between background passes; 0 turns the background job off.
    pub interval_secs: u64,
    /// Upper bound on bytes moved per second (0 = unpaced).
    pub max_bytes_per_sec: u64,
    /// Longest a move batch may take from its first write to its commit.
    pub move_deadline_secs: u64,
    /// Promote chunks this router serves from a colder tier right away.
    pub promote_on_read: bool,
}

impl Default for TieringJobConfig {
    fn default() -> Self {
        Self { interval_secs: 0, max_bytes_per_sec: 0, move_deadline_secs: 60, promote_on_read: true }
    }
}

impl TieringJobConfig {
    pub fn options(&self, by: String) -> TierPassOptions {
        TierPassOptions {
            max_bytes_per_sec: self.max_bytes_per_sec,
            move_deadline: Duration::from_secs(self.move_deadline_secs.max(1)),
            by,
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabel {
    pub tier: String,
}

/// `tessera_router_tier_*` on `/metrics`.
#[derive(Default, Clone)]
pub struct TieringMetrics {
    pub running: Gauge,
    pub passes: Counter,
    pub failed_passes: Counter,
    pub chunks_demoted: Counter,
    pub chunks_promoted: Counter,
    pub bytes_moved: Counter,
    pub copies_cleaned: Counter,
    pub moves_stale: Counter,
    /// Fragment bytes stored per tier (all its nodes), refreshed after every pass.
    pub bytes: Family<TierLabel, Gauge>,
    pub fragments: Family<TierLabel, Gauge>,
    pub last_pass_end: Gauge<i64, AtomicI64>,
}

impl TieringMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_tier");
        r.register("running", "1 while a background tiering pass runs", self.running.clone());
        r.register("passes", "Finished background tiering passes", self.passes.clone());
        r.register("failed_passes", "Background tiering passes that stopped early", self.failed_passes.clone());
        r.register("demoted_chunks", "Chunks moved to a colder tier", self.chunks_demoted.clone());
        r.register("promoted_chunks", "Chunks moved back to the first tier", self.chunks_promoted.clone());
        r.register("moved_bytes", "Chunk bytes moved between tiers", self.bytes_moved.clone());
        r.register(
            "cleaned_copies",
            "Leftover copies removed from tiers their record does not name",
            self.copies_cleaned.clone(),
        );
        r.register(
            "stale_moves",
            "Moves refused because another mover changed the record first",
            self.moves_stale.clone(),
        );
        r.register("stored_bytes", "Fragment bytes stored in each tier", self.bytes.clone());
        r.register("stored_fragments", "Fragments stored in each tier", self.fragments.clone());
        r.register(
            "last_pass_end_timestamp_seconds",
            "When the last background tiering pass finished",
            self.last_pass_end.clone(),
        );
    }

    /// Adds what a pass did since the previous report of the same pass.
    fn absorb(&self, seen: &mut TierPassRecord, now: &TierPassRecord) {
        self.chunks_demoted.inc_by(now.chunks_demoted.saturating_sub(seen.chunks_demoted));
        self.chunks_promoted.inc_by(now.chunks_promoted.saturating_sub(seen.chunks_promoted));
        self.bytes_moved.inc_by(now.bytes_moved.saturating_sub(seen.bytes_moved));
        self.copies_cleaned.inc_by(now.copies_cleaned.saturating_sub(seen.copies_cleaned));
        self.moves_stale.inc_by(now.moves_stale.saturating_sub(seen.moves_stale));
        *seen = now.clone();
    }

    /// Sets the per-tier gauges from the block nodes' counters.
    pub async fn refresh_usage(&self, dp: &DataPath) {
        for usage in super::tier_usage(dp).await {
            let label = TierLabel { tier: usage.name };
            self.bytes.get_or_create(&label).set(usage.fragment_bytes as i64);
            self.fragments.get_or_create(&label).set(usage.fragments as i64);
        }
    }
}

/// Chunks collected per promotion batch, and how long the job waits for more
/// after the first before moving them.
const PROMOTE_BATCH: usize = 256;
const PROMOTE_GATHER: Duration = Duration::from_millis(200);

/// Runs the job until the task is dropped; `None` when it is off.
pub fn spawn(
    dp: Arc<DataPath>,
    config: TieringJobConfig,
    metrics: TieringMetrics,
    by: String,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.interval_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(config.interval_secs);
    let options = config.options(by);
    let (queue, mut requests) = tokio::sync::mpsc::channel(4096);
    if config.promote_on_read {
        dp.set_promotion_queue(queue);
    }
    Some(tokio::spawn(async move {
        let mut next_pass = tokio::time::Instant::now() + every;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_pass) => {
                    let mut promote = HashSet::new();
                    while let Ok(hash) = requests.try_recv() {
                        promote.insert(hash);
                    }
                    run_one(&dp, &options, &metrics, &promote).await;
                    next_pass = tokio::time::Instant::now() + every;
                }
                Some(first) = requests.recv() => {
                    tokio::time::sleep(PROMOTE_GATHER).await;
                    let mut hashes = vec![first];
                    while hashes.len() < PROMOTE_BATCH {
                        match requests.try_recv() {
                            Ok(h) => hashes.push(h),
                            Err(_) => break,
                        }
                    }
                    hashes.sort();
                    hashes.dedup();
                    match super::promote::promote(&dp, &hashes, &options).await {
                        Ok(report) => {
                            metrics.chunks_promoted.inc_by(report.moved);
                            metrics.bytes_moved.inc_by(report.bytes);
                            metrics.moves_stale.inc_by(report.stale);
                            for e in &report.errors {
                                tracing::warn!(error = %e, "promotion after a read");
                            }
                            if report.moved > 0 {
                                tracing::info!(chunks = report.moved, bytes = report.bytes, "chunks promoted after a read");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "promotion after a read failed"),
                    }
                }
            }
        }
    }))
}

async fn run_one(
    dp: &DataPath,
    options: &TierPassOptions,
    metrics: &TieringMetrics,
    promote: &HashSet<tessera_proto::ChunkHash>,
) {
    if !dp.tiers().configured() {
        return;
    }
    metrics.running.set(1);
    let mut seen = TierPassRecord::default();
    let result = super::run_pass(dp, options, promote, |r| metrics.absorb(&mut seen, r)).await;
    metrics.running.set(0);
    match result {
        Ok(record) => {
            metrics.absorb(&mut seen, &record);
            metrics.passes.inc();
            metrics.last_pass_end.set(crate::datapath::now_ms() / 1000);
            tracing::info!(
                examined = record.chunks_examined,
                demoted = record.chunks_demoted,
                promoted = record.chunks_promoted,
                moved_bytes = record.bytes_moved,
                "background tiering pass finished"
            );
        }
        Err(e) => {
            metrics.failed_passes.inc();
            tracing::warn!(error = %e, "background tiering pass failed");
        }
    }
    metrics.refresh_usage(dp).await;
}
