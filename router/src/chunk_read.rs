//! Reading one chunk back from any k of its k+m fragments.
//!
//! Fetches start with k fragments on the chunk's placement nodes (data
//! fragments first, nodes that recently failed last). Each failed fetch starts
//! the next candidate at once, and every [`HEDGE_AFTER`] without enough
//! fragments one more is started, so a node that hangs instead of failing (a
//! frozen process, a dead link) costs a read a hedge delay, not a timeout.
//! When the placement nodes cannot supply k fragments, every block node is
//! asked which fragments it holds (placement may have changed since the chunk
//! was written, or a write went to a fallback node). The rebuilt chunk must
//! hash to its address; wrong bytes are never returned. With storage tiers,
//! each tier's copy is read on its own (fragments of different tiers' codes
//! never mix).

use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tessera_block::FragmentKey;
use tessera_proto::ChunkHash;

use tessera_block::client::FragmentCode;

use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::placement::BlockNodeInfo;
use crate::tiering::{decode_payload, directory, Tier};

/// Time without enough fragments after which one more fetch is started.
pub const HEDGE_AFTER: Duration = Duration::from_millis(700);

/// Who a read is for: a client's read counts as a read of the chunk on the
/// block nodes (storage tiering keeps read chunks hot); a tiering move's does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFor {
    Client,
    Background,
}

/// Which fragments belong to the copy being read: coded with the tier's k+m, and
/// all of one payload length (the chunk's size, when known and uncompressed).
/// A fragment of another copy (another tier's code, or a chunk written before
/// its node joined a colder tier) is never mixed in.
struct Accept {
    data_shards: u8,
    parity_shards: u8,
    chunk_len: Option<u64>,
}

impl Accept {
    fn admits(&mut self, code: &FragmentCode) -> bool {
        if code.data_shards != self.data_shards || code.parity_shards != self.parity_shards {
            return false;
        }
        match self.chunk_len {
            Some(len) => len == code.chunk_len,
            None => {
                self.chunk_len = Some(code.chunk_len);
                true
            }
        }
    }
}

/// A fragment as fetched: its coding header and bytes.
#[derive(Clone)]
struct Fetched {
    code: FragmentCode,
    data: Vec<u8>,
}

async fn fetch_fragment(dp: &DataPath, node: &BlockNodeInfo, key: FragmentKey, why: ReadFor) -> Option<Fetched> {
    let client = dp.view.pool.client(node).ok()?;
    let result = match why {
        ReadFor::Client => client.get_fragment(&key).await,
        ReadFor::Background => client.get_fragment_background(&key).await,
    };
    dp.view.pool.note_result(node, &result);
    match result {
        Ok((code, data)) => Some(Fetched { code, data }),
        Err(e) => {
            tracing::debug!(node = %node.id, chunk = %key.chunk, index = key.index, error = %e.message(), "fragment unavailable");
            None
        }
    }
}

/// Fetches from `candidates` (node, fragment index) in order until `k` slots
/// are filled, hedging as described in the module docs.
async fn fetch_hedged(
    dp: &DataPath,
    hash: ChunkHash,
    candidates: &[(BlockNodeInfo, u8)],
    slots: &mut [Option<Fetched>],
    k: usize,
    why: ReadFor,
    accept: &mut Accept,
) {
    let mut have = slots.iter().filter(|s| s.is_some()).count();
    let mut next = 0;
    let mut pending = FuturesUnordered::new();
    let launch = |i: usize| {
        let (node, index) = &candidates[i];
        async move { (*index, fetch_fragment(dp, node, FragmentKey::new(hash, *index), why).await) }
    };
    while next < candidates.len() && pending.len() + have < k {
        pending.push(launch(next));
        next += 1;
    }
    let mut hedge = tokio::time::interval_at(tokio::time::Instant::now() + HEDGE_AFTER, HEDGE_AFTER);
    while have < k && !pending.is_empty() {
        tokio::select! {
            Some((index, fragment)) = pending.next() => {
                match fragment {
                    Some(f) if slots[index as usize].is_none() && accept.admits(&f.code) => {
                        slots[index as usize] = Some(f);
                        have += 1;
                    }
                    Some(_) if slots[index as usize].is_some() => {}
                    // Missing, or of another copy: try the next candidate.
                    Some(_) | None if next < candidates.len() => {
                        pending.push(launch(next));
                        next += 1;
                    }
                    Some(_) | None => {}
                }
            }
            _ = hedge.tick(), if next < candidates.len() => {
                pending.push(launch(next));
                next += 1;
            }
        }
    }
}

