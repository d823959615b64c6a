//! Repair and rebalance: bring every referenced chunk's fragments back to where
//! the current placement says they belong.
//!
//! The walk is driven by the metadata, not by the block nodes: every shard
//! lists the chunks it references (`ShardQuery::ListChunks`, hash order, paged),
//! and for each page the engine asks every block node which fragments it holds
//! (one exact `BatchHas` per node and page). Per chunk ([`chunk`]):
//!
//! * a fragment missing from its placement node is copied from a node that
//!   holds the same fragment elsewhere (left there by an older placement), or
//!   rebuilt from any k fragments (decode, hash check, re-encode);
//! * a fragment a scrub found corrupt counts as missing on that node; the
//!   re-put replaces the damaged copy;
//! * in [`Mode::Rebalance`], copies outside the placement are deleted, but only
//!   once every placement node holds its fragment, so a chunk never has less
//!   redundancy than the code promises at any point of a move.
//!
//! Nothing here changes metadata, so a repair can be stopped at any moment and
//! run again; a second run over a healthy cluster writes nothing.

pub mod background;
mod chunk;

pub(crate) use chunk::Holdings;
pub use chunk::MOVE_IN_FLIGHT;

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use tessera_block::FragmentKey;
use tessera_meta::cluster::{ClusterCommand, RepairRecord};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery};
use tessera_meta::model::{QueryResponse, ShardQuery};
use tessera_proto::ChunkHash;

use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::placement::Placement;
use crate::tiering::TierSet;

/// What a pass may do besides rebuilding missing fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rebuild missing and corrupt fragments; leave copies outside the placement alone.
    Repair,
    /// Also delete copies outside the placement once the placement copy is durable
    /// (after nodes were added or removed).
    Rebalance,
}

#[derive(Debug, Clone)]
pub struct RepairOptions {
    pub mode: Mode,
    /// Scrub every block node first, so corrupt fragments are found and replaced.
    pub scrub: bool,
    /// Chunks per metadata page (and per `BatchHas`).
    pub page: usize,
    /// Chunks repaired at once.
    pub parallel: usize,
}

impl Default for RepairOptions {
    fn default() -> Self {
        Self { mode: Mode::Repair, scrub: true, page: 256, parallel: 4 }
    }
}

/// Running totals of a pass, reported after every page and at the end.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RepairProgress {
    pub mode: Option<Mode>,
    pub shards_done: u64,
    pub shards_total: u64,
    pub fragments_scrubbed: u64,
    /// Corrupt fragments the scrub found (they are then replaced like missing ones).
    pub corrupt_fragments: u64,
    pub chunks_examined: u64,
    /// Chunks that already had every fragment on its placement node.
    pub chunks_healthy: u64,
    pub chunks_repaired: u64,
    /// Fragments copied from a node outside the placement.
    pub fragments_copied: u64,
    /// Fragments reconstructed from other fragments.
    pub fragments_rebuilt: u64,
    /// Copies outside the placement deleted (rebalance).
    pub fragments_removed: u64,
    pub bytes_written: u64,
    /// A placement node is unreachable: the chunk stays under-replicated until the
    /// node returns or is removed from the cluster (then run rebalance).
    pub chunks_waiting_for_node: u64,
    /// No fragment found anywhere: a chunk an open upload has not sent yet, or one
    /// lost entirely.
    pub chunks_absent: u64,
    /// Some fragments exist but fewer than k: unreadable until nodes come back.
    pub chunks_lost: u64,
    /// Block nodes that did not answer during the pass.
    pub nodes_unreachable: Vec<String>,
    /// First errors met (at most [`MAX_ERRORS`]).
    pub errors: Vec<String>,
}

pub const MAX_ERRORS: usize = 20;

impl RepairProgress {
    fn error(&mut self, message: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }

    fn absorb(&mut self, outcome: chunk::Outcome) {
        use chunk::Outcome as O;
        self.chunks_examined += 1;
        match outcome {
            O::Healthy { removed } => {
                self.chunks_healthy += 1;
                self.fragments_removed += removed;
            }
            O::Repaired { copied, rebuilt, removed, bytes } => {
                self.chunks_repaired += 1;
                self.fragments_copied += copied;
                self.fragments_rebuilt += rebuilt;
                self.fragments_removed += removed;
                self.bytes_written += bytes;
            }
            O::WaitingForNode { copied, rebuilt, bytes } => {
                self.chunks_waiting_for_node += 1;
                self.fragments_copied += copied;
                self.fragments_rebuilt += rebuilt;
                self.bytes_written += bytes;
            }
            O::Absent => self.chunks_absent += 1,
            O::Lost { hash, available } => {
                self.chunks_lost += 1;
                self.error(format!("chunk {hash} has only {available} fragments left, too few to rebuild"));
            }
            O::Failed(message) => self.error(message),
        }
    }

    /// True when the pass left every examined chunk fully redundant.
    pub fn complete(&self) -> bool {
        self.chunks_waiting_for_node == 0 && self.chunks_lost == 0 && self.errors.is_empty()
    }
}

/// Corrupt fragments per block node, from a scrub.
pub(crate) type CorruptSet = HashSet<(String, FragmentKey)>;

