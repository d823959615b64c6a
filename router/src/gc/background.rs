//! The router's background garbage collection: a pass every `[gc] interval_secs`,
//! progress and totals on `/metrics` (`tessera_router_gc_*`). Turn it on in one
//! router of a cluster; passes are safe to overlap but waste work.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tessera_meta::cluster::GcRecord;

use super::GcOptions;
use crate::datapath::DataPath;

/// `[gc]` in `router.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Seconds between background passes; 0 turns the background job off.
    pub interval_secs: u64,
    /// A chunk must have gone untouched this long before it is deleted.
    pub grace_secs: u64,
    /// Upper bound on fragment deletes per second (0 = unpaced).
    pub max_deletes_per_sec: u64,
    /// Deleted files and folders are purged this long after their deletion (0 = kept
    /// until purged by hand).
    pub trash_retention_secs: u64,
    /// Change-feed events are kept this long (0 = for ever); a sync client
    /// whose cursor is older resyncs in full.
    pub change_log_retention_secs: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval_secs: 0,
            grace_secs: super::DEFAULT_GRACE.as_secs(),
            max_deletes_per_sec: 2000,
            trash_retention_secs: super::DEFAULT_TRASH_RETENTION.as_secs(),
            change_log_retention_secs: super::DEFAULT_CHANGE_LOG_RETENTION.as_secs(),
        }
    }
}

impl GcConfig {
    /// The options of a pass this configuration runs, recorded as run `by`.
    pub fn options(&self, by: String) -> GcOptions {
        let retention = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        GcOptions {
            grace: Duration::from_secs(self.grace_secs.max(super::MIN_GRACE.as_secs())),
            max_deletes_per_sec: self.max_deletes_per_sec,
            by,
            trash_retention: retention(self.trash_retention_secs),
            change_log_retention: retention(self.change_log_retention_secs),
            ..Default::default()
        }
    }
}

/// `tessera_router_gc_*` on `/metrics`.
#[derive(Default, Clone)]
pub struct GcMetrics {
    pub running: Gauge,
    pub passes: Counter,
    pub failed_passes: Counter,
    pub fragments_examined: Counter,
    pub fragments_deleted: Counter,
    pub fragments_kept_recent: Counter,
    pub bytes_freed: Counter,
    /// Chunks referenced by some shard at the last mark.
    pub chunks_referenced: Gauge,
    pub last_pass_end: Gauge<i64, AtomicI64>,
}

impl GcMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_gc");
        r.register("running", "1 while a background GC pass runs", self.running.clone());
        r.register("passes", "Finished background GC passes", self.passes.clone());
        r.register("failed_passes", "Background GC passes that stopped early", self.failed_passes.clone());
        r.register("examined_fragments", "Fragments looked at by GC sweeps", self.fragments_examined.clone());
        r.register("deleted_fragments", "Fragments of unreferenced chunks deleted", self.fragments_deleted.clone());
        r.register(
            "kept_recent_fragments",
            "Unreferenced fragments kept because their chunk was touched within the grace",
            self.fragments_kept_recent.clone(),
        );
        r.register("freed_bytes", "Fragment bytes given back by GC", self.bytes_freed.clone());
        r.register("referenced_chunks", "Chunks referenced at the last mark", self.chunks_referenced.clone());
        r.register(
            "last_pass_end_timestamp_seconds",
            "When the last background GC pass finished",
            self.last_pass_end.clone(),
        );
    }

    /// Adds what a pass did since the previous report of the same pass.
    fn absorb(&self, seen: &mut GcRecord, now: &GcRecord) {
        self.fragments_examined.inc_by(now.fragments_examined.saturating_sub(seen.fragments_examined));
        self.fragments_deleted.inc_by(now.fragments_deleted.saturating_sub(seen.fragments_deleted));
        self.fragments_kept_recent.inc_by(now.fragments_kept_recent.saturating_sub(seen.fragments_kept_recent));
        self.bytes_freed.inc_by(now.bytes_freed.saturating_sub(seen.bytes_freed));
        self.chunks_referenced.set(now.chunks_referenced as i64);
        *seen = now.clone();
    }
}

/// Runs passes every `config.interval_secs` until the task is dropped; `None`
/// when the background job is off.
pub fn spawn(
    dp: Arc<DataPath>,
    config: GcConfig,
    metrics: GcMetrics,
    by: String,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.interval_secs == 0 {
        return None;
    }
    let every = Duration::from_secs(config.interval_secs);
    let options = config.options(by);
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            metrics.running.set(1);
            let mut seen = GcRecord::default();
            let result = super::run(&dp, &options, |r| metrics.absorb(&mut seen, r)).await;
            metrics.running.set(0);
            match result {
                Ok(record) => {
                    metrics.absorb(&mut seen, &record);
                    metrics.passes.inc();
                    metrics.last_pass_end.set(crate::datapath::now_ms() / 1000);
                    tracing::info!(
                        examined = record.fragments_examined,
                        deleted = record.fragments_deleted,
                        freed_bytes = record.bytes_freed,
                        kept_recent = record.fragments_kept_recent,
                        "background GC pass finished"
                    );
                }
                Err(e) => {
                    metrics.failed_passes.inc();
                    tracing::warn!(error = %e, "background GC pass failed");
                }
            }
        }
    }))
}
