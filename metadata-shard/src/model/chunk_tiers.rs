//! Chunk location records: which storage tier holds a chunk (see `crate::tiering`).
//!
//! A record exists for every chunk a tiering move ever touched, on one shard (the
//! router picks it by hashing the chunk, independently of which users reference
//! it); no record means the chunk was never moved: it is in the first tier, at
//! generation 0. A move writes the new copy, commits the record with a
//! compare-and-set on its generation ([`ChunkTierMove::expect_generation`]), and only
//! then deletes the old copy, so of two movers racing on one chunk exactly one
//! commits and the other learns it lost ([`ChunkTierOutcome::Stale`]).
//!
//! Records are never deleted, not even when the chunk's last reference goes: a
//! generation is therefore never reused, and a mover holding an old one can never
//! commit over a later move.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, get_decoded};
use super::kv::{KvRead, KvWrite};
use super::types::Hash32;
use super::{keys, ModelError};

/// Most moves one `MoveChunkTiers` command takes, and most hashes one
/// `ChunkTiers` query or `ListChunkTiers` page returns.
pub const MAX_CHUNK_TIER_BATCH: usize = 1000;

/// A chunk's location record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkTier {
    /// Name of the tier holding the chunk (`TierSpec::name`).
    pub tier: String,
    /// Number of moves committed for the chunk (≥ 1 once a record exists).
    pub generation: u64,
    /// When the latest move was committed (the mover's clock).
    pub moved_at_ms: i64,
}

/// One compare-and-set of a chunk's location record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkTierMove {
    pub hash: Hash32,
    /// Generation the mover read (0 = no record).
    pub expect_generation: u64,
    /// The tier the chunk's new copy was written to.
    pub tier: String,
    pub moved_at_ms: i64,
}

/// What one [`ChunkTierMove`] did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ChunkTierOutcome {
    /// Committed; the record now has this generation (expect + 1).
    Moved { generation: u64 },
    /// The record's generation differs from the expected one; nothing changed.
    Stale { current: Option<ChunkTier> },
}

/// A chunk's location record (`None`: never moved).
pub fn chunk_tier(kv: &dyn KvRead, hash: &Hash32) -> Result<Option<ChunkTier>, ModelError> {
    get_decoded(kv, &keys::chunk_tier(hash), "chunk tier")
}

/// Applies the moves in order, each a compare-and-set on the record's generation;
/// outcomes in the same order. A later move of the same chunk in one batch sees the
/// earlier one's result.
pub(crate) fn move_chunk_tiers(
    kv: &mut dyn KvWrite,
    moves: &[ChunkTierMove],
) -> Result<Vec<ChunkTierOutcome>, ModelError> {
    if moves.len() > MAX_CHUNK_TIER_BATCH {
        return Err(ModelError::InvalidArgument(format!(
            "{} chunk tier moves in one command (at most {MAX_CHUNK_TIER_BATCH})",
            moves.len()
        )));
    }
    if let Some(m) = moves.iter().find(|m| m.tier.is_empty()) {
        return Err(ModelError::InvalidArgument(format!("chunk tier move of {} names no tier", hex::encode(m.hash))));
    }
    let mut outcomes = Vec::with_capacity(moves.len());
    for m in moves {
        let key = keys::chunk_tier(&m.hash);
        let current: Option<ChunkTier> = match kv.get(&key)? {
            Some(bytes) => Some(decode(&bytes, "chunk tier")?),
            None => None,
        };
        let generation = current.as_ref().map_or(0, |c| c.generation);
        if generation != m.expect_generation {
            outcomes.push(ChunkTierOutcome::Stale { current });
            continue;
        }
        let generation = generation.checked_add(1).ok_or_else(|| {
            ModelError::Corrupt(format!("chunk tier generation of {} overflows", hex::encode(m.hash)))
        })?;
        let record = ChunkTier { tier: m.tier.clone(), generation, moved_at_ms: m.moved_at_ms };
        kv.put(&key, &encode(&record)?);
        outcomes.push(ChunkTierOutcome::Moved { generation });
    }
    Ok(outcomes)
}

/// Location records of `hashes`, in the order asked (at most [`MAX_CHUNK_TIER_BATCH`]).
pub fn chunk_tiers(kv: &dyn KvRead, hashes: &[Hash32]) -> Result<Vec<Option<ChunkTier>>, ModelError> {
    if hashes.len() > MAX_CHUNK_TIER_BATCH {
        return Err(ModelError::InvalidArgument(format!(
            "{} hashes in one chunk tier query (at most {MAX_CHUNK_TIER_BATCH})",
            hashes.len()
        )));
    }
    hashes.iter().map(|h| chunk_tier(kv, h)).collect()
}

/// Location records with a hash above `after`, in hash order; `limit` is clamped to
/// 1..=[`MAX_CHUNK_TIER_BATCH`].
pub fn list_chunk_tiers(
    kv: &dyn KvRead,
    after: Option<&Hash32>,
    limit: u32,
) -> Result<(Vec<(Hash32, ChunkTier)>, bool), ModelError> {
    let limit = usize::try_from(limit).unwrap_or(MAX_CHUNK_TIER_BATCH).clamp(1, MAX_CHUNK_TIER_BATCH);
    let (start, end) = keys::chunk_tiers_after(after);
    let mut rows = kv.scan(&start, &end, limit + 1)?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let entries = rows
        .into_iter()
        .map(|(key, value)| {
            let hash: Hash32 = key
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ModelError::Corrupt("chunk tier key".into()))?;
            Ok((hash, decode(&value, "chunk tier")?))
        })
        .collect::<Result<_, ModelError>>()?;
    Ok((entries, has_more))
}