async fn scrub_all(dp: &DataPath, placement: &Placement, progress: &mut RepairProgress) -> CorruptSet {
    let pool = &dp.view.pool;
    let scrubs = placement.block_nodes().iter().map(|node| async move {
        let client = pool.client(node).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        client.scrub().await
    });
    let mut corrupt = CorruptSet::new();
    for (node, result) in placement.block_nodes().iter().zip(futures::future::join_all(scrubs).await) {
        match result {
            Ok(report) => {
                progress.fragments_scrubbed += report.examined;
                for c in report.corrupt {
                    let key = c.key.as_ref().and_then(|k| FragmentKey::from_wire(&k.chunk_hash, k.index).ok());
                    match key {
                        Some(key) => {
                            progress.corrupt_fragments += 1;
                            corrupt.insert((node.id.clone(), key));
                        }
                        None => progress.error(format!("block node {}: {}", node.id, c.reason)),
                    }
                }
            }
            Err(e) => {
                progress.error(format!("block node {} could not be scrubbed: {}", node.id, e.message()));
            }
        }
    }
    corrupt
}

/// One page of a shard's referenced chunks (hash order) and whether more follow.
pub(crate) async fn chunk_page(
    dp: &DataPath,
    group: u64,
    after: Option<[u8; 32]>,
    limit: usize,
) -> Result<(Vec<ChunkHash>, bool), RouterError> {
    let q = GroupQuery::Shard(ShardQuery::ListChunks { after, limit });
    match dp.view.meta.query(group, &q).await? {
        GroupAnswer::Shard(Ok(QueryResponse::Chunks(page))) => {
            Ok((page.items.into_iter().map(|(h, _)| ChunkHash(h)).collect(), page.has_more))
        }
        GroupAnswer::Shard(Err(e)) => Err(e.into()),
        other => Err(RouterError::Metadata(format!("unexpected answer to ListChunks: {other:?}"))),
    }
}

/// Per chunk, the index of the tier its location record names (`None` without
/// a record, or without tiering; a record naming a tier that no longer exists
/// counts as the first tier).
async fn named_tiers(dp: &DataPath, tiers: &TierSet, hashes: &[ChunkHash]) -> Result<Vec<Option<usize>>, RouterError> {
    if !tiers.configured() {
        return Ok(vec![None; hashes.len()]);
    }
    let records = crate::tiering::directory::lookup(dp, hashes).await?;
    Ok(records.iter().map(|r| r.as_ref().map(|r| tiers.by_name(&r.tier).map_or(0, |t| t.index))).collect())
}

/// One pass over every chunk of every shard. `report` sees the running totals
/// after the scrub and after every page.
pub async fn run(
    dp: &Arc<DataPath>,
    options: &RepairOptions,
    mut report: impl FnMut(&RepairProgress),
) -> Result<RepairProgress, RouterError> {
    dp.view.refresh().await?;
    let placement = dp.view.placement();
    let tiers = dp.tiers();
    let mut progress = RepairProgress {
        mode: Some(options.mode),
        shards_total: placement.shards().len() as u64,
        ..Default::default()
    };
    let corrupt =
        Arc::new(if options.scrub { scrub_all(dp, &placement, &mut progress).await } else { CorruptSet::new() });
    report(&progress);
    let mut unreachable = HashSet::new();
    for shard in placement.shards() {
        let mut after = None;
        loop {
            let (hashes, more) = chunk_page(dp, shard.group_id, after, options.page.max(1)).await?;
            after = hashes.last().map(|h| h.0);
            let holdings = Arc::new(chunk::Holdings::fetch(dp, &placement, &hashes).await);
            let named = named_tiers(dp, &tiers, &hashes).await?;
            for node in holdings.unreachable() {
                unreachable.insert(node.to_owned());
            }
            // Built in a loop, not a closure: a closure here makes the pass's future
            // fail the `Send` check of `tokio::spawn` (higher-ranked lifetimes).
            let mut jobs = Vec::with_capacity(hashes.len());
            for (row, hash) in hashes.iter().enumerate() {
                let job = chunk::ChunkJob {
                    dp,
                    tier: chunk::choose_tier(&tiers, named[row], &holdings, row),
                    everyone: &placement,
                    never_moved: named[row].is_none(),
                    holdings: &holdings,
                    corrupt: &corrupt,
                    row,
                    hash: *hash,
                    mode: options.mode,
                };
                jobs.push(job.run());
            }
            let outcomes: Vec<chunk::Outcome> =
                futures::stream::iter(jobs).buffer_unordered(options.parallel.max(1)).collect().await;
            for outcome in outcomes {
                progress.absorb(outcome);
            }
            progress.nodes_unreachable = {
                let mut v: Vec<String> = unreachable.iter().cloned().collect();
                v.sort();
                v
            };
            report(&progress);
            if !more {
                break;
            }
        }
        progress.shards_done += 1;
        report(&progress);
    }
    Ok(progress)
}

/// Keeps the outcome of a pass in the cluster group (what `tessera admin status`
/// shows as under-replicated).
pub async fn record(
    dp: &DataPath,
    progress: &RepairProgress,
    by: &str,
    took: std::time::Duration,
) -> Result<(), RouterError> {
    let record = RepairRecord {
        finished_at_ms: crate::datapath::now_ms(),
        by: by.to_owned(),
        mode: match progress.mode {
            Some(Mode::Rebalance) => "rebalance".into(),
            _ => "repair".into(),
        },
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        chunks_examined: progress.chunks_examined,
        chunks_repaired: progress.chunks_repaired,
        under_replicated: progress.chunks_waiting_for_node + progress.chunks_lost,
        chunks_lost: progress.chunks_lost,
        fragments_rebuilt: progress.fragments_rebuilt,
        fragments_copied: progress.fragments_copied,
        fragments_removed: progress.fragments_removed,
        corrupt_fragments: progress.corrupt_fragments,
        nodes_unreachable: progress.nodes_unreachable.clone(),
    };
    dp.view.meta.propose(0, &GroupCommand::Cluster(ClusterCommand::RecordRepair(record))).await?;
    Ok(())
}
