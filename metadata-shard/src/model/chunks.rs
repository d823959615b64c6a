//! Per-shard chunk reference counts and the zero-ref log.
//!
//! Counting rule: one reference per *occurrence* of a chunk in a holder's chunk list —
//! a version listing chunk X twice holds two references; an open upload session holds
//! references for its intended chunk list in the same way. Every command collects its
//! reference changes in a [`RefDelta`] and applies the *net* change once, at the end, in
//! hash order: a chunk that is released and re-added in one command (last-writer-wins
//! over a version that shares chunks, pruning, session commit) never touches zero, so
//! the zero-ref log holds only real drops to zero.
//!
//! When a count reaches zero the key is deleted and the hash is appended to the zero-ref
//! log under a shard-wide sequence number. GC reads the log after its last cursor and
//! re-checks the count it reports (a later commit may have revived the chunk).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{encode_u64, get_u64};
use super::kv::{KvRead, KvWrite};
use super::types::{ChunkRef, Hash32};
use super::{keys, ModelError};

/// Net reference-count changes of one command, applied by [`apply_ref_delta`].
#[derive(Debug, Default)]
pub(crate) struct RefDelta(BTreeMap<Hash32, i64>);

impl RefDelta {
    pub fn add(&mut self, chunks: &[ChunkRef]) {
        for chunk in chunks {
            *self.0.entry(chunk.hash).or_default() += 1;
        }
    }

    pub fn release(&mut self, chunks: &[ChunkRef]) {
        for chunk in chunks {
            *self.0.entry(chunk.hash).or_default() -= 1;
        }
    }
}

pub(crate) fn apply_ref_delta(kv: &mut dyn KvWrite, delta: RefDelta) -> Result<(), ModelError> {
    for (hash, change) in delta.0 {
        if change == 0 {
            continue;
        }
        let key = keys::chunk_ref(&hash);
        let current = get_u64(kv, &key, "chunk refcount")?;
        let updated = i128::from(current) + i128::from(change);
        if updated < 0 {
            return Err(ModelError::Corrupt(format!("refcount of chunk {} would drop below zero", hex::encode(hash))));
        }
        if updated == 0 {
            kv.delete(&key);
            append_zero_ref(kv, &hash)?;
        } else {
            let updated = u64::try_from(updated).map_err(|_| ModelError::Corrupt("refcount overflow".into()))?;
            kv.put(&key, &encode_u64(updated));
        }
    }
    Ok(())
}

fn append_zero_ref(kv: &mut dyn KvWrite, hash: &Hash32) -> Result<(), ModelError> {
    let seq_key = keys::meta(keys::ZERO_REF_SEQ);
    let seq = get_u64(kv, &seq_key, "zero-ref sequence")? + 1;
    kv.put(&keys::zero_ref(seq), hash);
    kv.put(&seq_key, &encode_u64(seq));
    Ok(())
}

pub fn refcount(kv: &dyn KvRead, hash: &Hash32) -> Result<u64, ModelError> {
    get_u64(kv, &keys::chunk_ref(hash), "chunk refcount")
}

/// Current counts of `hashes`, in the order asked.
pub fn refcounts(kv: &dyn KvRead, hashes: &[Hash32]) -> Result<Vec<(Hash32, u64)>, ModelError> {
    hashes.iter().map(|h| Ok((*h, refcount(kv, h)?))).collect()
}

/// One page of the shard's referenced chunks, in hash order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRefPage {
    /// (hash, reference count), every count ≥ 1.
    pub items: Vec<(Hash32, u64)>,
    pub has_more: bool,
}

/// Referenced chunks with a hash above `after`, at most `limit`: what repair and
/// rebalance walk to find every chunk the shard needs.
pub fn chunk_refs_after(kv: &dyn KvRead, after: Option<&Hash32>, limit: usize) -> Result<ChunkRefPage, ModelError> {
    let (start, end) = keys::chunk_refs_after(after);
    let mut rows = kv.scan(&start, &end, limit.saturating_add(1))?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let items = rows
        .into_iter()
        .map(|(key, value)| {
            let hash: Hash32 = key
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ModelError::Corrupt("chunk-ref key".into()))?;
            let count = super::codec::decode_u64(&value, "chunk refcount")?;
            Ok((hash, count))
        })
        .collect::<Result<_, ModelError>>()?;
    Ok(ChunkRefPage { items, has_more })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroRef {
    pub cursor: u64,
    pub hash: Hash32,
    /// The count now: non-zero if the chunk was referenced again after it dropped.
    pub refcount_now: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroRefPage {
    pub items: Vec<ZeroRef>,
    pub next_cursor: u64,
    pub has_more: bool,
}

/// Chunks whose count dropped to zero after `after_cursor`, oldest first.
pub fn zero_refs_after(kv: &dyn KvRead, after_cursor: u64, limit: usize) -> Result<ZeroRefPage, ModelError> {
    let (start, end) = keys::zero_ref_from(after_cursor.saturating_add(1));
    let mut rows = kv.scan(&start, &end, limit.saturating_add(1))?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let mut items = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        let cursor = key
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| ModelError::Corrupt("zero-ref key".into()))?;
        let hash: Hash32 = value.as_slice().try_into().map_err(|_| ModelError::Corrupt("zero-ref hash".into()))?;
        items.push(ZeroRef { cursor, hash, refcount_now: refcount(kv, &hash)? });
    }
    let next_cursor = items.last().map_or(after_cursor, |z| z.cursor);
    Ok(ZeroRefPage { items, next_cursor, has_more })
}

/// Removes zero-ref log entries up to and including `through_cursor` (GC has handled
/// them), at most `batch`; returns (removed, more left).
pub(crate) fn trim_zero_ref_log(
    kv: &mut dyn KvWrite,
    through_cursor: u64,
    batch: usize,
) -> Result<(u64, bool), ModelError> {
    let start = keys::zero_ref(0);
    let end = keys::zero_ref(through_cursor.saturating_add(1));
    let rows = kv.scan(&start, &end, batch.saturating_add(1))?;
    let more = rows.len() > batch;
    let mut removed = 0;
    for (key, _) in rows.into_iter().take(batch) {
        kv.delete(&key);
        removed += 1;
    }
    Ok((removed, more))
}
