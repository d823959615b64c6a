//! The operator console of a `tessera cluster up` cluster (router-0's admin
//! port): refused without or with a wrong password (401, then 429 after repeated
//! failures), its overview shows the numbers `tessera admin status --json` and
//! `tessera admin user show` report, and its "Start GC pass" form (with the
//! session's CSRF token, refused without it) runs a pass that finishes and is the
//! record `tessera admin gc status --json` shows; its "Start repair pass" runs a
//! repair recorded as the latest one.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tessera_tests::local_cluster::LocalCluster;
use tessera_tests::{http_get, http_request, poll_until, HttpResponse};

fn ok_json(cluster: &LocalCluster, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = cluster.tessera_ok(&all).unwrap();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn form(url: &str, path: &str, cookie: Option<&str>, body: &str) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("Cookie", c));
    }
    http_request(url, "POST", path, &headers, body.as_bytes()).unwrap()
}

fn get(url: &str, path: &str, cookie: &str) -> HttpResponse {
    http_request(url, "GET", path, &[("Cookie", cookie)], b"").unwrap()
}

fn overview(url: &str, cookie: &str) -> Value {
    let r = get(url, "/api/overview", cookie);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[test]
fn the_console_needs_the_password_shows_status_numbers_and_runs_gc_from_its_button() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &["--repair-interval", "0", "--gc-interval", "0"]).unwrap();
    let env: &HashMap<String, String> = &cluster.env;
    let url = env.get("TESSERA_ADMIN_URL").expect("TESSERA_ADMIN_URL in DIR/env").clone();
    let password = env.get("TESSERA_ADMIN_PASSWORD").expect("TESSERA_ADMIN_PASSWORD in DIR/env").clone();

    // Something to count: a file of the default user, a second user with a quota,
    // and a repair pass so under-replicated chunks are known.
    let local = work.path().join("f.bin");
    std::fs::write(&local, vec![7u8; 3_000_000]).unwrap();
    cluster.tessera_ok(&["put", local.to_str().unwrap(), "/docs/f.bin"]).unwrap();
    ok_json(&cluster, &["admin", "user", "create", "bob<&>"]);
    ok_json(&cluster, &["admin", "user", "quota", "bob<&>", "5GiB"]);
    ok_json(&cluster, &["admin", "repair", "--no-scrub"]);

    // No session, or a wrong password: 401.
    assert_eq!(http_get(&url, "/").unwrap().0, 401);
    assert_eq!(http_get(&url, "/api/overview").unwrap().0, 401);
    assert_eq!(http_get(&url, "/users").unwrap().0, 401);
    assert_eq!(form(&url, "/actions/gc", None, "csrf=x").status, 401);
    assert_eq!(form(&url, "/login", None, "password=not-the-password").status, 401);
    assert_eq!(get(&url, "/", "tessera_console=forged").status, 401);

    let login = form(&url, "/login", None, &format!("password={}", encode(&password)));
    assert_eq!(login.status, 303, "{}", login.text());
    let set_cookie = login.header("set-cookie").expect("a session cookie").to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    // The overview's numbers are the CLI's.
    let console = overview(&url, &cookie);
    let status = cluster.status().unwrap();
    let (c, s) = (&console["status"]["summary"], &status["summary"]);
    for key in [
        "meta_nodes_up",
        "meta_nodes_down",
        "block_nodes_up",
        "block_nodes_down",
        "fragment_bytes",
        "disk_total_bytes",
        "under_replicated_chunks",
        "leaders",
    ] {
        assert_eq!(c[key], s[key], "{key}: console {console} vs status {status}");
    }
    assert_eq!(c["meta_nodes_up"], 3);
    assert_eq!(c["block_nodes_up"], 6);
    assert!(c["fragment_bytes"].as_u64().unwrap() > 3_000_000, "{c}");
    assert_eq!(c["under_replicated_chunks"], 0);
    assert_eq!(console["status"]["block_nodes"].as_array().unwrap().len(), 6);
    assert_eq!(console["status"]["shards"], status["shards"]);
    assert_eq!(console["tiering"], "not configured");
    let users = console["users"].as_array().unwrap();
    assert_eq!(users.len(), 2, "{users:?}");
    for u in users {
        let name = u["user_id"].as_str().unwrap();
        let shown = ok_json(&cluster, &["admin", "user", "show", name]);
        assert_eq!(u["usage_bytes"], shown["usage_bytes"], "{name}");
        assert_eq!(u["quota_bytes"], shown["quota_bytes"], "{name}");
    }
    assert!(users.iter().any(|u| u["user_id"] == "dev" && u["usage_bytes"] == 3_000_000));
    assert!(users.iter().any(|u| u["user_id"] == "bob<&>" && u["quota_bytes"] == 5u64 << 30));

    // The pages show the same, escaped.
    let page = get(&url, "/", &cookie).text();
    assert!(page.contains("<span id=\"block-up\">6</span>"), "{page}");
    assert!(page.contains("tiering: not configured"));
    // No external assets: no scripts, no links or sources off the console.
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href=\"http"), "{page}");
    let users_page = get(&url, "/users", &cookie).text();
    assert!(users_page.contains("bob&lt;&amp;&gt;") && !users_page.contains("bob<&>"), "{users_page}");
    assert_eq!(get(&url, "/errors", &cookie).status, 200);

    // The GC button: refused with a forged token, started with the page's.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF token in the page")
        .to_owned();
    assert_eq!(form(&url, "/actions/gc", Some(&cookie), "csrf=forged").status, 403);
    let started = form(&url, "/actions/gc", Some(&cookie), &format!("csrf={csrf}"));
    assert_eq!(started.status, 303, "{}", started.text());
    let finished = poll_until(Duration::from_secs(120), "the console's GC pass to finish", || {
        let o = overview(&url, &cookie);
        let last = &o["console_jobs"]["last"];
        (o["console_jobs"]["running"].is_null() && last["kind"] == "gc" && last["finished_at_ms"].is_i64()).then(|| o)
    })
    .unwrap();
    assert!(finished["console_jobs"]["last"]["error"].is_null(), "{finished}");
    let record = ok_json(&cluster, &["admin", "gc", "status"]);
    assert_eq!(record["phase"], "done", "{record}");
    assert!(record["by"].as_str().unwrap().starts_with("console of router"), "{record}");
    assert!(
        record["finished_at_ms"].as_i64().unwrap()
            >= finished["console_jobs"]["last"]["started_at_ms"].as_i64().unwrap()
    );
    assert_eq!(finished["status"]["last_gc"], record, "the overview shows the recorded pass");
    let page = get(&url, "/", &cookie).text();
    assert!(page.contains("data-state=\"finished\""), "{page}");

    // The repair button: a scrub-and-repair pass in this router, recorded as the
    // latest repair like the CLI's.
    let started = form(&url, "/actions/repair", Some(&cookie), &format!("csrf={csrf}"));
    assert_eq!(started.status, 303, "{}", started.text());
    let repaired = poll_until(Duration::from_secs(120), "the console's repair pass to finish", || {
        let o = overview(&url, &cookie);
        let last = &o["console_jobs"]["last"];
        (o["console_jobs"]["running"].is_null() && last["kind"] == "repair" && last["finished_at_ms"].is_i64())
            .then(|| o)
    })
    .unwrap();
    assert!(repaired["console_jobs"]["last"]["error"].is_null(), "{repaired}");
    let status = cluster.status().unwrap();
    assert!(status["last_repair"]["by"].as_str().unwrap().starts_with("console of router"), "{status}");
    assert_eq!(status["last_repair"]["chunks_lost"], 0, "{status}");
    assert_eq!(repaired["status"]["last_repair"], status["last_repair"], "the overview shows the recorded pass");

    // Logins are counted on the router's /metrics.
    let router = cluster.address("router", "router-0").unwrap();
    let (_, metrics) = http_get(&router, "/metrics").unwrap();
    assert!(metrics.contains("tessera_router_console_logins_total{outcome=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("tessera_router_console_logins_total{outcome=\"failed\"} 1"), "{metrics}");

    // Repeated wrong passwords: 401 until the limit, then 429 even for the right one.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(form(&url, "/login", None, "password=wrong").status);
    }
    assert_eq!(codes, [401, 401, 401, 401, 429], "the first wrong try counted too");
    assert_eq!(form(&url, "/login", None, &format!("password={}", encode(&password))).status, 429);
    // The session made before still works.
    assert_eq!(get(&url, "/", &cookie).status, 200);
}
