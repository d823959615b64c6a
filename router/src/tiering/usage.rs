//! Bytes and fragments per tier, from every block node's own counters: what
//! `tessera admin tier status`, the console and `/metrics` show.

use serde::Serialize;
use tessera_meta::tiering::Compression;

use crate::datapath::DataPath;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TierUsage {
    pub name: String,
    pub label: String,
    /// "k+m".
    pub code: String,
    pub compression: String,
    /// Seconds without a read after which chunks move to the next tier (none on the coldest).
    pub demote_after_secs: Option<u64>,
    pub nodes: Vec<String>,
    pub nodes_unreachable: Vec<String>,
    pub fragments: u64,
    pub fragment_bytes: u64,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
}

/// Usage of every tier (one `default` tier when tiering is not configured).
pub async fn tier_usage(dp: &DataPath) -> Vec<TierUsage> {
    let tiers = dp.tiers();
    let mut out = Vec::new();
    for tier in tiers.tiers() {
        let nodes = tier.placement.block_nodes();
        let stats = futures::future::join_all(nodes.iter().map(|node| async move {
            let client = dp.view.pool.client(node).ok()?;
            client.stats().await.ok()
        }))
        .await;
        let mut usage = TierUsage {
            name: tier.name.clone(),
            label: tier.label.clone(),
            code: format!("{}+{}", tier.data_shards(), tier.fragments_per_chunk() - tier.data_shards()),
            compression: match tier.compression {
                Compression::None => "none".into(),
                Compression::Zstd => "zstd".into(),
            },
            demote_after_secs: tier.demote_after.map(|d| d.as_secs()),
            nodes: nodes.iter().map(|n| n.id.clone()).collect(),
            nodes_unreachable: Vec::new(),
            fragments: 0,
            fragment_bytes: 0,
            disk_free_bytes: 0,
            disk_total_bytes: 0,
        };
        for (node, stat) in nodes.iter().zip(stats) {
            match stat {
                Some(s) => {
                    usage.fragments += s.fragments;
                    usage.fragment_bytes += s.fragment_bytes;
                    usage.disk_free_bytes += s.disk_free_bytes;
                    usage.disk_total_bytes += s.disk_total_bytes;
                }
                None => usage.nodes_unreachable.push(node.id.clone()),
            }
        }
        out.push(usage);
    }
    out
}
