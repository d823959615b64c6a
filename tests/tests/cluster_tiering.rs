//! Storage tiering on a `tessera cluster up` cluster: 6 unlabelled block nodes
//! form the hot tier (4+2) and 3 nodes labelled `cold` a zstd-compressed 2+1
//! tier, with a demotion age shortened to seconds. Chunks move down and back up
//! without any file's content, version or checksum changing; reads during
//! moves stay correct; a mover killed mid-move (after writing the new copy, or
//! after committing it) loses nothing, and the next pass finishes the move.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tessera_tests::local_cluster::{ok_json, tessera_with, LocalCluster};
use tessera_tests::{http_get, http_request, metric, poll_until, TestRng};

const TIERS: &str = r#"
[[tier]]
name = "hot"
demote_after = "2s"

[[tier]]
name = "cold"
label = "cold"
data_shards = 2
parity_shards = 1
compression = "zstd"
"#;

fn put(env: &HashMap<String, String>, work: &Path, remote: &str, data: &[u8]) -> Value {
    let local = work.join(format!("up-{}", remote.replace('/', "_")));
    std::fs::write(&local, data).unwrap();
    ok_json(env, &["put", local.to_str().unwrap(), remote])
}

/// Reads `remote` back; `Err` with the CLI's message when the read fails.
fn get(env: &HashMap<String, String>, work: &Path, remote: &str, tag: &str) -> Result<Vec<u8>, String> {
    let local = work.join(format!("back-{tag}-{}", remote.replace('/', "_")));
    let out = tessera_with(env, &["get", remote, local.to_str().unwrap()]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    std::fs::read(&local).map_err(|e| e.to_string())
}

fn read_back(env: &HashMap<String, String>, work: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let got = get(env, work, path, "check").unwrap_or_else(|e| panic!("get {path}: {e}"));
        assert!(&got == data, "{path} came back different");
    }
}

