//! Garbage collection on a `tessera cluster up` cluster (3 metadata nodes, 6 block
//! nodes, 4+2): purged files give their space back once the grace has passed,
//! chunks other users still reference through dedup stay readable, a dedup hit on
//! a chunk that just lost its last reference never loses it, and a pass killed in
//! the middle of its sweep resumes and leaves neither lost nor leaked chunks.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tessera_tests::local_cluster::{ok_json, tessera_with, LocalCluster};
use tessera_tests::{binary, http_get, metric, poll_until, TestRng};

fn second_user(env: &HashMap<String, String>, name: &str) -> HashMap<String, String> {
    let user = ok_json(env, &["admin", "user", "create", name]);
    let mut other = env.clone();
    other.insert("TESSERA_ACCESS_KEY".into(), user["access_key"].as_str().unwrap().into());
    other.insert("TESSERA_SECRET_KEY".into(), user["secret_key"].as_str().unwrap().into());
    other
}

fn put(env: &HashMap<String, String>, work: &Path, remote: &str, data: &[u8]) -> Value {
    let local = work.join(format!("up-{}", remote.replace('/', "_")));
    std::fs::write(&local, data).unwrap();
    ok_json(env, &["put", local.to_str().unwrap(), remote])
}

fn read_back(env: &HashMap<String, String>, work: &Path, remote: &str, data: &[u8]) {
    let local = work.join(format!("back-{}", remote.replace('/', "_")));
    let out = tessera_with(env, &["get", remote, local.to_str().unwrap()]);
    assert!(out.status.success(), "get {remote}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&local).unwrap() == data, "{remote} came back different");
}

fn gc(env: &HashMap<String, String>, extra: &[&str]) -> Value {
    let mut args = vec!["admin", "gc", "run"];
    args.extend_from_slice(extra);
    ok_json(env, &args)
}

fn fragment_bytes(cluster: &LocalCluster) -> u64 {
    cluster.status().unwrap()["summary"]["fragment_bytes"].as_u64().unwrap()
}

/// Every referenced chunk still has all its fragments: a repair pass (no scrub)
/// finds nothing absent, lost or to rebuild.
fn assert_nothing_lost(env: &HashMap<String, String>) {
    let report = ok_json(env, &["admin", "repair", "--no-scrub"]);
    assert_eq!(report["chunks_absent"], 0, "{report}");
    assert_eq!(report["chunks_lost"], 0, "{report}");
    assert_eq!(report["fragments_rebuilt"], 0, "{report}");
}

#[test]
fn purged_files_give_space_back_after_the_grace_and_shared_chunks_stay() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let alice = cluster.env.clone();
    let bob = second_user(&alice, "bob");
    let mut rng = TestRng::new(9);
    let own = rng.bytes(6_000_000);
    let shared = rng.bytes(5_000_000);
    put(&alice, work.path(), "/a/own.bin", &own);
    put(&alice, work.path(), "/a/shared.bin", &shared);
    let dedup = put(&bob, work.path(), "/b/copy.bin", &shared);
    assert_eq!(dedup["chunks_uploaded"], 0, "bob's copy is deduplicated: {dedup}");
    // Soft delete keeps versions (and so chunks); purge drops them.
    ok_json(&alice, &["rm", "/a/own.bin", "--purge"]);
    ok_json(&alice, &["rm", "/a/shared.bin", "--purge"]);
    let before = fragment_bytes(&cluster);

    // Within the grace nothing is deleted, though the chunks are unreferenced.
    let early = gc(&alice, &["--grace", "1h"]);
    assert!(early["fragments_unreferenced"].as_u64().unwrap() > 0, "{early}");
    assert_eq!(early["fragments_deleted"], 0, "{early}");
    assert_eq!(early["fragments_kept_recent"], early["fragments_unreferenced"], "{early}");
    assert_eq!(fragment_bytes(&cluster), before);

    // Passes until nothing unreferenced is left (chunks pass their grace one by one).
    let mut freed = 0;
    poll_until(Duration::from_secs(60), "every unreferenced fragment deleted", || {
        let r = gc(&alice, &["--grace", "3s"]);
        assert_eq!(r["phase"], "done");
        assert_eq!(
            r["fragments_deleted"].as_u64().unwrap() + r["fragments_kept_recent"].as_u64().unwrap(),
            r["fragments_unreferenced"].as_u64().unwrap(),
            "{r}"
        );
        freed += r["bytes_freed"].as_u64().unwrap();
        (r["fragments_unreferenced"] == 0).then_some(())
    })
    .unwrap();
    // own.bin's 6 MB, coded 4+2: about 9 MB of fragments.
    assert!(freed >= 6_000_000 * 3 / 2 && freed < 6_000_000 * 3 / 2 + 1_000_000, "freed {freed}");
    let after = fragment_bytes(&cluster);
    assert_eq!(before - after, freed, "block nodes hold exactly the freed bytes less");

    read_back(&bob, work.path(), "/b/copy.bin", &shared);
    assert_nothing_lost(&alice);
    let status = ok_json(&alice, &["admin", "gc", "status"]);
    assert_eq!(status["phase"], "done");
    assert!(status["finished_at_ms"].as_i64().is_some(), "{status}");
}

