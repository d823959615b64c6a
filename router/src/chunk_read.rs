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
//! hash to its address; wrong bytes are never returned.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tessera_block::FragmentKey;
use tessera_proto::ChunkHash;

use crate::codec::hash::hash_chunk;
use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::placement::BlockNodeInfo;

/// Time without enough fragments after which one more fetch is started.
pub const HEDGE_AFTER: Duration = Duration::from_millis(700);

async fn fetch_fragment(dp: &DataPath, node: &BlockNodeInfo, key: FragmentKey) -> Option<Vec<u8>> {
    let client = dp.view.pool.client(node).ok()?;
    let result = client.get_fragment(&key).await;
    dp.view.pool.note_result(node, &result);
    match result {
        Ok((_, data)) => Some(data),
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
    slots: &mut [Option<Vec<u8>>],
    k: usize,
) {
    let mut have = slots.iter().filter(|s| s.is_some()).count();
    let mut next = 0;
    let mut pending = FuturesUnordered::new();
    let launch = |i: usize| {
        let (node, index) = &candidates[i];
        async move { (*index, fetch_fragment(dp, node, FragmentKey::new(hash, *index)).await) }
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
                    Some(f) if slots[index as usize].is_none() => {
                        slots[index as usize] = Some(f);
                        have += 1;
                    }
                    Some(_) => {}
                    None if next < candidates.len() => {
                        pending.push(launch(next));
                        next += 1;
                    }
                    None => {}
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
pub async fn read_chunk(dp: &DataPath, hash: ChunkHash, size: u64) -> Result<Bytes, RouterError> {
    let k = dp.config.data_shards;
    let n = dp.fragments_per_chunk();
    let placement = dp.view.placement();
    let nodes = dp.chunk_nodes(&hash)?;
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
    let mut candidates: Vec<(BlockNodeInfo, u8)> =
        nodes.iter().enumerate().map(|(i, node)| (node.clone(), i as u8)).collect();
    // Healthy nodes first, and among them data fragments (no decoding needed).
    candidates.sort_by_key(|(node, index)| (dp.view.pool.is_suspect(node), usize::from(*index) >= k, *index));
    fetch_hedged(dp, hash, &candidates, &mut slots, k).await;
    let mut have = slots.iter().filter(|s| s.is_some()).count();
    if have < k {
        // Placement may have moved since the chunk was written: ask everyone.
        let asks = placement.block_nodes().iter().map(|node| async move {
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
        fetch_hedged(dp, hash, &elsewhere, &mut slots, k).await;
        have = slots.iter().filter(|s| s.is_some()).count();
    }
    if have < k {
        return Err(RouterError::Unavailable(format!(
            "chunk {hash}: only {have} of the {k} fragments needed are reachable"
        )));
    }
    let degraded = slots[..k].iter().any(Option::is_none);
    let code = dp.code.clone();
    let chunk_len = usize::try_from(size).map_err(|_| RouterError::Integrity("chunk too large".into()))?;
    let data = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, RouterError> {
        let data = code.decode(slots, chunk_len).map_err(|e| RouterError::Integrity(e.to_string()))?;
        if hash_chunk(&data) != hash {
            return Err(RouterError::Integrity(format!("chunk {hash} does not match its hash")));
        }
        Ok(data)
    })
    .await
    .map_err(|e| RouterError::Unavailable(format!("decoder task failed: {e}")))??;
    if degraded {
        dp.counters.degraded_reads.inc();
    }
    dp.counters.bytes_downloaded.inc_by(size);
    Ok(Bytes::from(data))
}