/// Fragment bytes per tier, from `tessera admin tier status --json`.
fn tier_bytes(env: &HashMap<String, String>) -> (u64, u64) {
    let status = ok_json(env, &["admin", "tier", "status"]);
    assert_eq!(status["configured"], true, "{status}");
    let bytes = |name: &str| {
        status["tiers"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap()["fragment_bytes"]
            .as_u64()
            .unwrap()
    };
    (bytes("hot"), bytes("cold"))
}

fn tier_run(env: &HashMap<String, String>, extra: &[&str]) -> Value {
    let mut args = vec!["admin", "tier", "run"];
    args.extend_from_slice(extra);
    let r = ok_json(env, &args);
    assert_eq!(r["phase"], "done", "{r}");
    r
}

/// (version, sha256) of every file: what tiering must never change.
fn identities(env: &HashMap<String, String>, files: &[(String, Vec<u8>)]) -> Vec<(u64, String)> {
    files
        .iter()
        .map(|(p, _)| {
            let s = ok_json(env, &["stat", p]);
            (s["version"].as_u64().unwrap(), s["sha256"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Every referenced chunk is whole in the tier it lives in: a repair pass (no
/// scrub) finds nothing absent, lost or to rebuild.
fn assert_nothing_lost(env: &HashMap<String, String>) {
    let report = ok_json(env, &["admin", "repair", "--no-scrub"]);
    assert_eq!(report["chunks_absent"], 0, "{report}");
    assert_eq!(report["chunks_lost"], 0, "{report}");
    assert_eq!(report["fragments_rebuilt"], 0, "{report}");
    assert_eq!(report["fragments_copied"], 0, "{report}");
}

fn set_tiers(env: &HashMap<String, String>, work: &Path, text: &str) {
    let file = work.join("tiers.toml");
    std::fs::write(&file, text).unwrap();
    let set = ok_json(env, &["admin", "tier", "set", file.to_str().unwrap()]);
    assert_eq!(set["tiers"], serde_json::json!(["hot", "cold"]), "{set}");
    let show = ok_json(env, &["admin", "tier", "show"]);
    assert_eq!(show["tier"][1]["label"], "cold", "{show}");
}

fn tiered_cluster(work: &Path) -> LocalCluster {
    let cluster = LocalCluster::up(
        &work.join("c"),
        &["--meta", "1", "--cold", "3", "--repair-interval", "0", "--gc-interval", "0", "--tier-interval", "0"],
    )
    .unwrap();
    set_tiers(&cluster.env, work, TIERS);
    // The router follows the cluster group within its refresh interval (1 s).
    std::thread::sleep(Duration::from_millis(1500));
    cluster
}

/// Files of several kinds: compressible text, random bytes over several chunks, a small file.
fn sample_files(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = TestRng::new(seed);
    let text: Vec<u8> =
        format!("tessera tiering sample {seed} ").into_bytes().into_iter().cycle().take(3_000_000).collect();
    vec![
        (format!("/t{seed}/text.log"), text),
        (format!("/t{seed}/random.bin"), rng.bytes(9_000_000)),
        (format!("/t{seed}/small.txt"), rng.bytes(1000)),
    ]
}

#[test]
fn bad_tier_configs_are_refused_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let cluster =
        LocalCluster::up(&work.path().join("c"), &["--meta", "1", "--repair-interval", "0", "--gc-interval", "0"])
            .unwrap();
    let cases = [
        (TIERS.replace("compression = \"zstd\"", "compresion = \"zstd\""), "compresion"),
        (TIERS.replace("demote_after = \"2s\"", ""), "demote_after"),
        (TIERS.replace("data_shards = 2", "data_shards = 0"), "data_shards"),
        ("[[tier]]\nname = \"hot\"\n".to_owned(), "2 tiers"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let file = work.path().join(format!("bad-{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = cluster.tessera(&["admin", "tier", "set", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted");
        assert!(err.contains(needle), "case {i}: {err}");
    }
    let show = ok_json(&cluster.env, &["admin", "tier", "show"]);
    assert!(show.is_null(), "nothing stored: {show}");
    let out = cluster.tessera(&["admin", "tier", "run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not configured"));
}

#[test]
fn chunks_move_down_and_back_up_and_reads_stay_correct() {
    let work = tempfile::tempdir().unwrap();
    let cluster = tiered_cluster(work.path());
    let env = cluster.env.clone();
    let files = sample_files(1);
    for (path, data) in &files {
        put(&env, work.path(), path, data);
    }
    let before = identities(&env, &files);
    let (hot, cold) = tier_bytes(&env);
    assert!(hot > 0 && cold == 0, "new chunks go to the hot tier: hot {hot}, cold {cold}");

    // A move deletes its source copy at once only if that copy was stored more
    // than 5 s before the move's commit (else it is left for the leftover
    // cleanup, 32 s later here): the waits below keep the test short.
    const SETTLE: Duration = Duration::from_secs(6);

    // Down: passes until every chunk is cold (chunks age one by one).
    std::thread::sleep(SETTLE);
    let mut demoted = 0;
    poll_until(Duration::from_secs(120), "every chunk demoted", || {
        std::thread::sleep(Duration::from_millis(500));
        demoted += tier_run(&env, &["--move-deadline", "1s"])["chunks_demoted"].as_u64().unwrap();
        (tier_bytes(&env).0 == 0).then_some(())
    })
    .unwrap();
    let (_, cold) = tier_bytes(&env);
    let raw: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    assert!(demoted >= 4, "demoted {demoted} chunks");
    // 2+1 is 1.5× the payload; the text compresses to almost nothing.
    assert!(cold < raw * 3 / 2 - 2_000_000, "cold tier holds {cold} bytes for {raw} raw: compression did not apply");
    assert!(cold > 9_000_000, "cold tier holds {cold} bytes: less than the random file");
    read_back(&env, work.path(), &files);
    assert_eq!(identities(&env, &files), before, "versions and checksums unchanged");
    assert_nothing_lost(&env);
    let router = cluster.address("router", "router-0").unwrap();
    let (_, metrics) = http_get(&router, "/metrics").unwrap();
    assert!(metric(&metrics, "tessera_router_colder_tier_reads_total").unwrap_or(0.0) >= 4.0, "{metrics}");

    // Up: the chunks just read are promoted by the next pass. Their cold copies
    // go at once, or (written moments ago) as leftovers once older than twice
    // the move deadline plus 30 s. A long demotion age meanwhile keeps the
    // promoted chunks hot (the tiers can be changed at any time).
    set_tiers(&env, work.path(), &TIERS.replace("\"2s\"", "\"1h\""));
    std::thread::sleep(SETTLE);
    let up = tier_run(&env, &["--move-deadline", "1s"]);
    assert!(up["chunks_promoted"].as_u64().unwrap() >= 4, "{up}");
    assert!(tier_bytes(&env).0 > 0);
    poll_until(Duration::from_secs(120), "cold copies of promoted chunks removed", || {
        std::thread::sleep(Duration::from_millis(1000));
        let r = tier_run(&env, &["--move-deadline", "1s"]);
        assert_eq!(r["chunks_demoted"], 0, "{r}");
        (tier_bytes(&env).1 == 0).then_some(())
    })
    .unwrap();
    read_back(&env, work.path(), &files);
    assert_eq!(identities(&env, &files), before);

    // Reads while the chunks move never fail nor return other bytes: demote
    // everything again, then read it all continuously while passes promote it.
    set_tiers(&env, work.path(), TIERS);
    std::thread::sleep(SETTLE);
    poll_until(Duration::from_secs(120), "every chunk demoted again", || {
        std::thread::sleep(Duration::from_millis(500));
        tier_run(&env, &["--move-deadline", "1s"]);
        (tier_bytes(&env).0 == 0).then_some(())
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (env, stop, reads, files) = (env.clone(), stop.clone(), reads.clone(), files.clone());
        let dir = work.path().to_path_buf();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for (path, data) in &files {
                    match get(&env, &dir, path, "during") {
                        Ok(got) if &got == data => {}
                        Ok(_) => return Err(format!("{path} read back different during a move")),
                        Err(e) => return Err(format!("{path} unreadable during a move: {e}")),
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(())
        })
    };
    let mut promoted = 0;
    // Reads are slow under a loaded test run: one full round of them is enough.
    poll_until(Duration::from_secs(240), "chunks promoted while being read", || {
        std::thread::sleep(Duration::from_millis(300));
        promoted += tier_run(&env, &["--move-deadline", "1s"])["chunks_promoted"].as_u64().unwrap();
        (promoted >= 4 && reads.load(Ordering::SeqCst) >= files.len() as u64).then_some(())
    })
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    reader.join().unwrap().unwrap();

    let status = ok_json(&env, &["admin", "tier", "status"]);
    assert_eq!(status["last_pass"]["phase"], "done", "{status}");
    assert_eq!(status["tiers"][1]["code"], "2+1", "{status}");
    assert_eq!(status["tiers"][1]["compression"], "zstd", "{status}");
}

#[test]
fn a_mover_killed_mid_move_loses_nothing_and_the_next_pass_finishes() {
    let work = tempfile::tempdir().unwrap();
    let cluster = tiered_cluster(work.path());
    let env = cluster.env.clone();
    let files = sample_files(2);
    for (path, data) in &files {
        put(&env, work.path(), path, data);
    }
    let before = identities(&env, &files);
    for stage in ["after-write", "after-commit"] {
        // Past the demotion age since the upload or the last client read.
        std::thread::sleep(Duration::from_millis(2500));
        let mut crashing = env.clone();
        crashing.insert("TESSERA_FAILPOINT_TIER_MOVE".into(), stage.into());
        let out = tessera_with(&crashing, &["admin", "tier", "run", "--move-deadline", "1s"]);
        assert!(!out.status.success(), "{stage}: the mover was meant to die");
        // Both copies are complete: every file reads back from one of them.
        read_back(&env, work.path(), &files);
        assert_nothing_lost(&env);
        if stage == "after-write" {
            // Nothing committed: the next move rewrites the orphaned copy.
            let (hot, cold) = tier_bytes(&env);
            assert!(hot > 0 && cold > 0, "{stage}: hot {hot}, cold {cold}");
        }
    }
    // After the commit the old copies are leftovers: removed once not stored for
    // twice the move deadline plus 30 s.
    poll_until(Duration::from_secs(120), "the interrupted moves finished", || {
        std::thread::sleep(Duration::from_millis(1000));
        tier_run(&env, &["--move-deadline", "1s"]);
        (tier_bytes(&env).0 == 0).then_some(())
    })
    .unwrap();
    let last = ok_json(&env, &["admin", "tier", "status"])["last_pass"].clone();
    assert_eq!(last["phase"], "done", "{last}");
    read_back(&env, work.path(), &files);
    assert_eq!(identities(&env, &files), before);
    assert_nothing_lost(&env);
}

#[test]
fn the_routers_job_demotes_in_the_background_promotes_on_read_and_reports_bytes_per_tier() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(
        &work.path().join("c"),
        &[
            "--meta",
            "1",
            "--cold",
            "3",
            "--repair-interval",
            "0",
            "--gc-interval",
            "0",
            "--tier-interval",
            "1",
            "--tier-move-deadline",
            "1",
        ],
    )
    .unwrap();
    let env = cluster.env.clone();
    set_tiers(&env, work.path(), TIERS);
    let files = sample_files(3);
    for (path, data) in &files {
        put(&env, work.path(), path, data);
    }
    let router = cluster.address("router", "router-0").unwrap();
    let gauge = |body: &str, tier: &str| metric(body, &format!("tessera_router_tier_stored_bytes{{tier=\"{tier}\"}}"));
    // No CLI pass: router-0's job moves everything down, and its gauges agree
    // with the block nodes' own counters once it has.
    let cold = poll_until(Duration::from_secs(120), "background demotion of every chunk", || {
        std::thread::sleep(Duration::from_millis(500));
        let (hot, cold) = tier_bytes(&env);
        let (_, metrics) = http_get(&router, "/metrics").ok()?;
        (hot == 0 && cold > 0 && gauge(&metrics, "cold") == Some(cold as f64) && gauge(&metrics, "hot") == Some(0.0))
            .then_some(cold)
    })
    .unwrap();
    let status = ok_json(&env, &["admin", "status"]);
    let tiers = status["tiers"].as_array().unwrap();
    assert_eq!((tiers[0]["name"].as_str(), tiers[1]["name"].as_str()), (Some("hot"), Some("cold")), "{status}");
    assert_eq!(tiers[0]["nodes"].as_array().unwrap().len(), 6, "{status}");
    assert_eq!(tiers[1]["nodes"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(tiers[1]["bytes"].as_u64(), Some(cold), "{status}");
    assert!(status["last_tier_pass"]["by"].as_str().unwrap().starts_with("router"), "{status}");

    // The console shows the same tiers.
    let url = env["TESSERA_ADMIN_URL"].clone();
    let password: String = env["TESSERA_ADMIN_PASSWORD"]
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = http_request(&url, "POST", "/login", &form, format!("password={password}").as_bytes()).unwrap();
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let overview = http_request(&url, "GET", "/api/overview", &[("Cookie", &cookie)], b"").unwrap();
    let overview: Value = serde_json::from_slice(&overview.body).unwrap();
    assert_eq!(overview["tiering"], "configured", "{overview}");
    assert_eq!(overview["status"]["tiers"][1]["bytes"].as_u64(), Some(cold), "{overview}");
    let page = http_request(&url, "GET", "/", &[("Cookie", &cookie)], b"").unwrap().text();
    assert!(page.contains("<table id=\"tiers\">") && page.contains("<td>cold</td>"), "{page}");

    // A read from the cold tier is promoted by the router that served it.
    read_back(&env, work.path(), &files[1..2]);
    poll_until(Duration::from_secs(30), "promotion after the read", || {
        std::thread::sleep(Duration::from_millis(300));
        let (_, metrics) = http_get(&router, "/metrics").ok()?;
        let promoted = metric(&metrics, "tessera_router_tier_promoted_chunks_total").unwrap_or(0.0);
        (promoted >= 1.0 && cluster.log("router-0").contains("chunks promoted after a read")).then_some(())
    })
    .unwrap();
    read_back(&env, work.path(), &files);
    assert_nothing_lost(&env);
}
