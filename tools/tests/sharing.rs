//! Sharing beyond plain file calls, against `tessera dev`: a grantee's change feed of
//! the owner's shared items (CLI, long-poll, follow, HTTP), resumable uploads and
//! restores on shared paths, and uploads through edit links (PUT and the page's form).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{command, fails, http_changes, ok_json, read_back, start_dev, user_env, write};
use sha2::{Digest, Sha256};
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;
use tessera_tests::{http_request, poll_until, TestRng};
use tonic::Code;

fn events(page: &serde_json::Value) -> Vec<(u64, String, String)> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["cursor"].as_u64().unwrap(), e["kind"].as_str().unwrap().into(), e["path"].as_str().unwrap().into())
        })
        .collect()
}

#[test]
fn a_grantee_follows_the_owners_feed_of_shared_items_until_unshared() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let owner = &dev.env; // user "dev"
    let bob = user_env(owner, "bob");
    let carol = user_env(owner, "carol");
    let f = write(work.path(), "f", b"some bytes");
    let f = f.to_str().unwrap();
    ok_json(owner, &["put", f, "/proj/a.txt"]);
    ok_json(owner, &["put", f, "/other.txt"]);
    fails(&bob, &["--owner", "dev", "changes"], "permission denied");

    ok_json(owner, &["share", "/proj", "bob", "--permission", "view"]);
    ok_json(owner, &["put", f, "/proj/sub/b.txt"]);
    ok_json(owner, &["put", f, "/secret/c.txt"]);
    ok_json(owner, &["share", "/other.txt", "carol"]); // about carol: not bob's business
    ok_json(owner, &["mv", "/proj/a.txt", "/proj/a2.txt"]);
    ok_json(owner, &["mv", "/other.txt", "/proj/moved-in.txt"]); // into the shared folder
    let head = ok_json(owner, &["changes", "--limit", "1000"])["next_cursor"].as_u64().unwrap();

    let page = ok_json(&bob, &["--owner", "dev", "changes", "--limit", "1000"]);
    let seen = events(&page);
    let paths: Vec<&str> = seen.iter().map(|(_, _, p)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/proj", "/proj/a.txt", "/proj", "/proj/sub", "/proj/sub/b.txt", "/proj/a.txt", "/other.txt"],
        "{page}"
    );
    assert_eq!(seen[2].1, "share", "bob's own share shows; carol's does not: {page}");
    assert_eq!(page["events"][2]["peer"], "bob");
    assert_eq!(page["events"][6]["new_path"], "/proj/moved-in.txt");
    assert!(!page.to_string().contains("/secret"), "nothing outside the share: {page}");
    assert_eq!(page["next_cursor"].as_u64(), Some(head), "the owner's cursors, past hidden events");
    assert_eq!(page["head_cursor"].as_u64(), Some(head));
    assert_eq!(page["has_more"], false);

    // Pages of one: the same events, once each, in cursor order.
    let (mut after, mut paged) = (0u64, Vec::new());
    loop {
        let p = ok_json(&bob, &["--owner", "dev", "changes", "--after", &after.to_string(), "--limit", "1"]);
        paged.extend(events(&p));
        let next = p["next_cursor"].as_u64().unwrap();
        assert!(next >= after);
        after = next;
        if p["has_more"] == false {
            break;
        }
    }
    assert_eq!(paged, seen, "paging never repeats or skips a visible event");
    assert_eq!(after, head);

    // A long-poll waits through changes bob may not see and wakes for one he may.
    let poller = {
        let bob = bob.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let page = ok_json(&bob, &["--owner", "dev", "changes", "--after", &head.to_string(), "--wait", "30"]);
            (page, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    ok_json(owner, &["put", f, "/secret/d.txt"]);
    std::thread::sleep(Duration::from_millis(1000));
    ok_json(owner, &["put", f, "/proj/late.txt"]);
    let (woke, waited) = poller.join().unwrap();
    let late: Vec<String> = events(&woke).into_iter().map(|(_, _, p)| p).collect();
    assert_eq!(late, ["/proj/late.txt"], "{woke}");
    assert!(waited >= Duration::from_millis(2400), "it did not answer on the hidden change ({waited:?})");

    // Over HTTP: owner= selects the feed, the signed caller's shares decide.
    let over_http = http_changes(&bob, "after=0&limit=1000&owner=dev");
    assert_eq!(over_http.status, 200, "{}", over_http.text());
    let v: serde_json::Value = serde_json::from_slice(&over_http.body).unwrap();
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["path"].as_str().unwrap().starts_with("/proj") || e["path"] == "/other.txt"));
    assert!(v["events"].as_array().unwrap().iter().any(|e| e["path"] == "/proj/late.txt"), "{v}");
    assert!(v["head_cursor"].as_u64().unwrap() > head);
    assert_eq!(http_changes(&carol, "after=0&owner=dev").status, 200, "carol has /proj/moved-in.txt");
    let dave = user_env(owner, "dave");
    assert_eq!(http_changes(&dave, "after=0&owner=dev").status, 403);

    // A followed feed ends with PERMISSION_DENIED as soon as the share goes.
    let mut follower =
        command(&bob, &["--json", "--owner", "dev", "changes", "--follow", "--after", &head.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first: serde_json::Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert!(first.to_string().contains("/proj/late.txt"), "{first}");
    ok_json(owner, &["unshare", "/proj", "bob"]);
    let status = poll_until(Duration::from_secs(20), "the follower to stop", || follower.try_wait().unwrap()).unwrap();
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut follower.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("permission denied"), "{err}");
    fails(&bob, &["--owner", "dev", "changes"], "permission denied");
    assert_eq!(http_changes(&bob, "after=0&owner=dev").status, 403);
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Opens a one-chunk session for `data` at `path` (small data is one chunk).
async fn open_session(c: &TesseraClient, id: [u8; 16], path: &str, data: &[u8]) -> Result<pb::SessionStatus, Code> {
    let req = pb::OpenSessionRequest {
        session_id: Bytes::copy_from_slice(&id),
        path: path.into(),
        chunks: vec![pb::SessionChunk { hash: Bytes::copy_from_slice(&sha(data)), size: data.len() as u64 }],
        base_version: None,
        device_id: "raw".into(),
    };
    c.raw().open_session(req).await.map(|r| r.into_inner()).map_err(|s| s.code())
}

async fn put_chunk(c: &TesseraClient, id: [u8; 16], data: &[u8]) -> Result<pb::SessionStatus, Code> {
    let header = pb::PutChunkRequest {
        part: Some(pb::put_chunk_request::Part::Header(pb::PutChunkHeader {
            session_id: Bytes::copy_from_slice(&id),
            hash: Bytes::copy_from_slice(&sha(data)),
        })),
    };
    let body = pb::PutChunkRequest { part: Some(pb::put_chunk_request::Part::Data(Bytes::copy_from_slice(data))) };
    c.raw().put_chunk(futures::stream::iter([header, body])).await.map(|r| r.into_inner()).map_err(|s| s.code())
}

async fn commit_session(c: &TesseraClient, id: [u8; 16], data: &[u8]) -> Result<pb::PutResponse, Code> {
    let req = pb::CommitSessionRequest {
        session_id: Bytes::copy_from_slice(&id),
        content_sha256: Bytes::copy_from_slice(&sha(data)),
        on_conflict: 0,
    };
    c.raw().commit_session(req).await.map(|r| r.into_inner()).map_err(|s| s.code())
}

#[test]
fn grantees_upload_resumably_and_restore_on_paths_shared_for_edit() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let owner = &dev.env;
    let bob = user_env(owner, "bob"); // edit
    let carol = user_env(owner, "carol"); // view
    let v1 = write(work.path(), "v1", b"first words");
    ok_json(owner, &["put", v1.to_str().unwrap(), "/team/doc.txt"]);
    ok_json(owner, &["put", write(work.path(), "v2", b"second words").to_str().unwrap(), "/team/doc.txt"]);
    ok_json(owner, &["share", "/team", "bob", "--permission", "edit"]);
    ok_json(owner, &["share", "/team", "carol", "--permission", "view"]);

    // A resumable upload into the shared folder, interrupted and resumed.
    let data = TestRng::new(31).bytes(14 << 20);
    let local = write(work.path(), "big.bin", &data);
    let local = local.to_str().unwrap();
    let out = command(&bob, &["--owner", "dev", "put", "--resumable", local, "/team/big.bin"])
        .env("TESSERA_FAILPOINT_EXIT_AFTER_CHUNKS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    fails(owner, &["stat", "/team/big.bin"], "not found");
    let r = ok_json(&bob, &["--owner", "dev", "put", "--resumable", local, "/team/big.bin"]);
    let total = r["chunks_total"].as_u64().unwrap();
    assert!(total >= 2, "{r}");
    assert_eq!(r["chunks_uploaded"].as_u64(), Some(total - 1), "the session was found in the owner's files: {r}");
    assert!(read_back(owner, work.path(), "/team/big.bin") == data, "the owner reads bob's bytes");
    let history = ok_json(owner, &["versions", "/team/big.bin"]);
    assert_eq!(history[0]["created_by"], "bob", "{history}");
    fails(&bob, &["stat", "/team/big.bin"], "not found"); // not in bob's own files

    // Restore by the grantee: a new version with the old content, written by bob.
    let restored = ok_json(&bob, &["--owner", "dev", "restore", "/team/doc.txt", "1"]);
    assert_eq!(restored["version"].as_u64(), Some(3), "{restored}");
    assert_eq!(read_back(owner, work.path(), "/team/doc.txt"), b"first words");
    assert_eq!(ok_json(owner, &["versions", "/team/doc.txt"])[0]["created_by"], "bob");

    // View only: refused, nothing written.
    fails(&carol, &["--owner", "dev", "put", "--resumable", local, "/team/carol.bin"], "permission denied");
    fails(owner, &["stat", "/team/carol.bin"], "not found");
    fails(&carol, &["--owner", "dev", "restore", "/team/doc.txt", "2"], "permission denied");
    assert_eq!(ok_json(owner, &["versions", "/team/doc.txt"]).as_array().unwrap().len(), 3);
    fails(&bob, &["--owner", "dev", "put", "--resumable", local, "/elsewhere.bin"], "permission denied");

    // Session calls carry only the session id: they are checked on the session's path.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let at = &owner["TESSERA_ENDPOINT"];
        let as_user = |env: &HashMap<String, String>| {
            let (k, s) = (env["TESSERA_ACCESS_KEY"].clone(), env["TESSERA_SECRET_KEY"].clone());
            async move { TesseraClient::connect_for(at, &k, &s, Some("dev")).await.unwrap() }
        };
        let (bob_c, carol_c) = (as_user(&bob).await, as_user(&carol).await);
        let small = b"a small file bob sends by session".to_vec();
        let id = [7u8; 16];
        assert_eq!(open_session(&carol_c, id, "/team/s.txt", &small).await.err(), Some(Code::PermissionDenied));
        let opened = open_session(&bob_c, id, "/team/s.txt", &small).await.unwrap();
        assert_eq!(opened.missing.len(), 1);
        let sref = pb::SessionRef { session_id: Bytes::copy_from_slice(&id) };
        let denied = Some(Code::PermissionDenied);
        assert_eq!(carol_c.raw().get_session(sref.clone()).await.err().map(|s| s.code()), denied);
        assert_eq!(put_chunk(&carol_c, id, &small).await.err(), denied);
        assert_eq!(commit_session(&carol_c, id, &small).await.err(), denied);
        assert_eq!(carol_c.raw().abort_session(sref.clone()).await.err().map(|s| s.code()), denied);
        assert!(put_chunk(&bob_c, id, &small).await.unwrap().missing.is_empty());
        assert_eq!(bob_c.raw().get_session(sref.clone()).await.unwrap().into_inner().chunks_total, 1);
        let done = commit_session(&bob_c, id, &small).await.unwrap();
        assert_eq!(done.path, "/team/s.txt");

        // Access is checked again when the session commits.
        let other = b"a second file, committed after the share shrank".to_vec();
        let id2 = [8u8; 16];
        open_session(&bob_c, id2, "/team/t.txt", &other).await.unwrap();
        put_chunk(&bob_c, id2, &other).await.unwrap();
        ok_json(owner, &["share", "/team", "bob", "--permission", "view"]);
        assert_eq!(commit_session(&bob_c, id2, &other).await.err(), Some(Code::PermissionDenied));
    });
    assert_eq!(read_back(owner, work.path(), "/team/s.txt"), b"a small file bob sends by session");
    fails(owner, &["stat", "/team/t.txt"], "not found");
}

