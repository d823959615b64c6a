//! One chunk's convergence to its placement: find what is missing, copy or
//! rebuild it, and (rebalance) delete copies outside the placement afterwards.
//! All of it happens inside one storage tier: the tier the chunk's location
//! record names, or the one holding a readable copy when the record's tier does
//! not (see [`choose_tier`]).

use bytes::Bytes;
use tessera_block::client::FragmentCode;
use tessera_block::FragmentKey;
use tessera_proto::ChunkHash;

use super::{CorruptSet, Mode};
use crate::datapath::DataPath;
use crate::placement::{BlockNodeInfo, Placement};
use crate::tiering::{decode_payload, Tier, TierSet};

/// Which fragments every block node holds, for one page of chunks.
pub(crate) struct Holdings {
    /// Per block node (placement order): `None` when the node did not answer,
    /// else per chunk row the fragment indices held.
    by_node: Vec<(String, Option<Vec<Vec<u8>>>)>,
}

impl Holdings {
    pub async fn fetch(dp: &DataPath, placement: &Placement, hashes: &[ChunkHash]) -> Self {
        let pool = &dp.view.pool;
        let asks = placement.block_nodes().iter().map(|node| async move {
            let client = pool.client(node).ok()?;
            let result = client.batch_has(hashes).await;
            pool.note_result(node, &result);
            match result {
                Ok(held) => Some(held),
                Err(e) => {
                    tracing::debug!(node = %node.id, error = %e.message(), "block node did not answer a presence check");
                    None
                }
            }
        });
        let answers = futures::future::join_all(asks).await;
        Self { by_node: placement.block_nodes().iter().map(|n| n.id.clone()).zip(answers).collect() }
    }

    pub fn unreachable(&self) -> impl Iterator<Item = &str> {
        self.by_node.iter().filter(|(_, h)| h.is_none()).map(|(id, _)| id.as_str())
    }

    /// Distinct fragment indices of row `row` held by the nodes that answered.
    pub fn distinct_indices(&self, row: usize) -> usize {
        let mut seen = std::collections::BTreeSet::new();
        for (_, held) in &self.by_node {
            if let Some(idx) = held.as_ref().and_then(|h| h.get(row)) {
                seen.extend(idx.iter().copied());
            }
        }
        seen.len()
    }

    /// (node id, fragment indices) of every node that answered and holds some of row `row`.
    pub fn held(&self, row: usize) -> impl Iterator<Item = (&str, &[u8])> {
        self.by_node.iter().filter_map(move |(id, held)| {
            let indices = held.as_ref()?.get(row)?;
            (!indices.is_empty()).then_some((id.as_str(), indices.as_slice()))
        })
    }

    /// Whether the nodes of `tier` hold at least k distinct fragments of row `row`.
    pub fn readable_in(&self, tier: &Tier, row: usize) -> bool {
        let indices: std::collections::BTreeSet<u8> = self
            .held(row)
            .filter(|(node, _)| tier.has_node(node))
            .flat_map(|(_, indices)| indices.iter().copied())
            .filter(|&i| usize::from(i) < tier.fragments_per_chunk())
            .collect();
        indices.len() >= tier.data_shards()
    }

    /// `None` when the node did not answer; else whether it holds `index` of row `row`.
    fn holds(&self, node_id: &str, row: usize, index: u8) -> Option<bool> {
        let (_, held) = self.by_node.iter().find(|(id, _)| id == node_id)?;
        held.as_ref().map(|h| h.get(row).is_some_and(|idx| idx.contains(&index)))
    }

    /// Reachable nodes holding `index` of row `row`.
    fn holders(&self, row: usize, index: u8) -> impl Iterator<Item = &str> {
        self.by_node
            .iter()
            .filter(move |(_, h)| h.as_ref().is_some_and(|h| h.get(row).is_some_and(|idx| idx.contains(&index))))
            .map(|(id, _)| id.as_str())
    }
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Healthy {
        removed: u64,
    },
    Repaired {
        copied: u64,
        rebuilt: u64,
        removed: u64,
        bytes: u64,
    },
    /// What could be fixed was; a placement node is down.
    WaitingForNode {
        copied: u64,
        rebuilt: u64,
        bytes: u64,
    },
    Absent,
    Lost {
        hash: ChunkHash,
        available: usize,
    },
    Failed(String),
}

pub(crate) struct ChunkJob<'a> {
    pub dp: &'a DataPath,
    /// The tier whose copy this job converges (its nodes, placement and code);
    /// fragments in other tiers are neither used nor removed.
    pub tier: &'a Tier,
    /// Every block node: the first tier's copy may have fragments on any node
    /// (written before the node joined a colder tier).
    pub everyone: &'a Placement,
    /// The chunk has no location record (it was never moved between tiers), so
    /// its fragments on other tiers' nodes are strays of the first tier's copy.
    pub never_moved: bool,
    pub holdings: &'a Holdings,
    pub corrupt: &'a CorruptSet,
    pub row: usize,
    pub hash: ChunkHash,
    pub mode: Mode,
}

