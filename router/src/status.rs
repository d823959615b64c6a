//! The cluster at a glance, as `tessera admin status --json` prints it and the
//! router console shows it: metadata nodes and the leader of every Raft group,
//! block nodes up or down with capacity, the shard map, under-replicated chunks
//! as found by the latest repair pass, the latest GC pass, bytes per storage
//! tier and the latest tiering pass. One collection
//! for both, so the numbers cannot drift apart.

use serde_json::{json, Value};
use tessera_meta::client::{ClientError, MetaClient};
use tessera_meta::cluster::{ClusterAnswer, ClusterQuery, NodeInfo, NodeKind, UserSummary};
use tessera_meta::command::{GroupAnswer, GroupQuery};
use tessera_meta::model::{QueryResponse, ShardQuery};
use tessera_meta::tiering::TieringConfig;

use crate::cluster_view::ClusterView;
use crate::error::RouterError;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cluster group: {0}")]
    Meta(#[from] ClientError),
    #[error("shard: {0}")]
    Shard(#[from] RouterError),
    #[error("unexpected answer to the {0}")]
    Unexpected(&'static str),
}

/// A query of the cluster group (group 0).
pub async fn cluster(meta: &MetaClient, q: ClusterQuery) -> Result<ClusterAnswer, StatusError> {
    match meta.query(0, &GroupQuery::Cluster(q)).await? {
        GroupAnswer::Cluster(a) => Ok(a),
        _ => Err(StatusError::Unexpected("cluster query")),
    }
}

/// Everything `status` shows, as the JSON `--json` prints.
pub async fn collect(meta: &MetaClient, endpoints: &[String]) -> Result<Value, StatusError> {
    let mut groups = Vec::new();
    let mut meta_nodes = Vec::new();
    for addr in endpoints {
        match meta.status(addr).await {
            Ok(s) => {
                meta_nodes.push(json!({"node": s.node_id, "addr": addr, "up": true}));
                for g in s.groups {
                    groups.push(json!({
                        "node": s.node_id, "addr": addr, "group": g.group_id, "state": g.state,
                        "term": g.term, "leader": g.leader, "voters": g.voters,
                        "last_log_index": g.last_log_index, "last_applied": g.last_applied,
                    }));
                }
            }
            Err(e) => meta_nodes.push(json!({"addr": addr, "up": false, "error": e.to_string()})),
        }
    }
    let ClusterAnswer::Nodes(blocks) = cluster(meta, ClusterQuery::Nodes(NodeKind::Block)).await? else {
        return Err(StatusError::Unexpected("node query"));
    };
    let ClusterAnswer::ShardMap(shards) = cluster(meta, ClusterQuery::ShardMap).await? else {
        return Err(StatusError::Unexpected("shard map query"));
    };
    let ClusterAnswer::Epoch(epoch) = cluster(meta, ClusterQuery::Epoch).await? else {
        return Err(StatusError::Unexpected("epoch query"));
    };
    let ClusterAnswer::LastRepair(last_repair) = cluster(meta, ClusterQuery::LastRepair).await? else {
        return Err(StatusError::Unexpected("repair query"));
    };
    let ClusterAnswer::LastGc(last_gc) = cluster(meta, ClusterQuery::LastGc).await? else {
        return Err(StatusError::Unexpected("GC query"));
    };
    let ClusterAnswer::Tiering(tiering) = cluster(meta, ClusterQuery::Tiering).await? else {
        return Err(StatusError::Unexpected("tiering query"));
    };
    let ClusterAnswer::LastTierPass(last_tier_pass) = cluster(meta, ClusterQuery::LastTierPass).await? else {
        return Err(StatusError::Unexpected("tier pass query"));
    };
    let ClusterAnswer::UserMoves(user_moves) = cluster(meta, ClusterQuery::UserMoves).await? else {
        return Err(StatusError::Unexpected("user move query"));
    };
    let stats = futures::future::join_all(blocks.iter().map(|b| async move {
        let url = if b.addr.starts_with("http") { b.addr.clone() } else { format!("http://{}", b.addr) };
        match tessera_block::BlockClient::connect(url).await {
            Ok(c) => c.stats().await.ok(),
            Err(_) => None,
        }
    }))
    .await;
    let (mut used, mut free, mut total, mut up) = (0u64, 0u64, 0u64, 0usize);
    let mut block_json = Vec::new();
    for (b, stats) in blocks.iter().zip(stats) {
        block_json.push(match stats {
            Some(s) => {
                up += 1;
                used += s.fragment_bytes;
                free += s.disk_free_bytes;
                total += s.disk_total_bytes;
                json!({"id": b.id, "addr": b.addr, "zone": b.zone, "labels": b.labels, "up": true,
                    "fragments": s.fragments, "bytes": s.fragment_bytes, "disk_free": s.disk_free_bytes,
                    "disk_total": s.disk_total_bytes})
            }
            None => json!({"id": b.id, "addr": b.addr, "zone": b.zone, "labels": b.labels, "up": false}),
        });
    }
    let leaders: Vec<Value> = {
        let mut ids: Vec<u64> = groups.iter().filter_map(|g| g["group"].as_u64()).collect();
        ids.sort();
        ids.dedup();
        ids.iter()
            .map(|id| {
                let leader = groups.iter().filter(|g| g["group"] == *id).find_map(|g| g["leader"].as_u64());
                json!({"group": id, "leader": leader})
            })
            .collect()
    };
    let shard_json: Vec<_> =
        shards.iter().map(|s| json!({"group": s.group_id, "replicas": s.replicas, "vnodes": s.vnodes})).collect();
    Ok(json!({
        "epoch": epoch,
        "summary": {
            "meta_nodes_up": meta_nodes.iter().filter(|m| m["up"] == true).count(),
            "meta_nodes_down": meta_nodes.iter().filter(|m| m["up"] == false).count(),
            "block_nodes_up": up,
            "block_nodes_down": blocks.len() - up,
            "fragment_bytes": used,
            "disk_free_bytes": free,
            "disk_total_bytes": total,
            "under_replicated_chunks": last_repair.as_ref().map(|r| r.under_replicated),
            "leaders": leaders,
        },
        "last_repair": last_repair,
        "last_gc": last_gc,
        "tiers": tiers(tiering.as_ref(), &blocks, &block_json),
        "last_tier_pass": last_tier_pass,
        "meta_nodes": meta_nodes,
        "raft_groups": groups,
        "block_nodes": block_json,
        "shards": shard_json,
        "user_moves": user_moves,
    }))
}

/// Per storage tier (hottest first): its nodes, how many answered, and their
/// fragments and bytes; empty when tiering is not configured.
fn tiers(config: Option<&TieringConfig>, blocks: &[NodeInfo], block_json: &[Value]) -> Vec<Value> {
    let Some(config) = config else { return Vec::new() };
    config
        .tiers
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let members: Vec<&Value> = blocks
                .iter()
                .zip(block_json)
                .filter(|(b, _)| config.tier_of(&b.labels) == index)
                .map(|(_, j)| j)
                .collect();
            let sum = |field: &str| members.iter().filter_map(|m| m[field].as_u64()).sum::<u64>();
            json!({
                "name": spec.name,
                "label": spec.label,
                "nodes": members.iter().map(|m| m["id"].clone()).collect::<Vec<_>>(),
                "nodes_up": members.iter().filter(|m| m["up"] == true).count(),
                "fragments": sum("fragments"),
                "bytes": sum("bytes"),
                "demote_after_secs": spec.demote_after.map(|d| d.as_secs()),
            })
        })
        .collect()
}

/// Every user with its usage and quota, as `tessera admin user show --json`
/// reports them (`user_id`, `display_name`, `usage_bytes`, `quota_bytes`).
pub async fn users(view: &ClusterView) -> Result<Vec<Value>, StatusError> {
    let ClusterAnswer::Users(users) = cluster(&view.meta, ClusterQuery::Users).await? else {
        return Err(StatusError::Unexpected("user list query"));
    };
    let mut out = Vec::with_capacity(users.len());
    for UserSummary { user_id, display_name, created_at_ms } in users {
        let q = ShardQuery::Usage { user_id: user_id.clone() };
        let QueryResponse::Usage(u) = view.shard_query(&user_id, q, std::time::Duration::ZERO).await? else {
            return Err(StatusError::Unexpected("usage query"));
        };
        out.push(json!({"user_id": user_id, "display_name": display_name, "created_at_ms": created_at_ms,
            "usage_bytes": u.bytes, "quota_bytes": u.quota_bytes}));
    }
    Ok(out)
}