/// `tessera link create ARGS` (stdin for --password); the link's URL path.
fn create_link(env: &HashMap<String, String>, args: &[&str], stdin: Option<&str>) -> String {
    let mut all = vec!["--json", "link", "create"];
    all.extend_from_slice(args);
    let mut child =
        command(env, &all).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "link create: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["url"].as_str().unwrap().strip_prefix(env["TESSERA_ENDPOINT"].as_str()).unwrap().to_owned()
}

/// A multipart/form-data body as a browser sends it: (name, filename, content) parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----TesseraTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes())
            }
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn edit_links_to_a_folder_take_uploads_by_put_and_by_the_pages_form() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let env = &dev.env;
    let at = env["TESSERA_ENDPOINT"].as_str();
    let html = ("Accept", "text/html,application/xhtml+xml");
    ok_json(env, &["put", write(work.path(), "e", b"old content").to_str().unwrap(), "/drop/existing.txt"]);
    ok_json(env, &["put", write(work.path(), "s", b"private").to_str().unwrap(), "/private.txt"]);
    let edit = create_link(env, &["/drop", "--permission", "edit"], None);
    let view = create_link(env, &["/drop"], None);

    // PUT: the bytes read back identical; subfolders are made; versions say "link".
    let data = TestRng::new(3).bytes((9 << 20) + 12345);
    let put = http_request(at, "PUT", &format!("{edit}/new.bin"), &[], &data).unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    let v: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["version"].as_u64(), v["size"].as_u64()),
        (Some("new.bin"), Some(1), Some(data.len() as u64))
    );
    assert!(read_back(env, work.path(), "/drop/new.bin") == data, "the bytes through the link, exactly");
    let history = ok_json(env, &["versions", "/drop/new.bin"]);
    assert_eq!(
        (history[0]["device"].as_str(), history[0]["created_by"].as_str()),
        (Some("link"), Some("dev")),
        "{history}"
    );
    let deep = http_request(at, "PUT", &format!("{edit}/sub%20dir/deep/x.txt"), &[], b"deep down").unwrap();
    assert_eq!(deep.status, 201, "{}", deep.text());
    assert_eq!(read_back(env, work.path(), "/drop/sub dir/deep/x.txt"), b"deep down");
    // An existing name gets a new version: last writer wins, the old one stays.
    let again = http_request(at, "PUT", &format!("{edit}/existing.txt"), &[], b"new content").unwrap();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(read_back(env, work.path(), "/drop/existing.txt"), b"new content");
    assert_eq!(ok_json(env, &["versions", "/drop/existing.txt"]).as_array().unwrap().len(), 2);
    // Nothing outside the folder.
    for bad in ["../escape.txt", "a/%2e%2e/%2e%2e/escape.txt", "a/./b", "a//b"] {
        let r = http_request(at, "PUT", &format!("{edit}/{bad}"), &[], b"x").unwrap();
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    fails(env, &["stat", "/escape.txt"], "not found");
    assert_eq!(read_back(env, work.path(), "/private.txt"), b"private");
    // A view link refuses writes.
    assert_eq!(http_request(at, "PUT", &format!("{view}/v.txt"), &[], b"x").unwrap().status, 403);
    fails(env, &["stat", "/drop/v.txt"], "not found");

    // Passwords: as for reads, with the same rate limit.
    let locked = create_link(env, &["/drop", "--permission", "edit", "--password"], Some("open sesame\n"));
    assert_eq!(http_request(at, "PUT", &format!("{locked}/p.txt"), &[], b"x").unwrap().status, 401);
    let pw = ("x-tessera-link-password", "open sesame");
    let ok = http_request(at, "PUT", &format!("{locked}/p.txt"), &[pw], b"with the password").unwrap();
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(read_back(env, work.path(), "/drop/p.txt"), b"with the password");
    // The page: an upload form for edit links only.
    let page = http_request(at, "GET", &edit, &[html], b"").unwrap().text();
    assert!(page.contains("enctype=\"multipart/form-data\"") && page.contains("type=\"file\""), "{page}");
    assert!(!http_request(at, "GET", &view, &[html], b"").unwrap().text().contains("type=\"file\""));

    // The form: stored, then back to the listing.
    let form_bytes = TestRng::new(4).bytes(200_000);
    let (ct, body) = multipart(&[("file", Some("form.bin"), &form_bytes)]);
    let posted = http_request(at, "POST", &edit, &[html, ("Content-Type", &ct)], &body).unwrap();
    assert_eq!(posted.status, 303, "{}", posted.text());
    assert_eq!(posted.header("location"), Some(edit.as_str()));
    assert!(read_back(env, work.path(), "/drop/form.bin") == form_bytes);
    let listing = http_request(at, "GET", &edit, &[html], b"").unwrap().text();
    assert!(listing.contains("form.bin"), "{listing}");
    // Into a subfolder (the page's hidden path field), two files at once.
    let (ct, body) =
        multipart(&[("path", None, b"sub dir"), ("file", Some("one.txt"), b"one"), ("file", Some("two.txt"), b"two")]);
    let posted = http_request(at, "POST", &edit, &[html, ("Content-Type", &ct)], &body).unwrap();
    assert_eq!(posted.status, 303, "{}", posted.text());
    assert_eq!(posted.header("location").map(str::to_owned), Some(format!("{edit}?path=sub+dir")));
    assert_eq!(read_back(env, work.path(), "/drop/sub dir/one.txt"), b"one");
    assert_eq!(read_back(env, work.path(), "/drop/sub dir/two.txt"), b"two");
    // A password link: the password field first; the listing comes back as the answer.
    let (ct, body) =
        multipart(&[("password", None, b"open sesame"), ("file", Some("secret.txt"), b"behind a password")]);
    let posted = http_request(at, "POST", &locked, &[html, ("Content-Type", &ct)], &body).unwrap();
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert!(posted.text().contains("Uploaded secret.txt") && posted.text().contains("existing.txt"));
    assert_eq!(read_back(env, work.path(), "/drop/secret.txt"), b"behind a password");
    let (ct, body) = multipart(&[("password", None, b"wrong"), ("file", Some("nope.txt"), b"x")]);
    assert_eq!(http_request(at, "POST", &locked, &[html, ("Content-Type", &ct)], &body).unwrap().status, 401);
    fails(env, &["stat", "/drop/nope.txt"], "not found");
    let (ct, body) = multipart(&[("file", Some("viewer.txt"), b"x")]);
    assert_eq!(http_request(at, "POST", &view, &[html, ("Content-Type", &ct)], &body).unwrap().status, 403);
    fails(env, &["stat", "/drop/viewer.txt"], "not found");
    for _ in 0..4 {
        let wrong = http_request(at, "PUT", &format!("{locked}/w.txt"), &[("x-tessera-link-password", "guess")], b"x");
        assert_eq!(wrong.unwrap().status, 401);
    }
    let blocked = http_request(at, "PUT", &format!("{locked}/w.txt"), &[pw], b"x").unwrap();
    assert_eq!(blocked.status, 429, "five wrong passwords (one by the form) block the link");
    fails(env, &["stat", "/drop/w.txt"], "not found");

    // Revoked: 404; expired: 410.
    let token = edit.rsplit('/').next().unwrap().to_owned();
    ok_json(env, &["link", "rm", &token]);
    assert_eq!(http_request(at, "PUT", &format!("{edit}/late.txt"), &[], b"x").unwrap().status, 404);
    let short = create_link(env, &["/drop", "--permission", "edit", "--expires", "1s"], None);
    poll_until(Duration::from_secs(10), "the link to expire", || {
        (http_request(at, "GET", &short, &[], b"").unwrap().status == 410).then_some(())
    })
    .unwrap();
    assert_eq!(http_request(at, "PUT", &format!("{short}/late.txt"), &[], b"x").unwrap().status, 410);
    fails(env, &["stat", "/drop/late.txt"], "not found");
}
