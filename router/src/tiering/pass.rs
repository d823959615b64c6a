//! One tiering pass over the whole cluster.
//!
//! 1. **list**: every block node of every tier lists its fragments with their
//!    stored and last-read times (`ListFragments`), grouped per tier by chunk;
//! 2. **decide**, per chunk and tier, against the chunk's location record:
//!    * a copy in a tier the record does not name is a leftover of an
//!      interrupted or lost move; it is deleted once the named tier holds a
//!      complete copy, with a conditional delete that spares fragments stored
//!      within twice the move deadline plus 30 s (a move in flight);
//!    * a copy in the named tier that was read since it arrived there (or
//!      that a router asked to promote after serving it) goes back to the
//!      first tier;
//!    * a copy not read for its tier's `demote_after` goes to the next tier;
//! 3. **move**, in batches, as [`super::mover`] describes, paced by
//!    `max_bytes_per_sec`.
//!
//! The pass changes no file, version or checksum: only where a chunk's
//! fragments live and under which code. Its progress is kept in the cluster
//! group (`tessera admin tier status`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, TierPassRecord};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery};
use tessera_meta::model::ChunkTier;
use tessera_proto::ChunkHash;

use super::mover::{delete_copies, move_batch, MoveReport, PlannedMove};
use super::{directory, Tier, TierSet};
use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;

const MAX_ERRORS: usize = 20;

#[derive(Debug, Clone)]
pub struct TierPassOptions {
    /// Fragments per `ListFragments` page.
    pub page: u32,
    /// Chunks per move batch (one location commit per batch and shard).
    pub batch: usize,
    /// Chunks read and written at once.
    pub parallel: usize,
    /// Longest time a batch may take from its first write to its commit; a
    /// leftover copy is only removed when untouched for twice this.
    pub move_deadline: Duration,
    /// Upper bound on bytes moved per second (0 = unpaced).
    pub max_bytes_per_sec: u64,
    /// Who runs the pass, for the record.
    pub by: String,
}

impl Default for TierPassOptions {
    fn default() -> Self {
        Self {
            page: 1000,
            batch: 64,
            parallel: 4,
            move_deadline: Duration::from_secs(60),
            max_bytes_per_sec: 0,
            by: "cli".into(),
        }
    }
}

/// What the listing saw of one chunk's copy in one tier.
#[derive(Debug, Default, Clone)]
struct CopySeen {
    fragments: Vec<(String, u8)>,
    newest_stored_ms: u64,
    last_read_ms: u64,
}

impl CopySeen {
    fn distinct_indices(&self) -> usize {
        self.fragments.iter().map(|(_, i)| *i).collect::<BTreeSet<_>>().len()
    }

    /// Age on this tier: since the last read, or since it arrived if never read.
    fn idle_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.newest_stored_ms.max(self.last_read_ms))
    }
}

fn push_error(record: &mut TierPassRecord, message: String) {
    tracing::warn!(%message, "tiering");
    if record.errors.len() < MAX_ERRORS {
        record.errors.push(message);
    }
}

async fn save(dp: &DataPath, record: &mut TierPassRecord) -> Result<(), RouterError> {
    record.updated_at_ms = now_ms();
    dp.view.meta.propose(0, &GroupCommand::Cluster(ClusterCommand::RecordTierPass(record.clone()))).await?;
    Ok(())
}

