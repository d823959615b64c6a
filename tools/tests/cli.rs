//! The `tessera` CLI against `tessera dev` (a real cluster in one process):
//! round trips, versions and restore, folders, bad input, restart.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::{fails, http_changes, ok_json, start_dev, tessera, user_env, write, BIN};
use tessera_tests::{http_request, poll_until, TestRng};

#[test]
fn cli_round_trips_versions_folders_errors_and_restart() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("cluster");
    let mut dev = start_dev(&data_dir);
    let env = dev.env.clone();
    let mut rng = TestRng::new(5);

    let v1 = rng.bytes(3 << 20);
    let local = write(work.path(), "a.bin", &v1);
    let put = ok_json(&env, &["put", local.to_str().unwrap(), "/docs/a.bin"]);
    assert_eq!(
        (put["path"].as_str(), put["version"].as_u64(), put["size"].as_u64()),
        (Some("/docs/a.bin"), Some(1), Some(v1.len() as u64))
    );
    assert_eq!(put["bytes_transferred"].as_u64(), Some(v1.len() as u64));
    let again = ok_json(&env, &["put", local.to_str().unwrap(), "/docs/copy.bin"]);
    assert_eq!(again["bytes_transferred"].as_u64(), Some(0), "identical content is deduplicated: {again}");
    assert_eq!(again["chunks_deduped"], again["chunks_total"]);

    let out = work.path().join("out.bin");
    ok_json(&env, &["get", "/docs/a.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v1);

    // A second version, then restore the first.
    let mut v2 = v1.clone();
    v2[12345] ^= 1;
    write(work.path(), "a.bin", &v2);
    assert_eq!(ok_json(&env, &["put", local.to_str().unwrap(), "/docs/a.bin"])["version"].as_u64(), Some(2));
    let versions = ok_json(&env, &["versions", "/docs/a.bin"]);
    assert_eq!(
        versions.as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(ok_json(&env, &["restore", "/docs/a.bin", "1"])["version"].as_u64(), Some(3));
    ok_json(&env, &["get", "/docs/a.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v1, "restored content");
    ok_json(&env, &["get", "/docs/a.bin", out.to_str().unwrap(), "--version", "2"]);
    assert_eq!(std::fs::read(&out).unwrap(), v2);

    // Folders: mkdir, move a whole folder, delete.
    ok_json(&env, &["mkdir", "/docs/sub/deeper"]);
    ok_json(&env, &["mv", "/docs", "/archive"]);
    let listing = ok_json(&env, &["ls", "/archive"]);
    let names: Vec<&str> = listing.as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
    assert_eq!(names, vec!["/archive/a.bin", "/archive/copy.bin", "/archive/sub"]);
    ok_json(&env, &["get", "/archive/a.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v1);
    fails(&env, &["get", "/docs/a.bin", out.to_str().unwrap()], "not found");
    ok_json(&env, &["rm", "/archive/copy.bin"]);
    fails(&env, &["stat", "/archive/copy.bin"], "not found");

    // Bad input: one clear line, non-zero exit.
    fails(&env, &["put", "/no/such/file", "/x"], "cannot read /no/such/file");
    fails(&env, &["put", work.path().to_str().unwrap(), "/x"], "is a directory");
    let mut bad = env.clone();
    bad.insert("TESSERA_SECRET_KEY".into(), "wrong-secret-wrong-secret".into());
    fails(&bad, &["ls", "/"], "bad credentials");
    let mut gone = env.clone();
    gone.insert("TESSERA_ENDPOINT".into(), "http://127.0.0.1:1".into());
    fails(&gone, &["ls", "/"], "cannot reach Tessera");

    // Operator view and a second user.
    let status = ok_json(&env, &["admin", "status"]);
    let blocks = status["block_nodes"].as_array().unwrap();
    assert_eq!(blocks.len(), 6);
    assert!(blocks.iter().all(|b| b["up"] == true), "{status}");
    let bob = ok_json(&env, &["admin", "user", "create", "bob"]);
    let mut bob_env = env.clone();
    bob_env.insert("TESSERA_ACCESS_KEY".into(), bob["access_key"].as_str().unwrap().into());
    bob_env.insert("TESSERA_SECRET_KEY".into(), bob["secret_key"].as_str().unwrap().into());
    fails(&bob_env, &["stat", "/archive/a.bin"], "not found");

    // Restart: same addresses, same data.
    assert_eq!(dev.guard.terminate(Duration::from_secs(60)).unwrap(), Some(0));
    let dev2 = start_dev(&data_dir);
    assert_eq!(dev2.env, env, "endpoints and credentials survive a restart");
    ok_json(&env, &["get", "/archive/a.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), v1);
}

#[test]
fn resumable_upload_survives_a_killed_client_and_a_router_restart() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("cluster");
    let mut dev = start_dev(&data_dir);
    let env = dev.env.clone();
    let data = TestRng::new(77).bytes(30 << 20);
    let local = write(work.path(), "big.bin", &data);
    // The client dies after sending two chunks.
    let mut dying = env.clone();
    dying.insert("TESSERA_FAILPOINT_EXIT_AFTER_CHUNKS".into(), "2".into());
    let out = tessera(&dying, &["put", "--resumable", local.to_str().unwrap(), "/big.bin"]);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    fails(&env, &["stat", "/big.bin"], "not found");

    // The whole cluster, router included, restarts; the session is in Raft.
    assert_eq!(dev.guard.terminate(Duration::from_secs(60)).unwrap(), Some(0));
    let _dev = start_dev(&data_dir);
    let r = ok_json(&env, &["put", "--resumable", local.to_str().unwrap(), "/big.bin"]);
    let total = r["chunks_total"].as_u64().unwrap();
    assert!(total >= 4, "{r}");
    assert_eq!(r["chunks_uploaded"].as_u64(), Some(total - 2), "only the missing chunks are sent: {r}");
    assert!(r["bytes_transferred"].as_u64().unwrap() < data.len() as u64);
    let out = work.path().join("back.bin");
    ok_json(&env, &["get", "/big.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), data);

    // Delta sync from the chunk list: one changed byte sends at most two chunks.
    let mut edited = data.clone();
    edited[15 << 20] ^= 0x5A;
    write(work.path(), "big.bin", &edited);
    let r = ok_json(&env, &["put", "--resumable", local.to_str().unwrap(), "/big.bin"]);
    assert!(r["chunks_uploaded"].as_u64().unwrap() <= 2, "{r}");
    assert_eq!(r["version"].as_u64(), Some(2));
    ok_json(&env, &["get", "/big.bin", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), edited);
}

#[test]
fn a_quota_refuses_uploads_past_it_with_a_clear_message_and_admin_shows_usage() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = &dev.env;
    let two_mib = write(work.path(), "two", &vec![5u8; 2 << 20]);
    let other = write(work.path(), "other", &vec![6u8; 2 << 20]);
    ok_json(env, &["admin", "user", "quota", "dev", "5MiB"]);
    ok_json(env, &["put", two_mib.to_str().unwrap(), "/a"]);
    ok_json(env, &["put", other.to_str().unwrap(), "/a"]); // a second version counts too
    fails(env, &["put", two_mib.to_str().unwrap(), "/b"], "quota");
    fails(env, &["stat", "/b"], "not found");
    let shown = ok_json(env, &["admin", "user", "show", "dev"]);
    assert_eq!(shown["usage_bytes"], 4 << 20, "{shown}");
    assert_eq!(shown["quota_bytes"], 5 << 20, "{shown}");
    // Resumable (session) uploads are held to the same quota at commit.
    fails(env, &["put", "--resumable", two_mib.to_str().unwrap(), "/c"], "quota");
    ok_json(env, &["admin", "user", "quota", "dev", "none"]);
    ok_json(env, &["put", two_mib.to_str().unwrap(), "/b"]);
    let shown = ok_json(env, &["admin", "user", "show", "dev"]);
    assert_eq!(shown["usage_bytes"], 6 << 20);
    // /b has /a's first content: logical 6 MiB, 4 MiB of distinct chunks stored.
    assert_eq!(shown["unique_chunk_bytes"], 4 << 20, "{shown}");
    assert_eq!(shown["dedup_savings_bytes"], 2 << 20, "{shown}");
    assert_eq!(shown["versions"], 3, "{shown}");
}

#[test]
fn the_change_feed_pages_filters_the_callers_device_and_long_polls() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = dev.env.clone();
    let f = write(work.path(), "f", b"hello");
    for (path, device) in [("/a", "laptop"), ("/b", "phone"), ("/c", "laptop")] {
        ok_json(&env, &["put", f.to_str().unwrap(), path, "--device", device]);
    }
    let all = ok_json(&env, &["changes"]);
    let events = all["events"].as_array().unwrap();
    let paths: Vec<&str> = events.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/a", "/b", "/c"], "{all}");
    let cursors: Vec<u64> = events.iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursors increase: {cursors:?}");
    assert_eq!(events[0]["kind"], "create");
    assert_eq!(all["has_more"], false);
    // Pages of one, resumed from next_cursor, give the same events once each.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = ok_json(&env, &["changes", "--after", &after.to_string(), "--limit", "1"]);
        paged.extend(page["events"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()));
        after = page["next_cursor"].as_u64().unwrap();
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(paged, ["/a", "/b", "/c"]);
    // The phone does not see its own change.
    let phone = ok_json(&env, &["changes", "--device", "phone"]);
    let seen: Vec<&str> = phone["events"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(seen, ["/a", "/c"]);
    assert_eq!(phone["next_cursor"], all["next_cursor"], "filtered events still move the cursor");
    // With nothing new, a long-poll waits out its time and returns an empty page at the head.
    let head = all["next_cursor"].as_u64().unwrap().to_string();
    let started = std::time::Instant::now();
    let quiet = ok_json(&env, &["changes", "--after", &head, "--wait", "1"]);
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited for news");
    assert_eq!((quiet["events"].as_array().unwrap().len(), quiet["next_cursor"].as_u64()), (0, head.parse().ok()));
    // A long-poll from the head returns with the next change made elsewhere.
    let poller = {
        let env = env.clone();
        std::thread::spawn(move || ok_json(&env, &["changes", "--after", &head, "--wait", "30", "--device", "phone"]))
    };
    ok_json(&env, &["mv", "/a", "/moved"]);
    let news = poller.join().unwrap();
    let moved = &news["events"][0];
    assert_eq!(
        (moved["kind"].as_str(), moved["path"].as_str(), moved["new_path"].as_str()),
        (Some("move"), Some("/a"), Some("/moved")),
        "{news}"
    );
}

#[test]
fn a_followed_change_feed_pushes_other_devices_changes_as_they_commit() {
    use std::io::BufRead;
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = dev.env.clone();
    let mut follower = Command::new(BIN)
        .args(["--json", "changes", "--follow", "--device", "phone"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let f = write(work.path(), "f", b"pushed");
    ok_json(&env, &["put", f.to_str().unwrap(), "/from-laptop", "--device", "laptop"]);
    ok_json(&env, &["put", f.to_str().unwrap(), "/from-phone", "--device", "phone"]);
    ok_json(&env, &["put", f.to_str().unwrap(), "/from-laptop-2", "--device", "laptop"]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the feed pushes each change");
        let page: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.extend(page["events"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, ["/from-laptop", "/from-laptop-2"], "the phone's own change is left out");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn shares_grant_view_edit_and_admin_down_the_tree_until_unshared_or_expired() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let owner = &dev.env; // user "dev"
    let bob = user_env(owner, "bob");
    let carol = user_env(owner, "carol");
    let deep = write(work.path(), "deep", b"three levels below the shared folder");
    let other = write(work.path(), "other", b"not shared");
    let bobs = write(work.path(), "bobs", b"written by bob");
    let back = work.path().join("back");
    let back_s = back.to_str().unwrap();
    ok_json(owner, &["put", deep.to_str().unwrap(), "/proj/a/b/c.txt"]);
    ok_json(owner, &["put", other.to_str().unwrap(), "/other.txt"]);
    fails(&bob, &["--owner", "dev", "get", "/proj/a/b/c.txt", back_s], "permission denied");

    // View: reads anywhere below, nothing outside, no writes.
    let s = ok_json(owner, &["share", "/proj", "bob", "--permission", "view"]);
    assert_eq!((s["grantee"].as_str(), s["permission"].as_str()), (Some("bob"), Some("view")), "{s}");
    let mine = ok_json(&bob, &["shared-with-me"]);
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!((mine[0]["owner"].as_str(), mine[0]["path"].as_str()), (Some("dev"), Some("/proj")));
    ok_json(&bob, &["--owner", "dev", "get", "/proj/a/b/c.txt", back_s]);
    assert_eq!(std::fs::read(&back).unwrap(), b"three levels below the shared folder");
    let listed = ok_json(&bob, &["--owner", "dev", "ls", "/proj/a/b"]);
    assert!(listed.to_string().contains("c.txt"), "{listed}");
    fails(&bob, &["--owner", "dev", "get", "/other.txt", back_s], "permission denied");
    fails(&bob, &["--owner", "dev", "put", bobs.to_str().unwrap(), "/proj/new.txt"], "permission denied");
    fails(owner, &["stat", "/proj/new.txt"], "not found");
    fails(&bob, &["--owner", "dev", "rm", "/proj/a/b/c.txt"], "permission denied");

    // Edit: writes land in the owner's tree; resharing still needs admin.
    ok_json(owner, &["share", "/proj", "bob", "--permission", "edit"]);
    ok_json(&bob, &["--owner", "dev", "put", bobs.to_str().unwrap(), "/proj/a/new.txt"]);
    ok_json(owner, &["get", "/proj/a/new.txt", back_s]);
    assert_eq!(std::fs::read(&back).unwrap(), b"written by bob");
    let history = ok_json(owner, &["versions", "/proj/a/new.txt"]);
    assert_eq!(history[0]["created_by"], "bob", "the owner's history says who wrote it: {history}");
    fails(&bob, &["--owner", "dev", "share", "/proj/a", "carol"], "permission denied");
    // Resumable uploads land in the owner's tree too, never in bob's own files
    // (more in tests/sharing.rs).
    ok_json(&bob, &["--owner", "dev", "put", "--resumable", bobs.to_str().unwrap(), "/proj/r.txt"]);
    fails(&bob, &["stat", "/proj/r.txt"], "not found");
    ok_json(owner, &["get", "/proj/r.txt", back_s]);
    assert_eq!(std::fs::read(&back).unwrap(), b"written by bob");
    let listed = ok_json(owner, &["shares", "/proj"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["permission"], "edit", "re-sharing replaces the permission");

    // Admin: bob reshares a subfolder with carol.
    ok_json(owner, &["share", "/proj", "bob", "--permission", "admin"]);
    ok_json(&bob, &["--owner", "dev", "share", "/proj/a", "carol"]);
    ok_json(&carol, &["--owner", "dev", "get", "/proj/a/b/c.txt", back_s]);
    fails(&carol, &["--owner", "dev", "ls", "/proj"], "permission denied");

    // Expiry stops a share at once; so does unsharing.
    ok_json(owner, &["share", "/other.txt", "carol", "--expires", "2s"]);
    ok_json(&carol, &["--owner", "dev", "get", "/other.txt", back_s]);
    poll_until(Duration::from_secs(15), "the share to expire", || {
        (!tessera(&carol, &["--owner", "dev", "get", "/other.txt", back_s]).status.success()).then_some(())
    })
    .unwrap();
    fails(&carol, &["--owner", "dev", "get", "/other.txt", back_s], "permission denied");
    ok_json(owner, &["unshare", "/proj", "bob"]);
    fails(&bob, &["--owner", "dev", "get", "/proj/a/b/c.txt", back_s], "permission denied");
    assert_eq!(ok_json(&bob, &["shared-with-me"]), serde_json::json!([]));
    let bad = tessera(owner, &["share", "/proj", "bob", "--permission", "owner"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("invalid value"));
}

/// `tessera link create ...` with `stdin` fed to it; the link's (url path, token).
fn create_link(env: &HashMap<String, String>, args: &[&str], stdin: Option<&str>) -> (String, String) {
    use std::io::Write;
    let mut all = vec!["--json", "link", "create"];
    all.extend_from_slice(args);
    let mut child = Command::new(BIN)
        .args(&all)
        .envs(env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "link create: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let url = v["url"].as_str().unwrap();
    let path = url.strip_prefix(env["TESSERA_ENDPOINT"].as_str()).unwrap().to_owned();
    (path, v["token"].as_str().unwrap().to_owned())
}

#[test]
fn links_serve_pages_and_bytes_with_ranges_passwords_expiry_and_revocation() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = &dev.env;
    let at = env["TESSERA_ENDPOINT"].as_str();
    let data = TestRng::new(8).bytes(300_000);
    ok_json(env, &["put", write(work.path(), "r", &data).to_str().unwrap(), "/pub/report.bin"]);
    ok_json(env, &["put", write(work.path(), "n", b"notes").to_str().unwrap(), "/pub/sub/notes.txt"]);
    let html = [("Accept", "text/html,application/xhtml+xml")];

    // A file link: curl gets the bytes (and ranges), a browser a page.
    let (file, token) = create_link(env, &["/pub/report.bin"], None);
    assert_eq!(token.len(), 64, "256-bit token");
    let got = http_request(at, "GET", &file, &[], b"").unwrap();
    assert_eq!(got.status, 200);
    assert!(got.body == data, "the link serves the file's bytes");
    assert_eq!(got.header("content-length"), Some("300000"));
    let part = http_request(at, "GET", &file, &[("Range", "bytes=100-199")], b"").unwrap();
    assert_eq!(part.status, 206);
    assert!(part.body == data[100..200]);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/300000"));
    let tail = http_request(at, "GET", &file, &[("Range", "bytes=-10")], b"").unwrap();
    assert!(tail.status == 206 && tail.body == data[data.len() - 10..]);
    assert_eq!(http_request(at, "GET", &file, &[("Range", "bytes=400000-")], b"").unwrap().status, 416);
    let page = http_request(at, "GET", &file, &html, b"").unwrap();
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("report.bin") && text.contains("300000 bytes") && text.contains("Download"), "{text}");
    let download = http_request(at, "POST", &format!("{file}/raw"), &[], b"").unwrap();
    assert!(download.status == 200 && download.body == data, "the page's download button");

    // A folder link: a listing, files below it, nothing above it.
    let (folder, _) = create_link(env, &["/pub"], None);
    let listing = http_request(at, "GET", &folder, &html, b"").unwrap().text();
    assert!(listing.contains("report.bin") && listing.contains("sub/"), "{listing}");
    let notes = http_request(at, "GET", &format!("{folder}/raw?path=sub/notes.txt"), &[], b"").unwrap();
    assert!(notes.status == 200 && notes.body == b"notes");
    assert_eq!(http_request(at, "GET", &format!("{folder}/raw?path=../pub"), &[], b"").unwrap().status, 404);

    // Password: missing or wrong → 401; five wrong → every attempt 429 for a while.
    let (locked, _) = create_link(env, &["/pub/report.bin", "--password"], Some("s3cret pass\n"));
    assert_eq!(http_request(at, "GET", &locked, &[], b"").unwrap().status, 401);
    let form = http_request(at, "GET", &locked, &html, b"").unwrap();
    assert!(form.status == 200 && form.text().contains("type=\"password\""), "a password form");
    let right = http_request(at, "POST", &locked, &html, b"password=s3cret+pass").unwrap();
    assert!(right.status == 200 && right.text().contains("Download"), "the right password opens the page");
    let with_header = http_request(at, "GET", &locked, &[("x-tessera-link-password", "s3cret pass")], b"").unwrap();
    assert!(with_header.status == 200 && with_header.body == data);
    for _ in 0..5 {
        let wrong = http_request(at, "GET", &locked, &[("x-tessera-link-password", "guess")], b"").unwrap();
        assert_eq!(wrong.status, 401);
    }
    let blocked = http_request(at, "GET", &locked, &[("x-tessera-link-password", "s3cret pass")], b"").unwrap();
    assert_eq!(blocked.status, 429, "rate-limited after five wrong passwords, right one included");
    assert!(blocked.header("retry-after").is_some());
    assert_eq!(http_request(at, "GET", &file, &[], b"").unwrap().status, 200, "other links are not affected");

    // Expired → 410; revoked and unknown → the same 404.
    let (short, _) = create_link(env, &["/pub/report.bin", "--expires", "1s"], None);
    poll_until(Duration::from_secs(10), "the link to expire", || {
        (http_request(at, "GET", &short, &[], b"").unwrap().status == 410).then_some(())
    })
    .unwrap();
    assert!(ok_json(env, &["link", "ls", "/pub/report.bin"]).as_array().unwrap().len() >= 3);
    ok_json(env, &["link", "rm", &token]);
    let revoked = http_request(at, "GET", &file, &[], b"").unwrap();
    let unknown = http_request(at, "GET", &format!("/l/{}", "ab".repeat(32)), &[], b"").unwrap();
    assert_eq!((revoked.status, unknown.status), (404, 404));
    assert_eq!(revoked.body, unknown.body, "a revoked link tells nothing more than an unknown one");
    assert_eq!(http_request(at, "GET", "/l/not-hex", &[], b"").unwrap().status, 404);
}

#[test]
fn the_change_feed_is_served_as_json_over_http_with_long_polls() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = dev.env.clone();
    let unsigned = http_request(&env["TESSERA_ENDPOINT"], "GET", "/v1/changes?after=0", &[], b"").unwrap();
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());
    let mut forged = env.clone();
    forged.insert("TESSERA_SECRET_KEY".into(), "not-the-secret-at-all".into());
    assert_eq!(http_changes(&forged, "after=0").status, 401);
    assert_eq!(http_changes(&env, "after=zero").status, 400);

    ok_json(&env, &["put", write(work.path(), "a", b"a").to_str().unwrap(), "/web/a.txt"]);
    let page = http_changes(&env, "after=0");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(page.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    let events = v["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["path"] == "/web/a.txt"), "{v}");
    let head = v["next_cursor"].as_u64().unwrap();

    // A long-poll returns when the next change commits, with that change.
    let waiter = {
        let env = env.clone();
        std::thread::spawn(move || http_changes(&env, &format!("after={head}&wait_ms=20000")))
    };
    std::thread::sleep(Duration::from_millis(300));
    ok_json(&env, &["put", write(work.path(), "b", b"b").to_str().unwrap(), "/web/b.txt"]);
    let woke = waiter.join().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&woke.body).unwrap();
    assert!(v["events"].as_array().unwrap().iter().any(|e| e["path"] == "/web/b.txt"), "{v}");
    assert!(v["next_cursor"].as_u64().unwrap() > head);
}
