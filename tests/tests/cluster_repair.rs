//! Repair and rebalance on a `tessera cluster up` cluster (4+2 coding, one
//! fragment of every chunk per block node): a lost disk and corrupt fragments
//! are rebuilt by `tessera admin repair`; an added node gets its share by
//! `tessera admin rebalance` while reads go on; a removed node's fragments are
//! rebuilt elsewhere. Each test ends by killing two more nodes and reading
//! everything back bit-exact, which only works if redundancy really is full.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;
use tessera_tests::local_cluster::{read_back, LocalCluster};

use tessera_tests::{http_get, metric, poll_until, TestRng};

type Files = Vec<(String, Vec<u8>)>;

fn put_files(cluster: &LocalCluster, work: &Path, prefix: &str, seed: u64, count: usize) -> Files {
    let mut rng = TestRng::new(seed);
    let mut files = Vec::new();
    for i in 0..count {
        let data = rng.bytes(1_200_000 + i * 1_300_001);
        let local = work.join(format!("{prefix}-{i}"));
        std::fs::write(&local, &data).unwrap();
        let remote = format!("/{prefix}/f{i}");
        cluster.tessera_ok(&["put", local.to_str().unwrap(), &remote]).unwrap();
        files.push((remote, data));
    }
    files
}

fn repair(cluster: &LocalCluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "admin"];
    all.extend_from_slice(args);
    serde_json::from_str(&cluster.tessera_ok(&all).unwrap()).unwrap()
}

