//! Moving chunks between tiers, crash-safely.
//!
//! A batch of chunks going from tier `from` to tier `to`:
//!
//! 1. each chunk is read from its `from` copy (decoded, hash-checked), coded for
//!    `to` (compressed first on a compressing tier), and every one of its `k+m`
//!    fragments is written to its `to` placement node and acknowledged durable;
//! 2. the chunks' location records are committed, each a compare-and-set on the
//!    generation read before step 1 — only if no other mover changed the record
//!    meanwhile, and only if step 1 took less than the move deadline (and the
//!    old copy is kept if the commit returns later than twice the deadline);
//! 3. only for a committed chunk, the `from` copy is deleted, with the block
//!    nodes' conditional delete: a node keeps a fragment stored (or stored
//!    again) since the commit began — another mover bringing the chunk back.
//!
//! A crash before step 2 leaves an unreferenced new copy that the next move of
//! the chunk overwrites or the next pass removes; a crash after step 2 leaves
//! the old copy, which the next pass removes. At no point does a chunk lack a
//! complete copy in the tier its record names, and reads try every tier.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_block::client::FragmentCode;
use tessera_block::FragmentKey;
use tessera_meta::model::{ChunkTierMove, ChunkTierOutcome};
use tessera_proto::ChunkHash;

use super::{directory, Tier};
use crate::chunk_read::{read_from_tier, ReadFor};
use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;

