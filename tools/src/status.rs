//! `tessera admin status`: the cluster at a glance — metadata nodes and the
//! leader of every Raft group, block nodes up or down with capacity, the shard
//! map, and under-replicated chunks as found by the latest repair pass.

use serde_json::{json, Value};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterQuery, NodeKind};

use crate::admin::cluster;

/// Everything `status` shows, as the JSON `--json` prints.
pub async fn collect(meta: &MetaClient, endpoints: &[String]) -> anyhow::Result<Value> {
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
        anyhow::bail!("unexpected answer to the node query");
    };
    let ClusterAnswer::ShardMap(shards) = cluster(meta, ClusterQuery::ShardMap).await? else {
        anyhow::bail!("unexpected answer to the shard map query");
    };
    let ClusterAnswer::Epoch(epoch) = cluster(meta, ClusterQuery::Epoch).await? else {
        anyhow::bail!("unexpected answer to the epoch query");
    };
    let ClusterAnswer::LastRepair(last_repair) = cluster(meta, ClusterQuery::LastRepair).await? else {
        anyhow::bail!("unexpected answer to the repair query");
    };
    let ClusterAnswer::LastGc(last_gc) = cluster(meta, ClusterQuery::LastGc).await? else {
        anyhow::bail!("unexpected answer to the GC query");
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
                json!({"id": b.id, "addr": b.addr, "zone": b.zone, "up": true, "fragments": s.fragments,
                    "bytes": s.fragment_bytes, "disk_free": s.disk_free_bytes, "disk_total": s.disk_total_bytes})
            }
            None => json!({"id": b.id, "addr": b.addr, "zone": b.zone, "up": false}),
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
        "meta_nodes": meta_nodes,
        "raft_groups": groups,
        "block_nodes": block_json,
        "shards": shard_json,
    }))
}

fn bytes(v: &Value) -> String {
    indicatif::HumanBytes(v.as_u64().unwrap_or(0)).to_string()
}

/// The human form of [`collect`]'s answer.
pub fn print(status: &Value) {
    let s = &status["summary"];
    println!("placement epoch {}", status["epoch"]);
    println!(
        "metadata nodes: {} up, {} down · block nodes: {} up, {} down",
        s["meta_nodes_up"], s["meta_nodes_down"], s["block_nodes_up"], s["block_nodes_down"]
    );
    println!(
        "capacity: {} of fragments, {} free of {} on the nodes that answered",
        bytes(&s["fragment_bytes"]),
        bytes(&s["disk_free_bytes"]),
        bytes(&s["disk_total_bytes"])
    );
    match status["last_repair"].as_object() {
        Some(r) => println!(
            "under-replicated chunks: {} (last {} by {}: {} chunks examined, {} fragments rebuilt, {} moved)",
            r["under_replicated"],
            r["mode"].as_str().unwrap_or("?"),
            r["by"].as_str().unwrap_or("?"),
            r["chunks_examined"],
            r["fragments_rebuilt"],
            r["fragments_copied"]
        ),
        None => println!("under-replicated chunks: unknown (no repair pass yet: tessera admin repair)"),
    }
    match status["last_gc"].as_object() {
        Some(g) => println!(
            "garbage collection: last pass by {} {} · {} fragments deleted, {} freed",
            g["by"].as_str().unwrap_or("?"),
            if g["finished_at_ms"].is_null() { "running or interrupted" } else { "done" },
            g["fragments_deleted"],
            bytes(&g["bytes_freed"])
        ),
        None => println!("garbage collection: no pass yet (tessera admin gc run)"),
    }
    println!("raft groups:");
    for g in s["leaders"].as_array().into_iter().flatten() {
        let leader = g["leader"].as_u64().map_or("none".to_owned(), |l| format!("node {l}"));
        println!("  group {:<4} leader {leader}", g["group"]);
    }
    for m in status["meta_nodes"].as_array().into_iter().flatten().filter(|m| m["up"] == false) {
        println!("  DOWN {} ({})", m["addr"].as_str().unwrap_or("?"), m["error"].as_str().unwrap_or(""));
    }
    println!("block nodes:");
    for b in status["block_nodes"].as_array().into_iter().flatten() {
        let id = b["id"].as_str().unwrap_or("?");
        let zone = b["zone"].as_str().unwrap_or("");
        if b["up"] == true {
            println!(
                "  {id:<12} {zone:<10} up    {:>8} fragments {:>10}  {} free",
                b["fragments"],
                bytes(&b["bytes"]),
                bytes(&b["disk_free"])
            );
        } else {
            println!("  {id:<12} {zone:<10} DOWN  {}", b["addr"].as_str().unwrap_or(""));
        }
    }
    println!("shards:");
    for sh in status["shards"].as_array().into_iter().flatten() {
        println!("  group {} replicas {} vnodes {}", sh["group"], sh["replicas"], sh["vnodes"]);
    }
}
