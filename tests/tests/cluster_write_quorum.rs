//! Writes survive a node loss: on `tessera cluster up` (6 block nodes, 4+2,
//! no spare node), uploads go on with a block node killed (kill -9), each chunk
//! committed once the write quorum (k+1 = 5 fragments) is durable. Nothing
//! acknowledged is lost when one more node then fails; below the quorum an
//! upload is refused with a clear error and leaves nothing visible; once the
//! nodes are back, repair completes every under-replicated chunk and
//! `admin status` shows it.

use std::path::Path;
use std::time::Duration;

use tessera_tests::local_cluster::{read_back, LocalCluster};
use tessera_tests::{http_get, metric, poll_until, TestRng};

type Files = Vec<(String, Vec<u8>)>;

fn put_files(cluster: &LocalCluster, work: &Path, prefix: &str, seed: u64, count: usize) -> Files {
    let mut rng = TestRng::new(seed);
    (0..count)
        .map(|i| {
            let data = rng.bytes(900_000 + i * 1_700_003);
            let local = work.join(format!("{prefix}-{i}"));
            std::fs::write(&local, &data).unwrap();
            let remote = format!("/{prefix}/f{i}");
            cluster.tessera_ok(&["put", local.to_str().unwrap(), &remote]).unwrap();
            (remote, data)
        })
        .collect()
}

/// `tessera admin repair --json`: its report, also when it exits non-zero
/// because some chunk is not fully redundant.
fn repair(cluster: &LocalCluster) -> serde_json::Value {
    let out = cluster.tessera(&["--json", "admin", "repair"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("repair printed no report ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

fn degraded_chunks(cluster: &LocalCluster) -> f64 {
    let (code, body) = http_get(&cluster.env["TESSERA_ENDPOINT"], "/metrics").unwrap();
    assert_eq!(code, 200);
    metric(&body, "tessera_router_chunks_stored_degraded_total").unwrap_or(0.0)
}

#[test]
fn writes_go_on_with_a_block_node_down_and_survive_one_more_loss() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &["--repair-interval", "0"]).unwrap();
    let mut files = put_files(&cluster, work.path(), "before", 1, 2);
    assert_eq!(degraded_chunks(&cluster), 0.0, "with every node up, chunks are stored whole");

    // One node of six dies: with 4+2 and no spare node, each new chunk gets 5 fragments.
    cluster.kill9("block", "block-2").unwrap();
    let during = put_files(&cluster, work.path(), "during", 2, 4);
    assert!(degraded_chunks(&cluster) >= 4.0, "each new chunk was stored under-replicated");
    // S3 and multipart go through the same path; a deduplicated re-upload too.
    let again = work.path().join("again");
    std::fs::write(&again, &during[0].1).unwrap();
    cluster.tessera_ok(&["put", again.to_str().unwrap(), "/during/copy"]).unwrap();
    files.extend(during.iter().cloned());
    files.push(("/during/copy".into(), during[0].1.clone()));

    // Repair sees the chunks waiting for their node; status shows them.
    let report = repair(&cluster);
    assert!(report["chunks_waiting_for_node"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["chunks_lost"], 0, "{report}");
    let status = cluster.status().unwrap();
    assert!(status["summary"]["under_replicated_chunks"].as_u64().unwrap() >= 4, "{status}");

    // One more node dies: every acknowledged version still reads back bit-exact.
    cluster.kill9("block", "block-4").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("every acknowledged write survives a second loss");

    // Two down: 4 of 6 fragments cannot meet the quorum of 5. Refused, clearly, and
    // nothing of it becomes visible.
    let refused = work.path().join("refused");
    std::fs::write(&refused, TestRng::new(3).bytes(700_000)).unwrap();
    let out = cluster.tessera(&["put", refused.to_str().unwrap(), "/during/refused"]);
    assert!(!out.status.success(), "a write below the quorum must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only 4 of 6 fragments stored and 5 are needed"), "{err}");
    assert!(!cluster.tessera(&["stat", "/during/refused"]).status.success(), "a refused upload left a file");

    // Both nodes return; repair completes every under-replicated chunk.
    cluster.start(&[]).unwrap();
    let report = poll_until(Duration::from_secs(90), "a repair pass with every node reachable", || {
        let r = repair(&cluster);
        (r["nodes_unreachable"].as_array().is_some_and(|n| n.is_empty())).then_some(r)
    })
    .unwrap();
    assert!(report["fragments_rebuilt"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!((report["chunks_lost"].as_u64(), report["chunks_waiting_for_node"].as_u64()), (Some(0), Some(0)));
    let status = cluster.status().unwrap();
    assert_eq!(status["summary"]["under_replicated_chunks"], 0, "{status}");

    // Full redundancy again: two other nodes may now fail.
    cluster.kill9("block", "block-0").unwrap();
    cluster.kill9("block", "block-5").unwrap();
    read_back(&cluster.env, work.path(), &files).expect("repair restored full redundancy");
}
