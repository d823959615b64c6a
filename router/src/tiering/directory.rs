//! Chunk location records: which tier holds a chunk that a tiering move ever
//! touched. Each record lives on the metadata shard that
//! [`Placement::shard_for_chunk_record`](crate::placement::Placement::shard_for_chunk_record)
//! picks for its hash; a chunk without a record is in the first tier.
//!
//! A move commits its record with a compare-and-set on the record's
//! generation, so of two routers moving one chunk at once only one wins, and
//! only the winner deletes the copy it moved away from.

use std::collections::BTreeMap;

use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::{
    ChunkTier, ChunkTierMove, ChunkTierOutcome, QueryResponse, ShardCommand, ShardQuery, ShardResponse,
};
use tessera_proto::ChunkHash;

use crate::datapath::DataPath;
use crate::error::RouterError;

/// Records per metadata request (the shard's limit).
const BATCH: usize = 1000;

/// Groups `hashes` by the shard keeping their records: shard → (position, hash).
fn by_shard(dp: &DataPath, hashes: &[ChunkHash]) -> Result<BTreeMap<u64, Vec<(usize, ChunkHash)>>, RouterError> {
    let placement = dp.view.placement();
    let mut groups: BTreeMap<u64, Vec<(usize, ChunkHash)>> = BTreeMap::new();
    for (i, hash) in hashes.iter().enumerate() {
        let shard = placement.shard_for_chunk_record(hash).map_err(|e| RouterError::Unavailable(e.to_string()))?;
        groups.entry(shard).or_default().push((i, *hash));
    }
    Ok(groups)
}

/// The location records of `hashes`, in the order asked (`None`: never moved).
pub async fn lookup(dp: &DataPath, hashes: &[ChunkHash]) -> Result<Vec<Option<ChunkTier>>, RouterError> {
    let mut out = vec![None; hashes.len()];
    for (shard, entries) in by_shard(dp, hashes)? {
        for batch in entries.chunks(BATCH) {
            let q = GroupQuery::Shard(ShardQuery::ChunkTiers { hashes: batch.iter().map(|(_, h)| h.0).collect() });
            match dp.view.meta.query(shard, &q).await? {
                GroupAnswer::Shard(Ok(QueryResponse::ChunkTiers(records))) if records.len() == batch.len() => {
                    for ((i, _), record) in batch.iter().zip(records) {
                        out[*i] = record;
                    }
                }
                GroupAnswer::Shard(Err(e)) => return Err(e.into()),
                other => return Err(RouterError::Metadata(format!("unexpected answer to ChunkTiers: {other:?}"))),
            }
        }
    }
    Ok(out)
}

/// Commits `moves` (each a compare-and-set on the generation the mover read);
/// outcomes in the order given.
pub async fn commit(dp: &DataPath, moves: Vec<ChunkTierMove>) -> Result<Vec<ChunkTierOutcome>, RouterError> {
    let hashes: Vec<ChunkHash> = moves.iter().map(|m| ChunkHash(m.hash)).collect();
    let mut out: Vec<Option<ChunkTierOutcome>> = vec![None; moves.len()];
    for (shard, entries) in by_shard(dp, &hashes)? {
        for batch in entries.chunks(BATCH) {
            let cmd = ShardCommand::MoveChunkTiers { moves: batch.iter().map(|(i, _)| moves[*i].clone()).collect() };
            match dp.view.meta.propose(shard, &GroupCommand::Shard(cmd)).await? {
                (GroupResponse::Shard(Ok(ShardResponse::ChunkTierMoves(outcomes))), _)
                    if outcomes.len() == batch.len() =>
                {
                    for ((i, _), outcome) in batch.iter().zip(outcomes) {
                        out[*i] = Some(outcome);
                    }
                }
                (GroupResponse::Shard(Err(e)), _) => return Err(e.into()),
                (other, _) => {
                    return Err(RouterError::Metadata(format!("unexpected answer to MoveChunkTiers: {other:?}")))
                }
            }
        }
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| RouterError::Metadata("a chunk location move got no answer".into())))
        .collect()
}
