//! `TierSet`: the tiers of one placement snapshot — which block nodes form each
//! tier, where a chunk's fragments go inside it, and its erasure code and
//! compression.
//!
//! Without a tiering config the cluster has one tier, `default`, made of every
//! block node and coded with the data path's code: exactly the layout the
//! cluster had before tiering existed. With one, each block node belongs to the
//! first tier whose label it carries (nodes without any tier label belong to the
//! first tier), and each tier places fragments among its own nodes only, so the
//! fragments of one copy of a chunk never mix tiers.

use std::sync::Arc;
use std::time::Duration;

use tessera_meta::tiering::{Compression, TieringConfig};
use tessera_proto::ChunkHash;

use crate::codec::hash::hash_chunk;
use crate::codec::{ErasureCode, ErasureError};
use crate::error::RouterError;
use crate::placement::{BlockNodeInfo, Placement};

/// One tier of a [`TierSet`].
#[derive(Debug)]
pub struct Tier {
    /// Position in the set: 0 is the hottest (where new chunks are written).
    pub index: usize,
    pub name: String,
    pub label: String,
    /// Placement among this tier's nodes only.
    pub placement: Arc<Placement>,
    pub code: Arc<ErasureCode>,
    pub compression: Compression,
    /// Chunks not read for this long move to the next tier (`None` on the coldest).
    pub demote_after: Option<Duration>,
}

impl Tier {
    pub fn data_shards(&self) -> usize {
        self.code.data_shards()
    }

    pub fn fragments_per_chunk(&self) -> usize {
        self.code.total_shards()
    }

    /// The `k+m` nodes of this tier holding fragments `0..k+m` of `hash`.
    pub fn nodes_for(&self, hash: &ChunkHash) -> Result<Vec<BlockNodeInfo>, RouterError> {
        self.placement
            .nodes_for_chunk(hash, self.fragments_per_chunk())
            .map(|n| n.into_iter().cloned().collect())
            .map_err(|e| RouterError::Unavailable(format!("tier {}: {e}", self.name)))
    }

    /// Whether `node_id` is one of this tier's nodes.
    pub fn has_node(&self, node_id: &str) -> bool {
        self.placement.block_nodes().iter().any(|n| n.id == node_id)
    }

    pub fn node(&self, node_id: &str) -> Option<&BlockNodeInfo> {
        self.placement.block_nodes().iter().find(|n| n.id == node_id)
    }

    /// The bytes this tier erasure-codes for `chunk`: the chunk itself, or its
    /// zstd frame on a compressing tier.
    pub fn encode_payload(&self, chunk: &[u8]) -> Result<Vec<u8>, RouterError> {
        encode_payload(self.compression, &self.name, chunk)
    }

    /// The chunk back from a decoded payload, checked against its address.
    pub fn decode_payload(&self, hash: ChunkHash, payload: Vec<u8>) -> Result<Vec<u8>, RouterError> {
        decode_payload(self.compression, &self.name, hash, payload)
    }
}

/// The bytes a tier with `compression` erasure-codes for `chunk`.
pub fn encode_payload(compression: Compression, tier_name: &str, chunk: &[u8]) -> Result<Vec<u8>, RouterError> {
    match compression {
        Compression::None => Ok(chunk.to_vec()),
        Compression::Zstd => crate::codec::compress::compress(chunk)
            .map_err(|e| RouterError::Integrity(format!("tier {tier_name}: compression failed: {e}"))),
    }
}

/// The chunk back from a payload decoded from tier `tier_name`, checked against
/// its address: wrong bytes are an integrity error, never data.
pub fn decode_payload(
    compression: Compression,
    tier_name: &str,
    hash: ChunkHash,
    payload: Vec<u8>,
) -> Result<Vec<u8>, RouterError> {
    let chunk = match compression {
        Compression::None => payload,
        Compression::Zstd => crate::codec::compress::decompress(&payload)
            .map_err(|e| RouterError::Integrity(format!("chunk {hash}: tier {tier_name}: {e}")))?,
    };
    if hash_chunk(&chunk) != hash {
        return Err(RouterError::Integrity(format!("chunk {hash} read from tier {tier_name} does not match its hash")));
    }
    Ok(chunk)
}

/// The tiers of one placement snapshot, hottest first.
#[derive(Debug)]
pub struct TierSet {
    tiers: Vec<Tier>,
    configured: bool,
}

impl TierSet {
    /// Builds the tiers of `placement`; `hot_code` is the data path's code, used by
    /// the first tier.
    pub fn build(placement: &Arc<Placement>, hot_code: Arc<ErasureCode>) -> Result<Self, ErasureError> {
        match placement.tiering() {
            Some(config) => Self::from_config(placement, config, hot_code),
            None => Ok(Self::single(placement, hot_code)),
        }
    }

    /// One `default` tier of every node of `placement`, ignoring any tiering config.
    pub fn single(placement: &Arc<Placement>, hot_code: Arc<ErasureCode>) -> Self {
        let tier = Tier {
            index: 0,
            name: "default".into(),
            label: String::new(),
            placement: placement.clone(),
            code: hot_code,
            compression: Compression::None,
            demote_after: None,
        };
        Self { tiers: vec![tier], configured: false }
    }

    fn from_config(
        placement: &Arc<Placement>,
        config: &TieringConfig,
        hot_code: Arc<ErasureCode>,
    ) -> Result<Self, ErasureError> {
        let mut members: Vec<Vec<BlockNodeInfo>> = vec![Vec::new(); config.tiers.len()];
        for node in placement.block_nodes() {
            members[config.tier_of(&node.labels)].push(node.clone());
        }
        let mut tiers = Vec::with_capacity(config.tiers.len());
        for (index, (spec, nodes)) in config.tiers.iter().zip(members).enumerate() {
            let code = match (index, spec.data_shards, spec.parity_shards) {
                (0, _, _) => hot_code.clone(),
                (_, Some(k), Some(m)) => Arc::new(ErasureCode::new(usize::from(k), usize::from(m))?),
                // A validated config always has both; a missing one falls back to the hot code.
                _ => hot_code.clone(),
            };
            tiers.push(Tier {
                index,
                name: spec.name.clone(),
                label: spec.label.clone(),
                placement: Arc::new(Placement::new(placement.epoch(), nodes, vec![])),
                code,
                compression: if index == 0 { Compression::None } else { spec.compression },
                demote_after: spec.demote_after,
            });
        }
        Ok(Self { tiers, configured: true })
    }

    /// Whether a tiering config is in force (else there is one `default` tier).
    pub fn configured(&self) -> bool {
        self.configured
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The tier new chunks are written to.
    pub fn hot(&self) -> &Tier {
        &self.tiers[0]
    }

    pub fn by_name(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// The tier `node_id` belongs to.
    pub fn tier_of_node(&self, node_id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.has_node(node_id))
    }
}