impl ChunkJob<'_> {
    /// A node this job may take fragments from.
    fn node(&self, id: &str) -> Option<&BlockNodeInfo> {
        if self.tier.index == 0 {
            self.everyone.block_nodes().iter().find(|n| n.id == id)
        } else {
            self.tier.node(id)
        }
    }

    fn is_corrupt(&self, node_id: &str, index: u8) -> bool {
        self.corrupt.contains(&(node_id.to_owned(), FragmentKey::new(self.hash, index)))
    }

    /// Healthy copies of fragment `index`, placement node first.
    fn sources(&self, index: u8, target: &str) -> Vec<&BlockNodeInfo> {
        let mut ids: Vec<&str> =
            self.holdings.holders(self.row, index).filter(|id| !self.is_corrupt(id, index)).collect();
        ids.sort_by_key(|id| *id != target);
        ids.into_iter().filter_map(|id| self.node(id)).collect()
    }

    async fn fetch(&self, node: &BlockNodeInfo, index: u8) -> Option<(FragmentCode, Vec<u8>)> {
        let client = self.dp.view.pool.client(node).ok()?;
        match client.get_fragment_background(&FragmentKey::new(self.hash, index)).await {
            // A fragment of another tier's copy under the same key is not a source.
            Ok((code, _))
                if usize::from(code.data_shards) != self.tier.data_shards()
                    || usize::from(code.data_shards) + usize::from(code.parity_shards)
                        != self.tier.fragments_per_chunk() =>
            {
                tracing::debug!(node = %node.id, chunk = %self.hash, index, "repair source is of another copy");
                None
            }
            Ok(found) => Some(found),
            Err(e) => {
                tracing::debug!(node = %node.id, chunk = %self.hash, index, error = %e.message(), "repair source failed");
                None
            }
        }
    }

    async fn put(&self, node: &BlockNodeInfo, index: u8, code: FragmentCode, data: Bytes) -> Result<(), String> {
        let client = self.dp.view.pool.client(node).map_err(|e| e.to_string())?;
        client.put_fragment(&FragmentKey::new(self.hash, index), code, data).await.map_err(|e| {
            format!("chunk {} fragment {index}: block node {} refused the copy: {}", self.hash, node.id, e.message())
        })?;
        self.dp.view.pool.note_stored(node, &self.hash);
        Ok(())
    }

    pub async fn run(self) -> Outcome {
        let n = self.tier.fragments_per_chunk();
        let k = self.tier.data_shards();
        let targets: Vec<BlockNodeInfo> = match self.tier.nodes_for(&self.hash) {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut missing = Vec::new();
        let mut waiting = false;
        for (i, target) in targets.iter().enumerate() {
            let index = i as u8;
            match self.holdings.holds(&target.id, self.row, index) {
                None => waiting = true,
                Some(true) if !self.is_corrupt(&target.id, index) => {}
                Some(_) => missing.push(index),
            }
        }
        let available: Vec<u8> = (0..n as u8).filter(|&i| !self.sources(i, "").is_empty()).collect();
        if available.is_empty() {
            return Outcome::Absent;
        }
        if missing.is_empty() && !waiting {
            return Outcome::Healthy { removed: self.remove_strays(&targets).await };
        }
        if available.len() < k {
            return Outcome::Lost { hash: self.hash, available: available.len() };
        }
        let (mut copied, mut rebuilt, mut bytes) = (0u64, 0u64, 0u64);
        let mut to_rebuild = Vec::new();
        // A copy of the very fragment elsewhere is cheaper than decoding.
        for &index in &missing {
            let target = &targets[index as usize];
            let mut done = false;
            for source in self.sources(index, &target.id).into_iter().filter(|s| s.id != target.id) {
                let Some((code, data)) = self.fetch(source, index).await else { continue };
                let len = data.len() as u64;
                if self.put(target, index, code, Bytes::from(data)).await.is_ok() {
                    copied += 1;
                    bytes += len;
                    done = true;
                    break;
                }
            }
            if !done {
                to_rebuild.push(index);
            }
        }
        if !to_rebuild.is_empty() {
            match self.rebuild(&targets, &to_rebuild).await {
                Ok((count, written)) => {
                    rebuilt += count;
                    bytes += written;
                }
                Err(message) => return Outcome::Failed(message),
            }
        }
        if waiting {
            return Outcome::WaitingForNode { copied, rebuilt, bytes };
        }
        let removed = self.remove_strays(&targets).await;
        Outcome::Repaired { copied, rebuilt, removed, bytes }
    }

    /// Decodes the chunk from any k healthy fragments, checks its hash, and writes
    /// fragments `indices` to their placement nodes.
    async fn rebuild(&self, targets: &[BlockNodeInfo], indices: &[u8]) -> Result<(u64, u64), String> {
        let n = self.tier.fragments_per_chunk();
        let k = self.tier.data_shards();
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut code = None;
        let mut have = 0;
        for index in 0..n as u8 {
            if have >= k {
                break;
            }
            if indices.contains(&index) {
                continue;
            }
            for source in self.sources(index, &targets[index as usize].id) {
                if let Some((c, data)) = self.fetch(source, index).await {
                    if usize::from(c.data_shards) != k || usize::from(c.data_shards) + usize::from(c.parity_shards) != n
                    {
                        return Err(format!(
                            "chunk {}: fragment {index} is coded {}+{}, tier {} uses {k}+{}",
                            self.hash,
                            c.data_shards,
                            c.parity_shards,
                            self.tier.name,
                            n - k
                        ));
                    }
                    code = Some(c);
                    slots[index as usize] = Some(data);
                    have += 1;
                    break;
                }
            }
        }
        let Some(code) = code.filter(|_| have >= k) else {
            return Err(format!("chunk {}: only {have} of the {k} fragments needed could be read", self.hash));
        };
        let erasure = self.tier.code.clone();
        let (compression, tier_name) = (self.tier.compression, self.tier.name.clone());
        let hash = self.hash;
        let chunk_len =
            usize::try_from(code.chunk_len).map_err(|_| "chunk length does not fit in memory".to_owned())?;
        let fragments = tokio::task::spawn_blocking(move || -> Result<Vec<Option<Vec<u8>>>, String> {
            let mut slots = slots;
            erasure.rebuild_all(&mut slots).map_err(|e| format!("chunk {hash}: {e}"))?;
            // Decoding the data fragments must give back the content address;
            // anything else means a source was wrong and nothing is written.
            let mut data: Vec<u8> = slots[..erasure.data_shards()].iter().flatten().flatten().copied().collect();
            data.truncate(chunk_len);
            if decode_payload(compression, &tier_name, hash, data).is_err() {
                return Err(format!("chunk {hash}: rebuilt data does not match its hash; nothing written"));
            }
            Ok(slots)
        })
        .await
        .map_err(|e| format!("rebuild task failed: {e}"))??;
        let (mut count, mut bytes) = (0u64, 0u64);
        for &index in indices {
            let Some(Some(fragment)) = fragments.get(index as usize) else { continue };
            let target = &targets[index as usize];
            if self.holdings.holds(&target.id, self.row, index).is_none() {
                continue; // node down: left for a later pass
            }
            bytes += fragment.len() as u64;
            self.put(target, index, code, Bytes::from(fragment.clone())).await?;
            count += 1;
        }
        Ok((count, bytes))
    }

    /// Rebalance only: deletes copies held outside the placement. Called once every
    /// placement node holds its fragment.
    async fn remove_strays(&self, targets: &[BlockNodeInfo]) -> u64 {
        if self.mode != Mode::Rebalance {
            return 0;
        }
        let mut removed = 0;
        let cross_tier = self.tier.index == 0 && self.never_moved;
        for node in self.everyone.block_nodes() {
            let own = self.tier.has_node(&node.id);
            if !own && !cross_tier {
                continue; // another tier's copy: the tiering job's business
            }
            let strays: Vec<FragmentKey> = (0..targets.len() as u8)
                .filter(|&i| targets[i as usize].id != node.id)
                .filter(|&i| self.holdings.holds(&node.id, self.row, i) == Some(true))
                .map(|i| FragmentKey::new(self.hash, i))
                .collect();
            if strays.is_empty() {
                continue;
            }
            let Ok(client) = self.dp.view.pool.client(node) else { continue };
            // On another tier's node, spare anything stored recently: the new copy
            // of a move still in flight (its record not committed yet).
            let deleted =
                if own { client.delete(&strays).await } else { client.delete_unstored(&strays, MOVE_IN_FLIGHT).await };
            match deleted {
                Ok(r) => removed += r.deleted,
                Err(e) => {
                    tracing::warn!(node = %node.id, chunk = %self.hash, error = %e.message(), "stray copy not deleted")
                }
            }
        }
        removed
    }
}

/// Longer than a tiering move's copy can be in flight (twice the largest move
/// deadline, plus the leftover margin): fragments on another tier's node
/// stored more recently may belong to a move not committed yet.
pub const MOVE_IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(900);

/// The tier whose copy of row `row` repair converges: the first tier for a
/// chunk without a location record; else the one its record names (`named`),
/// unless that tier holds fewer than k fragments while another holds at least
/// its k — a record a move behind — in which case the first such tier. Copies
/// in other tiers are the tiering job's to remove, never repair's.
pub(crate) fn choose_tier<'t>(tiers: &'t TierSet, named: Option<usize>, holdings: &Holdings, row: usize) -> &'t Tier {
    // Never moved: the first tier's copy, wherever its fragments are.
    let Some(named) = named else { return tiers.hot() };
    let named = &tiers.tiers()[named.min(tiers.tiers().len() - 1)];
    if holdings.readable_in(named, row) {
        return named;
    }
    tiers.tiers().iter().find(|t| holdings.readable_in(t, row)).unwrap_or(named)
}