fn fragments_per_node(cluster: &LocalCluster) -> Vec<(String, u64)> {
    let status = cluster.status().unwrap();
    status["block_nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_owned(), b["fragments"].as_u64().unwrap_or(0)))
        .collect()
}

#[test]
fn a_lost_disk_is_rebuilt_by_repair_and_then_survives_two_more_failures() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let files = put_files(&cluster, work.path(), "disk", 1, 3);
    cluster.kill9("block", "block-2").unwrap();
    std::fs::remove_dir_all(cluster.data_dir("block-2")).unwrap();
    cluster.start(&[]).unwrap();
    read_back(&cluster.env, work.path(), &files).expect("degraded reads with an empty node");

    let report = repair(&cluster, &["repair"]);
    assert!(report["fragments_rebuilt"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["chunks_repaired"], report["chunks_examined"], "every chunk had a fragment there: {report}");
    assert_eq!(report["chunks_lost"], 0, "{report}");
    let again = repair(&cluster, &["repair"]);
    assert_eq!(again["fragments_rebuilt"], 0, "a second pass finds nothing to do: {again}");
    assert_eq!(again["chunks_healthy"], again["chunks_examined"], "{again}");

    cluster.kill9("block", "block-0").unwrap();
    cluster.kill9("block", "block-5").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("rebuilt fragments carry the reads");
}

#[test]
fn corrupt_fragments_are_found_by_scrub_and_replaced() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let files = put_files(&cluster, work.path(), "rot", 2, 3);
    // A clean stop flushes the fragments into blob files; flip bytes in them.
    cluster.stop("block", "block-1").unwrap();
    let mut flipped = 0;
    for entry in std::fs::read_dir(cluster.data_dir("block-1")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "blob") {
            let mut bytes = std::fs::read(&path).unwrap();
            for frac in [2usize, 4, 6, 8] {
                let at = bytes.len() * frac / 10;
                for b in &mut bytes[at..at + 32] {
                    *b ^= 0x5A;
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped > 0, "block-1 should keep its fragments in blob files");
    cluster.start(&[]).unwrap();
    read_back(&cluster.env, work.path(), &files).expect("corrupt fragments are never served");

    let report = repair(&cluster, &["repair"]);
    let corrupt = report["corrupt_fragments"].as_u64().unwrap();
    assert!(corrupt > 0, "the scrub finds the damage: {report}");
    assert!(report["fragments_rebuilt"].as_u64().unwrap() >= corrupt, "{report}");
    let again = repair(&cluster, &["repair"]);
    assert_eq!(again["corrupt_fragments"], 0, "replaced copies verify: {again}");
    assert_eq!(again["fragments_rebuilt"], 0, "{again}");

    cluster.kill9("block", "block-3").unwrap();
    cluster.kill9("block", "block-4").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("replaced fragments carry the reads");
}

#[test]
fn an_added_node_gets_its_share_by_rebalance_during_reads_and_a_removed_one_is_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let mut files = put_files(&cluster, work.path(), "old", 3, 4);
    cluster.start(&["--block", "7"]).unwrap();
    let per_node = fragments_per_node(&cluster);
    assert_eq!(per_node.len(), 7, "{per_node:?}");
    assert_eq!(per_node.iter().find(|(id, _)| id == "block-6").map(|n| n.1), Some(0));
    let total_before: u64 = per_node.iter().map(|n| n.1).sum();

    // Reads keep working (and stay bit-exact) while fragments move.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads) = (stop.clone(), reads.clone());
        let files = files.clone();
        let dir = work.path().join("reader");
        std::fs::create_dir_all(&dir).unwrap();
        let env = cluster.env.clone();
        std::thread::spawn(move || {
            let mut result = Ok(());
            while !stop.load(Ordering::Relaxed) && result.is_ok() {
                result = read_back(&env, &dir, &files);
                reads.fetch_add(1, Ordering::Relaxed);
            }
            result
        })
    };
    let report = repair(&cluster, &["rebalance"]);
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap().expect("reads during the rebalance");
    assert!(reads.load(Ordering::Relaxed) > 0);
    let moved = report["fragments_copied"].as_u64().unwrap();
    assert!(moved > 0, "{report}");
    assert_eq!(report["fragments_removed"].as_u64().unwrap(), moved, "each move leaves no copy behind: {report}");
    let per_node = fragments_per_node(&cluster);
    // The new node takes over the slots it wins; a node it displaces moves to a
    // slot it now wins, so a chunk may see two copies, never more fragments.
    let on_new = per_node.iter().find(|(id, _)| id == "block-6").map(|n| n.1).unwrap();
    assert!(on_new > 0 && on_new <= moved, "{per_node:?} after {report}");
    assert_eq!(per_node.iter().map(|n| n.1).sum::<u64>(), total_before, "moves keep the fragment count");
    let again = repair(&cluster, &["rebalance"]);
    assert_eq!((again["fragments_copied"].as_u64(), again["fragments_removed"].as_u64()), (Some(0), Some(0)));

    // New uploads use the new node too.
    files.extend(put_files(&cluster, work.path(), "new", 4, 2));

    // block-0's machine dies and is removed: its fragments are rebuilt elsewhere.
    cluster.kill9("block", "block-0").unwrap();
    cluster.tessera_ok(&["admin", "node", "remove", "block-0"]).unwrap();
    let report = repair(&cluster, &["rebalance"]);
    assert!(report["fragments_rebuilt"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["chunks_lost"], 0, "{report}");
    cluster.kill9("block", "block-1").unwrap();
    cluster.kill9("block", "block-6").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("after removing a node and losing two more");
}

#[test]
fn the_background_repair_heals_a_lost_disk_and_status_tells_the_story() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &["--repair-interval", "1"]).unwrap();
    let files = put_files(&cluster, work.path(), "bg", 5, 3);
    cluster.kill9("block", "block-2").unwrap();
    std::fs::remove_dir_all(cluster.data_dir("block-2")).unwrap();
    // While the node is down, status shows it and the passes count its chunks.
    let status =
        poll_until(Duration::from_secs(60), "status to show the node down and chunks under-replicated", || {
            let s = cluster.status().ok()?;
            let down = s["summary"]["block_nodes_down"] == 1;
            (down && s["summary"]["under_replicated_chunks"].as_u64()? > 0).then_some(s)
        })
        .unwrap();
    assert!(status["block_nodes"].as_array().unwrap().iter().any(|b| b["id"] == "block-2" && b["up"] == false));
    let restarted_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    cluster.start(&[]).unwrap();
    let record = poll_until(Duration::from_secs(120), "a background pass that leaves nothing under-replicated", || {
        let s = cluster.status().ok()?;
        let r = s["last_repair"].clone();
        let fresh = r["finished_at_ms"].as_u64()? > restarted_ms + 500;
        (fresh && r["under_replicated"] == 0 && s["summary"]["block_nodes_down"] == 0).then_some(r)
    })
    .unwrap();
    assert!(record["by"].as_str().unwrap().starts_with("router"), "{record}");
    let (code, metrics) = http_get(&cluster.env["TESSERA_ENDPOINT"], "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metric(&metrics, "tessera_router_repair_fragments_rebuilt_total").unwrap() > 0.0, "{metrics}");
    assert!(metric(&metrics, "tessera_router_repair_passes_total").unwrap() >= 2.0);
    assert_eq!(metric(&metrics, "tessera_router_repair_under_replicated_chunks"), Some(0.0));

    cluster.kill9("block", "block-0").unwrap();
    cluster.kill9("block", "block-5").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("the background repair restored full redundancy");
}