#[test]
fn a_dedup_hit_racing_the_sweep_never_loses_the_chunk() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let alice = cluster.env.clone();
    let bob = second_user(&alice, "bob");
    let mut rng = TestRng::new(21);
    let rounds: Vec<Vec<u8>> = (0..4).map(|_| rng.bytes(8_000_000)).collect();
    for (i, data) in rounds.iter().enumerate() {
        put(&alice, work.path(), &format!("/a/{i}.bin"), data);
    }
    // Let the grace pass so each chunk is deletable the moment it is unreferenced.
    std::thread::sleep(Duration::from_secs(4));
    for (i, data) in rounds.iter().enumerate() {
        ok_json(&alice, &["rm", &format!("/a/{i}.bin"), "--purge"]);
        // The sweep and bob's upload of the same bytes start together; whichever
        // wins, bob's file must stay whole.
        let env = alice.clone();
        let sweep = std::thread::spawn(move || gc(&env, &["--grace", "3s", "--page", "2"]));
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis(150 * i as u64));
        }
        put(&bob, work.path(), &format!("/b/{i}.bin"), data);
        sweep.join().unwrap();
    }
    // Past the grace again: a pass over bob's referenced chunks deletes none of them.
    std::thread::sleep(Duration::from_secs(4));
    gc(&alice, &["--grace", "3s"]);
    for (i, data) in rounds.iter().enumerate() {
        read_back(&bob, work.path(), &format!("/b/{i}.bin"), data);
    }
    assert_nothing_lost(&alice);
}

#[test]
fn a_pass_killed_mid_sweep_resumes_and_neither_loses_nor_leaks() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let mut rng = TestRng::new(5);
    let kept = rng.bytes(4_000_000);
    put(&env, work.path(), "/keep.bin", &kept);
    for i in 0..4 {
        put(&env, work.path(), &format!("/junk/{i}.bin"), &rng.bytes(3_000_000));
    }
    ok_json(&env, &["rm", "/junk", "--purge"]);
    std::thread::sleep(Duration::from_secs(4));

    // A slow pass (tiny pages, 4 deletes a second), killed once it has deleted something.
    let mut child = Command::new(binary("tessera").unwrap())
        .args(["admin", "gc", "run", "--grace", "3s", "--page", "2", "--max-deletes-per-sec", "4"])
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let interrupted = poll_until(Duration::from_secs(60), "the sweep deleting", || {
        let s = ok_json(&env, &["admin", "gc", "status"]);
        (s["phase"] == "sweep" && s["fragments_deleted"].as_u64().unwrap_or(0) > 0).then_some(s)
    })
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let status = ok_json(&env, &["admin", "gc", "status"]);
    assert!(status["finished_at_ms"].is_null(), "{status}");
    assert!(status["sweep_node"].is_string(), "{status}");
    assert!(interrupted["fragments_deleted"].as_u64().unwrap() > 0);

    let resumed = gc(&env, &["--grace", "3s"]);
    assert_eq!(resumed["phase"], "done");
    assert!(resumed["nodes_swept"] == resumed["nodes_total"], "{resumed}");
    // Resumed, not restarted: it went on from where the killed pass stood.
    assert_eq!(resumed["resumed_on"], status["sweep_node"], "{resumed}");
    assert_eq!(resumed["fragments_unreferenced"], resumed["fragments_deleted"], "{resumed}");
    // No leak: a fresh full pass finds nothing unreferenced left.
    let fresh = gc(&env, &["--grace", "3s", "--no-resume"]);
    assert_eq!(fresh["fragments_unreferenced"], 0, "{fresh}");
    // No loss.
    read_back(&env, work.path(), "/keep.bin", &kept);
    assert_nothing_lost(&env);
}