/// Rebuilds one chunk and checks its hash.
///
/// The first tier is tried first and needs no lookup, so reads of hot data cost
/// what they did before tiering existed. A chunk it cannot supply is looked up
/// in the location records and read from the tier they name, then from every
/// other tier (a record can be a move behind); a chunk served from a colder
/// tier is queued for promotion.
pub async fn read_chunk(dp: &DataPath, hash: ChunkHash, size: u64) -> Result<Bytes, RouterError> {
    let tiers = dp.tiers();
    let mut failure = match read_from_tier(dp, tiers.hot(), hash, Some(size), ReadFor::Client).await {
        Ok(data) => return Ok(finish(dp, data, size)),
        Err(e) => e,
    };
    if tiers.tiers().len() > 1 {
        let recorded = match directory::lookup(dp, &[hash]).await {
            Ok(records) => records.into_iter().next().flatten().and_then(|r| tiers.by_name(&r.tier)).map(|t| t.index),
            Err(e) => {
                tracing::debug!(chunk = %hash, error = %e, "chunk location not read; trying every tier");
                None
            }
        };
        let mut order: Vec<usize> = recorded.into_iter().collect();
        order.extend((1..tiers.tiers().len()).filter(|i| Some(*i) != recorded));
        for index in order.into_iter().filter(|&i| i != 0) {
            match read_from_tier(dp, &tiers.tiers()[index], hash, Some(size), ReadFor::Client).await {
                Ok(data) => {
                    dp.counters.colder_tier_reads.inc();
                    dp.request_promotion(hash);
                    return Ok(finish(dp, data, size));
                }
                // The first tier's answer says most about a chunk that is nowhere.
                Err(RouterError::Unavailable(_)) => {}
                Err(e) => failure = e,
            }
        }
    }
    Err(failure)
}

fn finish(dp: &DataPath, data: Vec<u8>, size: u64) -> Bytes {
    dp.counters.bytes_downloaded.inc_by(size);
    Bytes::from(data)
}

/// Reads the chunk from the copy in `tier`: k fragments from its placement
/// nodes, hedged, then from any other node of the tier that holds some (for the
/// first tier, any node at all: chunks written before a node joined a colder
/// tier keep fragments there). `size`, when known, is the chunk's length.
/// `Unavailable` when the tier does not hold k fragments.
pub async fn read_from_tier(
    dp: &DataPath,
    tier: &Tier,
    hash: ChunkHash,
    size: Option<u64>,
    why: ReadFor,
) -> Result<Vec<u8>, RouterError> {
    let k = tier.data_shards();
    let n = tier.fragments_per_chunk();
    let mut accept = Accept {
        data_shards: k as u8,
        parity_shards: (n - k) as u8,
        chunk_len: size.filter(|_| tier.compression == tessera_meta::tiering::Compression::None),
    };
    let nodes = tier.nodes_for(&hash)?;
    let mut slots: Vec<Option<Fetched>> = vec![None; n];
    let mut candidates: Vec<(BlockNodeInfo, u8)> =
        nodes.iter().enumerate().map(|(i, node)| (node.clone(), i as u8)).collect();
    // Healthy nodes first, and among them data fragments (no decoding needed).
    candidates.sort_by_key(|(node, index)| (dp.view.pool.is_suspect(node), usize::from(*index) >= k, *index));
    fetch_hedged(dp, hash, &candidates, &mut slots, k, why, &mut accept).await;
    let mut have = slots.iter().filter(|s| s.is_some()).count();
    if have < k {
        // Placement may have moved since the chunk was written: ask the tier's other nodes.
        let everyone = dp.view.placement();
        let asked = if tier.index == 0 { everyone.block_nodes() } else { tier.placement.block_nodes() };
        let asks = asked.iter().map(|node| async move {
            let client = dp.view.pool.client(node).ok()?;
            let held = client.batch_has(&[hash]).await;
            dp.view.pool.note_result(node, &held);
            held.ok().and_then(|h| h.into_iter().next()).map(|indices| (node.clone(), indices))
        });
        let mut elsewhere = Vec::new();
        for (node, indices) in futures::future::join_all(asks).await.into_iter().flatten() {
            for index in indices {
                let placed_here = nodes.get(usize::from(index)).is_some_and(|p| p.id == node.id);
                if usize::from(index) < n && slots[usize::from(index)].is_none() && !placed_here {
                    elsewhere.push((node.clone(), index));
                }
            }
        }
        fetch_hedged(dp, hash, &elsewhere, &mut slots, k, why, &mut accept).await;
        have = slots.iter().filter(|s| s.is_some()).count();
    }
    if have < k {
        return Err(RouterError::Unavailable(format!(
            "chunk {hash}: only {have} of the {k} fragments needed are reachable{}",
            if dp.tiers().configured() { format!(" in tier {}", tier.name) } else { String::new() }
        )));
    }
    let degraded = slots[..k].iter().any(Option::is_none);
    // The coded payload's length travels with every fragment (on a compressing
    // tier it is the compressed length); the hash check below covers it.
    let payload_len = slots
        .iter()
        .flatten()
        .next()
        .and_then(|f| usize::try_from(f.code.chunk_len).ok())
        .ok_or_else(|| RouterError::Integrity(format!("chunk {hash}: fragment without a length")))?;
    let code = tier.code.clone();
    let fragments: Vec<Option<Vec<u8>>> = slots.into_iter().map(|s| s.map(|f| f.data)).collect();
    let (compression, tier_name) = (tier.compression, tier.name.clone());
    let data = tokio::task::spawn_blocking(move || {
        let payload = code.decode(fragments, payload_len).map_err(|e| RouterError::Integrity(e.to_string()))?;
        decode_payload(compression, &tier_name, hash, payload)
    })
    .await
    .map_err(|e| RouterError::Unavailable(format!("decoder task failed: {e}")))??;
    if degraded {
        dp.counters.degraded_reads.inc();
    }
    Ok(data)
}