/// The latest pass's record, whoever ran it.
pub async fn last_record(dp: &DataPath) -> Result<Option<TierPassRecord>, RouterError> {
    match dp.view.meta.query(0, &GroupQuery::Cluster(ClusterQuery::LastTierPass)).await? {
        GroupAnswer::Cluster(ClusterAnswer::LastTierPass(r)) => Ok(r),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

/// Lists every fragment of `tier`: chunk → copy.
async fn list_tier(
    dp: &DataPath,
    tier: &Tier,
    options: &TierPassOptions,
    record: &mut TierPassRecord,
) -> BTreeMap<ChunkHash, CopySeen> {
    let mut copies: BTreeMap<ChunkHash, CopySeen> = BTreeMap::new();
    for node in tier.placement.block_nodes() {
        let client = match dp.view.pool.client(node) {
            Ok(c) => c,
            Err(e) => {
                record.nodes_unreachable.push(node.id.clone());
                push_error(record, format!("block node {}: {e}", node.id));
                continue;
            }
        };
        let mut after = None;
        loop {
            let (page, more) = match client.list_fragments(after.as_ref(), options.page.max(1)).await {
                Ok(p) => p,
                Err(e) => {
                    record.nodes_unreachable.push(node.id.clone());
                    push_error(record, format!("block node {} not listed: {}", node.id, e.message()));
                    break;
                }
            };
            after = page.last().map(|f| f.key);
            for f in page {
                let copy = copies.entry(f.key.chunk).or_default();
                copy.fragments.push((node.id.clone(), f.key.index));
                copy.newest_stored_ms = copy.newest_stored_ms.max(f.stored_ms);
                copy.last_read_ms = copy.last_read_ms.max(f.last_read_ms);
            }
            if !more {
                break;
            }
        }
        record.nodes_listed += 1;
    }
    copies
}

/// Moves planned for one (from, to) pair.
type Plan = BTreeMap<(usize, usize), Vec<PlannedMove>>;

/// One pass; `promote` are chunks routers asked to bring back to the first tier.
/// `report` sees the record after every step.
pub async fn run(
    dp: &DataPath,
    options: &TierPassOptions,
    promote: &HashSet<ChunkHash>,
    mut report: impl FnMut(&TierPassRecord),
) -> Result<TierPassRecord, RouterError> {
    dp.view.refresh().await?;
    let tiers = dp.tiers();
    if !tiers.configured() {
        return Err(RouterError::InvalidArgument(
            "storage tiering is not configured: define the tiers with `tessera admin tier set FILE`".into(),
        ));
    }
    let mut record = TierPassRecord {
        started_at_ms: now_ms(),
        by: options.by.clone(),
        phase: "list".into(),
        nodes_total: tiers.tiers().iter().map(|t| t.placement.block_nodes().len() as u64).sum(),
        ..Default::default()
    };
    save(dp, &mut record).await?;
    let mut listed = Vec::with_capacity(tiers.tiers().len());
    for tier in tiers.tiers() {
        listed.push(list_tier(dp, tier, options, &mut record).await);
        report(&record);
    }
    let now = now_ms().max(0) as u64;
    let mut plan: Plan = BTreeMap::new();
    let mut cleanups: Vec<(usize, PlannedMove)> = Vec::new();
    for (t, copies) in listed.iter().enumerate() {
        let hashes: Vec<ChunkHash> = copies.keys().copied().collect();
        record.chunks_examined += hashes.len() as u64;
        let records = match directory::lookup(dp, &hashes).await {
            Ok(r) => r,
            Err(e) => {
                record.phase = "failed".into();
                push_error(&mut record, format!("chunk locations not read, nothing moved: {e}"));
                save(dp, &mut record).await?;
                return Err(e);
            }
        };
        for ((hash, copy), location) in copies.iter().zip(records) {
            decide(&tiers, &listed, t, *hash, copy, location.as_ref(), now, promote, &mut plan, &mut cleanups);
        }
    }
    record.phase = "move".into();
    save(dp, &mut record).await?;
    report(&record);

    for ((from, to), moves) in &plan {
        let (from, to) = (&tiers.tiers()[*from], &tiers.tiers()[*to]);
        for batch in moves.chunks(options.batch.max(1)) {
            let paced = Instant::now();
            let outcome = move_batch(dp, from, to, batch, options.parallel, options.move_deadline).await;
            absorb(&mut record, &outcome, from.index < to.index);
            if options.max_bytes_per_sec > 0 && outcome.bytes > 0 {
                let budget = Duration::from_secs_f64(outcome.bytes as f64 / options.max_bytes_per_sec as f64);
                tokio::time::sleep(budget.saturating_sub(paced.elapsed())).await;
            }
            save(dp, &mut record).await?;
            report(&record);
        }
    }
    clean_up(dp, &tiers, &plan, cleanups, options, &mut record).await;
    record.phase = "done".into();
    record.finished_at_ms = Some(now_ms());
    save(dp, &mut record).await?;
    report(&record);
    Ok(record)
}

/// Deletes leftover copies: never one of a chunk this pass moved, only while the
/// chunk's record (read again just before) still names another tier, and
/// sparing any fragment stored within twice the move deadline plus
/// [`LEFTOVER_MARGIN`](super::mover::LEFTOVER_MARGIN) (a move in flight).
async fn clean_up(
    dp: &DataPath,
    tiers: &TierSet,
    plan: &Plan,
    cleanups: Vec<(usize, PlannedMove)>,
    options: &TierPassOptions,
    record: &mut TierPassRecord,
) {
    let moved: HashSet<ChunkHash> = plan.values().flatten().map(|m| m.hash).collect();
    let cleanups: Vec<(usize, PlannedMove)> = cleanups.into_iter().filter(|(_, c)| !moved.contains(&c.hash)).collect();
    if cleanups.is_empty() {
        return;
    }
    let window = options.move_deadline.min(super::mover::MAX_MOVE_DEADLINE) * 2 + super::mover::LEFTOVER_MARGIN;
    for (t, leftover) in &cleanups {
        // Read again right before the delete, one chunk at a time, so the look
        // and the delete are seconds apart at most (the margin covers them).
        let location = match directory::lookup(dp, &[leftover.hash]).await {
            Ok(mut r) => r.pop().flatten(),
            Err(e) => {
                push_error(record, format!("chunk location not read again, leftovers kept: {e}"));
                return;
            }
        };
        let named = location.as_ref().and_then(|r| tiers.by_name(&r.tier)).map_or(0, |n| n.index);
        if named == *t || location.map_or(0, |r| r.generation) != leftover.expect_generation {
            continue; // the record moved since the listing: decided again next pass
        }
        let (deleted, _kept, errors) = delete_copies(dp, &tiers.tiers()[*t], &[leftover], window).await;
        if deleted > 0 {
            record.copies_cleaned += 1;
        }
        for e in errors {
            push_error(record, e);
        }
    }
}

fn absorb(record: &mut TierPassRecord, outcome: &MoveReport, demotion: bool) {
    if demotion {
        record.chunks_demoted += outcome.moved;
    } else {
        record.chunks_promoted += outcome.moved;
    }
    record.moves_stale += outcome.stale;
    record.bytes_moved += outcome.bytes;
    for e in &outcome.errors {
        push_error(record, e.clone());
    }
}

/// What to do with the copy of `hash` in tier `t` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn decide(
    tiers: &TierSet,
    listed: &[BTreeMap<ChunkHash, CopySeen>],
    t: usize,
    hash: ChunkHash,
    copy: &CopySeen,
    location: Option<&ChunkTier>,
    now: u64,
    promote: &HashSet<ChunkHash>,
    plan: &mut Plan,
    cleanups: &mut Vec<(usize, PlannedMove)>,
) {
    let tier = &tiers.tiers()[t];
    // A record naming a tier that no longer exists counts as no record.
    let named = location.and_then(|r| tiers.by_name(&r.tier)).map(|n| n.index).unwrap_or(0);
    let planned = PlannedMove {
        hash,
        expect_generation: location.map(|r| r.generation).unwrap_or(0),
        from_fragments: copy.fragments.clone(),
    };
    if named != t {
        let named_tier = &tiers.tiers()[named];
        let named_complete =
            listed[named].get(&hash).is_some_and(|c| c.distinct_indices() >= named_tier.fragments_per_chunk());
        if named_complete {
            cleanups.push((t, planned));
        }
        // Otherwise this copy may be the only one (records lost when shards
        // were added): it stays until a pass finds the named tier complete.
        return;
    }
    // A first-tier copy may have fragments on nodes that joined a colder tier
    // after it was written: the mover reads it from any node. Other tiers'
    // copies are only ever written to their own nodes.
    if t > 0 && copy.distinct_indices() < tier.data_shards() {
        return; // not readable from here; repair's business
    }
    if t > 0 && (copy.last_read_ms > 0 || promote.contains(&hash)) {
        plan.entry((t, 0)).or_default().push(planned);
        return;
    }
    if let Some(after) = tier.demote_after {
        if t + 1 < tiers.tiers().len() && copy.idle_ms(now) >= after.as_millis() as u64 {
            plan.entry((t, t + 1)).or_default().push(planned);
        }
    }
}