/// One chunk to move, with what the pass knows of its current copy.
#[derive(Debug, Clone)]
pub struct PlannedMove {
    pub hash: ChunkHash,
    /// Generation of the location record when the move was planned (0: none).
    pub expect_generation: u64,
    /// (node id, fragment index) of the `from` copy, deleted after the commit.
    pub from_fragments: Vec<(String, u8)>,
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MoveReport {
    pub moved: u64,
    /// Refused because the location record changed meanwhile.
    pub stale: u64,
    pub failed: u64,
    /// Bytes of chunk data moved.
    pub bytes: u64,
    /// Fragments of old copies deleted.
    pub old_fragments_deleted: u64,
    /// Old fragments kept because their chunk was touched after the commit.
    pub old_fragments_kept: u64,
    pub errors: Vec<String>,
}

impl MoveReport {
    /// Adds another batch's report to this one.
    pub fn absorb(&mut self, other: MoveReport) {
        self.moved += other.moved;
        self.stale += other.stale;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.old_fragments_deleted += other.old_fragments_deleted;
        self.old_fragments_kept += other.old_fragments_kept;
        self.errors.extend(other.errors);
    }
}

/// Where a test can make the mover's process die (`TESSERA_FAILPOINT_TIER_MOVE`):
/// `after-write` (new copies durable, nothing committed) or `after-commit`
/// (records committed, old copies not deleted yet).
fn failpoint(stage: &str) {
    if std::env::var("TESSERA_FAILPOINT_TIER_MOVE").is_ok_and(|v| v == stage) {
        tracing::error!(stage, "failpoint: aborting mid-move");
        std::process::abort();
    }
}

/// Writes every fragment of `hash`'s copy in `to`; returns the chunk's size.
async fn write_copy(dp: &DataPath, from: &Tier, to: &Tier, hash: ChunkHash) -> Result<u64, RouterError> {
    let chunk = read_from_tier(dp, from, hash, None, ReadFor::Background).await?;
    let size = chunk.len() as u64;
    let nodes = to.nodes_for(&hash)?;
    let code = to.code.clone();
    let compression = to.compression;
    let to_name = to.name.clone();
    let (payload_len, fragments) = tokio::task::spawn_blocking(move || -> Result<(usize, Vec<Bytes>), RouterError> {
        let payload = super::tiers::encode_payload(compression, &to_name, &chunk)?;
        let fragments = code.encode(&payload).map_err(|e| RouterError::Integrity(e.to_string()))?;
        Ok((payload.len(), fragments))
    })
    .await
    .map_err(|e| RouterError::Unavailable(format!("encoder task failed: {e}")))??;
    let fc = FragmentCode {
        data_shards: to.data_shards() as u8,
        parity_shards: (to.fragments_per_chunk() - to.data_shards()) as u8,
        chunk_len: payload_len as u64,
    };
    let pool = &dp.view.pool;
    let puts = nodes.iter().zip(fragments).enumerate().map(|(i, (node, fragment))| async move {
        let client = pool.client(node).map_err(|e| RouterError::Unavailable(e.to_string()))?;
        let result = client.put_fragment(&FragmentKey::new(hash, i as u8), fc, fragment).await;
        pool.note_result(node, &result);
        result.map_err(|s| {
            RouterError::Unavailable(format!(
                "tier {}: block node {} did not store fragment {i} of chunk {hash}: {}",
                to.name,
                node.id,
                s.message()
            ))
        })?;
        pool.note_stored(node, &hash);
        Ok::<(), RouterError>(())
    });
    for result in futures::future::join_all(puts).await {
        result?;
    }
    Ok(size)
}

/// Moves `batch` from `from` to `to` as described in the module docs.
pub async fn move_batch(
    dp: &DataPath,
    from: &Tier,
    to: &Tier,
    batch: &[PlannedMove],
    parallel: usize,
    deadline: Duration,
) -> MoveReport {
    use futures::StreamExt;
    let deadline = deadline.min(MAX_MOVE_DEADLINE);
    let mut report = MoveReport::default();
    let began = Instant::now();
    let writes: Vec<_> = batch.iter().map(|m| write_copy(dp, from, to, m.hash)).collect();
    let written: Vec<Result<u64, RouterError>> =
        futures::stream::iter(writes).buffered(parallel.max(1)).collect().await;
    let mut ready = Vec::new();
    for (planned, result) in batch.iter().zip(written) {
        match result {
            Ok(size) => ready.push((planned, size)),
            Err(e) => {
                report.failed += 1;
                report.errors.push(format!("chunk {} not moved from {} to {}: {e}", planned.hash, from.name, to.name));
            }
        }
    }
    if ready.is_empty() {
        return report;
    }
    failpoint("after-write");
    if began.elapsed() > deadline {
        // A cleanup elsewhere may already count these new copies as leftovers.
        report.failed += ready.len() as u64;
        report.errors.push(format!(
            "{} chunk moves from {} to {} took longer than the move deadline ({deadline:?}); not committed",
            ready.len(),
            from.name,
            to.name
        ));
        return report;
    }
    let commit_began = Instant::now();
    let moves = ready
        .iter()
        .map(|(p, _)| ChunkTierMove {
            hash: p.hash.0,
            expect_generation: p.expect_generation,
            tier: to.name.clone(),
            moved_at_ms: now_ms(),
        })
        .collect();
    let outcomes = match directory::commit(dp, moves).await {
        Ok(o) => o,
        Err(e) => {
            report.failed += ready.len() as u64;
            report.errors.push(format!("chunk locations not committed ({} chunks): {e}", ready.len()));
            return report;
        }
    };
    failpoint("after-commit");
    // A leftover cleanup spares copies stored within twice the deadline (plus a
    // margin): past that, the new copy may have been taken for a leftover, so
    // the old one stays (a later pass moves the chunk again).
    let late = began.elapsed() >= deadline * 2;
    let mut committed: Vec<&PlannedMove> = Vec::new();
    for ((planned, size), outcome) in ready.iter().zip(outcomes) {
        match outcome {
            ChunkTierOutcome::Moved { .. } => {
                report.moved += 1;
                report.bytes += size;
                committed.push(planned);
            }
            ChunkTierOutcome::Stale { .. } => report.stale += 1,
        }
    }
    if late {
        report.errors.push(format!(
            "{} chunk locations committed after twice the move deadline; their copies in {} are kept",
            committed.len(),
            from.name
        ));
        return report;
    }
    let (deleted, kept, errors) = delete_copies(dp, from, &committed, commit_began.elapsed() + DELETE_MARGIN).await;
    report.old_fragments_deleted += deleted;
    report.old_fragments_kept += kept;
    report.errors.extend(errors);
    report
}

/// The longest move deadline honoured: repair spares fragments on another
/// tier's nodes stored within more than twice this plus [`LEFTOVER_MARGIN`]
/// ([`MOVE_IN_FLIGHT`](crate::repair::MOVE_IN_FLIGHT)).
pub const MAX_MOVE_DEADLINE: Duration = Duration::from_secs(300);

/// Added to a conditional delete's window: the window is measured on the router
/// and carried out a moment later on the node, whose stored times have second
/// precision.
pub const DELETE_MARGIN: Duration = Duration::from_secs(5);

/// Added to twice the move deadline for a leftover's deletion: covers the time
/// between the cleanup's last look at the chunk's record and its delete.
pub const LEFTOVER_MARGIN: Duration = Duration::from_secs(30);

/// Deletes the listed fragments of `chunks` from the nodes of `tier` that hold
/// them, sparing fragments stored within `unstored_for`.
pub async fn delete_copies(
    dp: &DataPath,
    tier: &Tier,
    chunks: &[&PlannedMove],
    unstored_for: Duration,
) -> (u64, u64, Vec<String>) {
    let (mut deleted, mut kept, mut errors) = (0, 0, Vec::new());
    let nodes: HashSet<&str> = chunks.iter().flat_map(|c| c.from_fragments.iter().map(|(n, _)| n.as_str())).collect();
    for node_id in nodes {
        let keys: Vec<FragmentKey> = chunks
            .iter()
            .flat_map(|c| {
                c.from_fragments.iter().filter(|(n, _)| n == node_id).map(|(_, index)| FragmentKey::new(c.hash, *index))
            })
            .collect();
        let Some(node) = tier.node(node_id) else { continue };
        let outcome = match dp.view.pool.client(node) {
            Ok(client) => client.delete_unstored(&keys, unstored_for).await.map_err(|e| e.message().to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(o) => {
                deleted += o.deleted;
                kept += o.kept_recent;
            }
            Err(e) => errors.push(format!("tier {}: block node {node_id}: old copies not deleted: {e}", tier.name)),
        }
    }
    (deleted, kept, errors)
}