#[test]
fn the_routers_background_job_collects_and_reports_on_metrics() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &["--gc-interval", "2", "--gc-grace-secs", "3"]).unwrap();
    let env = cluster.env.clone();
    let mut rng = TestRng::new(77);
    let kept = rng.bytes(2_000_000);
    put(&env, work.path(), "/keep.bin", &kept);
    put(&env, work.path(), "/gone.bin", &rng.bytes(3_000_000));
    ok_json(&env, &["rm", "/gone.bin", "--purge"]);
    let metrics = poll_until(Duration::from_secs(60), "a background pass freeing space", || {
        let (_, body) = http_get(&env["TESSERA_ENDPOINT"], "/metrics").ok()?;
        (metric(&body, "tessera_router_gc_freed_bytes_total")? >= 4_500_000.0).then_some(body)
    })
    .unwrap();
    assert!(metric(&metrics, "tessera_router_gc_deleted_fragments_total").unwrap() >= 6.0, "{metrics}");
    assert!(metric(&metrics, "tessera_router_gc_examined_fragments_total").unwrap() >= 6.0);
    assert_eq!(metric(&metrics, "tessera_router_gc_failed_passes_total"), Some(0.0));
    let status = ok_json(&env, &["admin", "gc", "status"]);
    assert!(status["by"].as_str().unwrap().starts_with("router "), "{status}");
    let cluster_status = cluster.status().unwrap();
    assert!(cluster_status["last_gc"]["bytes_freed"].as_u64().unwrap() > 0, "{cluster_status}");
    read_back(&env, work.path(), "/keep.bin", &kept);
    // Only keep.bin's fragments are left on the block nodes.
    let left = fragment_bytes(&cluster);
    assert!(left >= 3_000_000 && left < 4_000_000, "{left} bytes left");
}

#[test]
fn deleted_files_are_purged_after_the_trash_retention_and_their_space_comes_back() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let mut rng = TestRng::new(31);
    let kept = rng.bytes(1_000_000);
    put(&env, work.path(), "/keep.bin", &kept);
    put(&env, work.path(), "/trash/old.bin", &rng.bytes(4_000_000));
    ok_json(&env, &["rm", "/trash"]); // soft delete: restorable
    let held = gc(&env, &["--grace", "3s", "--trash-retention", "1h"]);
    assert_eq!(held["trash_entries_purged"], 0, "{held}");
    ok_json(&env, &["versions", "/trash/old.bin"]);
    let before = fragment_bytes(&cluster);

    std::thread::sleep(Duration::from_millis(1200));
    let mut purged = 0;
    let mut freed = 0;
    poll_until(Duration::from_secs(60), "the trash purged and its space freed", || {
        let r = gc(&env, &["--grace", "3s", "--trash-retention", "1s"]);
        purged += r["trash_entries_purged"].as_u64().unwrap();
        freed += r["bytes_freed"].as_u64().unwrap();
        (purged > 0 && r["fragments_unreferenced"] == 0 && freed > 0).then_some(())
    })
    .unwrap();
    assert_eq!(purged, 2, "the folder and its file");
    let out = tessera_with(&env, &["versions", "/trash/old.bin"]);
    assert!(!out.status.success(), "no history left after the purge");
    assert!(freed >= 4_000_000 * 3 / 2, "freed {freed}");
    assert_eq!(before - fragment_bytes(&cluster), freed);
    read_back(&env, work.path(), "/keep.bin", &kept);
    assert_nothing_lost(&env);
}
