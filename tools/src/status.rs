//! `tessera admin status`: the human form of [`tessera_router::status::collect`]
//! (the same JSON `--json` prints and the router console shows).

use serde_json::Value;

pub use tessera_router::status::collect;

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
    if let Some(tiers) = status["tiers"].as_array().filter(|t| !t.is_empty()) {
        println!("storage tiers:");
        for t in tiers {
            println!(
                "  {:<10} {} of {} nodes up · {} fragments · {}",
                t["name"].as_str().unwrap_or("?"),
                t["nodes_up"],
                t["nodes"].as_array().map_or(0, |n| n.len()),
                t["fragments"],
                bytes(&t["bytes"])
            );
        }
        match status["last_tier_pass"].as_object() {
            Some(p) => println!(
                "  last tiering pass by {} {} · {} demoted, {} promoted, {} moved",
                p["by"].as_str().unwrap_or("?"),
                if p["finished_at_ms"].is_null() { "running or interrupted" } else { "done" },
                p["chunks_demoted"],
                p["chunks_promoted"],
                bytes(&p["bytes_moved"])
            ),
            None => println!("  no tiering pass yet (tessera admin tier run)"),
        }
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
    let moves = status["user_moves"].as_array().into_iter().flatten().collect::<Vec<_>>();
    if !moves.is_empty() {
        println!("user moves in progress:");
    }
    for m in moves {
        println!(
            "  {} group {} -> {} {} · {} records, {} copied (by {})",
            m["user_id"].as_str().unwrap_or("?"),
            m["from"],
            m["to"],
            m["state"].as_str().unwrap_or("?"),
            m["copied_records"],
            bytes(&m["copied_bytes"]),
            m["by"].as_str().unwrap_or("?")
        );
    }
}
