//! `tessera sync` against `tessera dev`: folders of several devices converge
//! under random edits, offline periods and conflicts, with nothing lost; a
//! device does not download its own changes; uploads send only changed
//! chunks; interrupted transfers resume; the long-running mode follows both
//! sides.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{start_dev, tessera, tessera_with, Dev};
use sha2::{Digest, Sha256};
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;
use tessera_tests::{poll_until, ProcessGuard, TestRng};

/// A folder tree: relative path → content hash (files) or None (folders).
type Tree = BTreeMap<String, Option<String>>;

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn local_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name == ".tessera-sync" {
                continue;
            }
            assert!(!name.starts_with(".~tessera-"), "a temp file was left behind: {}", entry.path().display());
            let rel = entry.path().strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            if entry.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                stack.push(entry.path());
            } else {
                out.insert(rel, Some(sha_hex(&std::fs::read(entry.path()).unwrap())));
            }
        }
    }
    out
}

fn client(rt: &tokio::runtime::Runtime, env: &HashMap<String, String>) -> TesseraClient {
    rt.block_on(TesseraClient::connect(
        &env["TESSERA_ENDPOINT"],
        &env["TESSERA_ACCESS_KEY"],
        &env["TESSERA_SECRET_KEY"],
    ))
    .unwrap()
}

fn server_tree(rt: &tokio::runtime::Runtime, c: &TesseraClient) -> Tree {
    let mut out = Tree::new();
    let mut folders = vec!["/".to_owned()];
    while let Some(folder) = folders.pop() {
        let req = pb::ListRequest { path: folder, start_after: String::new(), limit: 1000 };
        let page = rt.block_on(c.raw().list(req)).unwrap().into_inner();
        assert!(page.next_start_after.is_empty());
        for e in page.entries.iter().filter(|e| !e.deleted) {
            let rel = e.path.trim_start_matches('/').to_owned();
            if e.is_folder {
                out.insert(rel, None);
                folders.push(e.path.clone());
            } else {
                out.insert(rel, Some(e.content_sha256.clone()));
            }
        }
    }
    out
}

/// Every content hash the cluster keeps for the user: every version of every
/// path the change feed ever named, followed through folder moves (deleted
/// files included), and of every detached file.
fn every_kept_content(rt: &tokio::runtime::Runtime, c: &TesseraClient) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut after = 0;
    loop {
        let req = pb::ChangesRequest { after_cursor: after, limit: 1000, ..Default::default() };
        let page = rt.block_on(c.raw().changes(req)).unwrap().into_inner();
        for e in &page.events {
            paths.insert(e.path.clone());
            if !e.new_path.is_empty() {
                // History moves with a folder: every path seen under it moves too.
                let under = format!("{}/", e.path);
                let moved: Vec<String> = paths
                    .iter()
                    .filter_map(|p| p.strip_prefix(&under).map(|rest| format!("{}/{rest}", e.new_path)))
                    .collect();
                paths.extend(moved);
                paths.insert(e.new_path.clone());
            }
        }
        after = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    let mut kept = BTreeSet::new();
    let mut asks: Vec<pb::VersionsRequest> =
        paths.into_iter().map(|path| pb::VersionsRequest { path, detached_id: None }).collect();
    // Deleted files displaced from their path by a newer entry keep their history too.
    let detached = rt.block_on(c.raw().list_detached(pb::ListDetachedRequest::default())).unwrap().into_inner();
    assert_eq!(detached.next_start_after_id, 0);
    asks.extend(detached.files.iter().map(|f| pb::VersionsRequest { path: String::new(), detached_id: Some(f.id) }));
    for ask in asks {
        if let Ok(v) = rt.block_on(c.raw().versions(ask)) {
            kept.extend(v.into_inner().versions.into_iter().map(|v| v.content_sha256));
        }
    }
    kept
}

struct SyncClient {
    dir: PathBuf,
    device: String,
}

impl SyncClient {
    fn new(work: &Path, device: &str) -> Self {
        let dir = work.join(format!("dir-{device}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir, device: device.to_owned() }
    }

    /// One `tessera sync --once` pass; its JSON report.
    fn pass(&self, env: &HashMap<String, String>) -> serde_json::Value {
        self.pass_with(env, &[])
    }

    fn pass_with(&self, env: &HashMap<String, String>, extra: &[(&str, &str)]) -> serde_json::Value {
        let dir = self.dir.display().to_string();
        let out = tessera_with(env, extra, &["sync", &dir, "--device", &self.device, "--once", "--json"]);
        assert!(
            out.status.success(),
            "sync of {} failed: {}{}",
            self.device,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn changed(report: &serde_json::Value) -> bool {
    [
        "uploaded",
        "downloaded",
        "deleted_local",
        "deleted_remote",
        "folders_created",
        "moved_local",
        "moved_remote",
        "conflicts",
    ]
    .iter()
    .any(|k| report[*k].as_u64().unwrap() > 0)
}

const FILE_NAMES: &[&str] =
    &["a.txt", "b c.txt", "ünïcødé.md", "日本語.txt", "x", "Report (final).doc", ".hidden", "emoji 🎉.bin"];
const FOLDER_NAMES: &[&str] = &["docs", "Photos 2026", "ü", "deep"];

/// Random edits a person might make in a synced folder.
struct Editor {
    rng: TestRng,
    /// Every content a sync pass has seen in some folder (and where): all must survive.
    seen: BTreeMap<String, String>,
}

impl Editor {
    fn pick<'a>(&mut self, items: &'a [String]) -> Option<&'a String> {
        (!items.is_empty()).then(|| &items[self.rng.below(items.len() as u64) as usize])
    }

    fn content(&mut self) -> Vec<u8> {
        let len = match self.rng.below(10) {
            0 => 0,
            1 => 200_000 + self.rng.below(200_000) as usize,
            _ => self.rng.below(5_000) as usize,
        };
        self.rng.bytes(len)
    }

    fn edit(&mut self, root: &Path) {
        let tree = local_tree(root);
        let files: Vec<String> = tree.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
        let folders: Vec<String> = tree.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
        let mut places = vec![String::new()];
        places.extend(folders.iter().cloned());
        let at = |place: &str, name: &str| if place.is_empty() { name.to_owned() } else { format!("{place}/{name}") };
        let path = |rel: &str| root.join(rel);
        match self.rng.below(10) {
            0..=2 => {
                let place = self.pick(&places).unwrap().clone();
                let name = FILE_NAMES[self.rng.below(FILE_NAMES.len() as u64) as usize];
                let rel = at(&place, name);
                if !tree.contains_key(&rel) {
                    let data = self.content();
                    std::fs::write(path(&rel), data).unwrap();
                }
            }
            3 | 4 => {
                if let Some(rel) = self.pick(&files).cloned() {
                    let data = self.content();
                    std::fs::write(path(&rel), data).unwrap();
                }
            }
            5 => {
                if let Some(rel) = self.pick(&files).cloned() {
                    let mut data = std::fs::read(path(&rel)).unwrap();
                    let extra = 1 + self.rng.below(100) as usize;
                    data.extend(self.rng.bytes(extra));
                    std::fs::write(path(&rel), data).unwrap();
                }
            }
            6 => {
                if let Some(rel) = self.pick(&files).cloned() {
                    std::fs::remove_file(path(&rel)).unwrap();
                }
            }
            7 => {
                // move or rename a file
                if let Some(rel) = self.pick(&files).cloned() {
                    let place = self.pick(&places).unwrap().clone();
                    let name = FILE_NAMES[self.rng.below(FILE_NAMES.len() as u64) as usize];
                    let to = at(&place, name);
                    if !tree.contains_key(&to) {
                        std::fs::rename(path(&rel), path(&to)).unwrap();
                    }
                }
            }
            8 => {
                let place = self.pick(&places).unwrap().clone();
                let name = FOLDER_NAMES[self.rng.below(FOLDER_NAMES.len() as u64) as usize];
                let rel = at(&place, name);
                if !tree.contains_key(&rel) && rel.matches('/').count() < 3 {
                    std::fs::create_dir(path(&rel)).unwrap();
                }
            }
            _ => {
                // move, rename or delete a folder
                if let Some(rel) = self.pick(&folders).cloned() {
                    if self.rng.below(3) == 0 {
                        std::fs::remove_dir_all(path(&rel)).unwrap();
                    } else {
                        let place = self.pick(&places).unwrap().clone();
                        let name = FOLDER_NAMES[self.rng.below(FOLDER_NAMES.len() as u64) as usize];
                        let to = at(&place, name);
                        let inside = to == rel || to.starts_with(&format!("{rel}/"));
                        if !inside && !tree.contains_key(&to) && to.matches('/').count() < 3 {
                            std::fs::rename(path(&rel), path(&to)).unwrap();
                        }
                    }
                }
            }
        }
    }

    fn saw(&mut self, root: &Path, when: &str) {
        for (rel, sha) in local_tree(root) {
            if let Some(sha) = sha {
                self.seen.entry(sha).or_insert_with(|| format!("{rel} in {} {when}", root.display()));
            }
        }
    }
}

fn converge(rounds: u64, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().to_path_buf();
    // TESSERA_SYNC_KEEP=1 keeps the folders and the cluster's data to look at.
    let _tmp = if std::env::var_os("TESSERA_SYNC_KEEP").is_some() {
        eprintln!("work dir kept: {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let data = work.join("data");
    let mut dev = start_dev(&data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients: Vec<SyncClient> = ["laptop", "phone", "tablet"].iter().map(|d| SyncClient::new(&work, d)).collect();
    let mut editor = Editor { rng: TestRng::new(seed), seen: BTreeMap::new() };
    let outage_round = rounds / 2;
    let mut env = dev.env.clone();
    for round in 0..rounds {
        for c in &clients {
            if editor.rng.below(5) != 0 {
                for _ in 0..1 + editor.rng.below(4) {
                    editor.edit(&c.dir);
                }
            }
        }
        if round == outage_round {
            // The cluster goes away: a pass fails and keeps every local edit.
            dev.guard.kill9();
            let c = &clients[editor.rng.below(3) as usize];
            let before = local_tree(&c.dir);
            let dir = c.dir.display().to_string();
            let out = tessera(&env, &["sync", &dir, "--device", &c.device, "--once"]);
            assert!(!out.status.success(), "a pass without a cluster must fail");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("cluster unavailable") || err.contains("cannot reach"), "{err}");
            assert_eq!(local_tree(&c.dir), before, "an offline pass changes nothing locally");
            for c in &clients {
                editor.edit(&c.dir); // edits made while offline
            }
            dev = start_dev(&data);
            env = dev.env.clone();
        }
        // Some clients stay offline (paused) this round.
        let mut order: Vec<&SyncClient> = clients.iter().filter(|_| editor.rng.below(10) < 7).collect();
        if order.len() > 1 && editor.rng.below(2) == 0 {
            order.reverse();
        }
        for c in order {
            editor.saw(&c.dir, &format!("before a pass of round {round}"));
            c.pass(&env);
        }
    }
    // All online until a full round changes nothing.
    let mut quiet = false;
    for _ in 0..8 {
        quiet = true;
        for c in &clients {
            editor.saw(&c.dir, "before a final pass");
            quiet &= !changed(&c.pass(&env));
        }
        if quiet {
            break;
        }
    }
    assert!(quiet, "seed {seed}: the clients did not settle");
    let remote = client(&rt, &env);
    let server = server_tree(&rt, &remote);
    for c in &clients {
        assert_eq!(local_tree(&c.dir), server, "seed {seed}: {} differs from the cluster", c.device);
    }
    let mut kept = every_kept_content(&rt, &remote);
    kept.extend(server.values().flatten().cloned());
    let lost: Vec<&String> = editor.seen.iter().filter(|(s, _)| !kept.contains(*s)).map(|(_, at)| at).collect();
    assert!(lost.is_empty(), "seed {seed}: contents lost: {lost:?}");
    assert!(server.len() > 3, "seed {seed}: the run should leave something synced: {server:?}");
}

fn seed() -> u64 {
    std::env::var("TESSERA_SYNC_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261201)
}

#[test]
fn three_devices_converge_through_random_edits_offline_periods_and_conflicts() {
    converge(10, seed());
}

/// The long variant: `cargo nextest run -p tessera-tools --test sync --run-ignored only`
/// (TESSERA_SYNC_SEED picks the run; TESSERA_SYNC_ROUNDS its length).
#[test]
#[ignore]
fn three_devices_converge_long_run() {
    let rounds = std::env::var("TESSERA_SYNC_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    for offset in 0..4 {
        converge(rounds, seed() + offset);
    }
}

#[test]
fn a_device_does_not_download_its_own_changes_and_edits_send_only_changed_chunks() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let laptop = SyncClient::new(work.path(), "laptop");
    let phone = SyncClient::new(work.path(), "phone");
    let mut rng = TestRng::new(7);
    let mut big = rng.bytes(24 << 20);
    std::fs::write(laptop.dir.join("big.bin"), &big).unwrap();
    std::fs::write(laptop.dir.join("note.txt"), b"v1").unwrap();
    let first = laptop.pass(&dev.env);
    assert_eq!(first["uploaded"], 2);
    assert_eq!(phone.pass(&dev.env)["downloaded"], 2);

    // Echo: the laptop's next pass sees no event of its own and downloads nothing.
    let again = laptop.pass(&dev.env);
    assert_eq!((again["events"].as_u64(), again["downloaded"].as_u64()), (Some(0), Some(0)), "{again}");

    // A small edit in the middle of a large file sends only the chunks around it.
    big[12 << 20..(12 << 20) + 100].copy_from_slice(&rng.bytes(100));
    std::fs::write(laptop.dir.join("big.bin"), &big).unwrap();
    let delta = laptop.pass(&dev.env);
    let (sent, total) = (delta["chunks_sent"].as_u64().unwrap(), delta["chunks_total"].as_u64().unwrap());
    assert!(total >= 3 && sent < total, "delta upload sent {sent} of {total} chunks");
    assert!(delta["bytes_sent"].as_u64().unwrap() < 16 << 20, "{delta}");
    let got = phone.pass(&dev.env);
    assert_eq!((got["downloaded"].as_u64(), got["events"].as_u64()), (Some(1), Some(1)), "{got}");
    assert_eq!(std::fs::read(phone.dir.join("big.bin")).unwrap(), big);
    // The edit was uploaded against the version it changed: one history, no conflict copy.
    let versions = common::ok_json(&dev.env, &["versions", "/big.bin"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(local_tree(&laptop.dir), local_tree(&phone.dir));

    // Touching a file without changing it uploads nothing.
    std::fs::write(laptop.dir.join("note.txt"), b"v1").unwrap();
    assert!(!changed(&laptop.pass(&dev.env)));
}

#[test]
fn interrupted_uploads_and_downloads_resume_where_they_stopped() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let laptop = SyncClient::new(work.path(), "laptop");
    let phone = SyncClient::new(work.path(), "phone");
    let data = TestRng::new(9).bytes(30 << 20);
    std::fs::write(laptop.dir.join("video.mp4"), &data).unwrap();

    // Killed after the first chunk: the rerun sends only what is missing.
    let dir = laptop.dir.display().to_string();
    let out = tessera_with(
        &dev.env,
        &[("TESSERA_FAILPOINT_EXIT_AFTER_CHUNKS", "1")],
        &["sync", &dir, "--device", "laptop", "--once"],
    );
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = laptop.pass(&dev.env);
    let (sent, total) = (resumed["chunks_sent"].as_u64().unwrap(), resumed["chunks_total"].as_u64().unwrap());
    assert!(total >= 3 && sent == total - 1, "resumed upload sent {sent} of {total} chunks");

    // A download killed half-way leaves its partial temp file and nothing under the name.
    let dir = phone.dir.display().to_string();
    let out = tessera_with(
        &dev.env,
        &[("TESSERA_FAILPOINT_SYNC_EXIT_AFTER_BYTES", &(12u64 << 20).to_string())],
        &["sync", &dir, "--device", "phone", "--once"],
    );
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!phone.dir.join("video.mp4").exists(), "a half-downloaded file never shows under its name");
    let parts: Vec<_> = std::fs::read_dir(&phone.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".~tessera-"))
        .collect();
    assert_eq!(parts.len(), 1);
    let got = phone.pass(&dev.env);
    assert_eq!(got["resumed_downloads"], 1, "{got}");
    assert!(got["bytes_received"].as_u64().unwrap() <= 18 << 20, "{got}");
    assert_eq!(std::fs::read(phone.dir.join("video.mp4")).unwrap(), data);
    assert_eq!(local_tree(&phone.dir), local_tree(&laptop.dir));
}

#[test]
fn a_local_edit_racing_a_remote_one_becomes_a_conflict_copy_and_both_stay_in_history() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let laptop = SyncClient::new(work.path(), "laptop");
    let phone = SyncClient::new(work.path(), "phone");
    std::fs::create_dir(laptop.dir.join("docs")).unwrap();
    std::fs::write(laptop.dir.join("docs/plan.txt"), b"base").unwrap();
    laptop.pass(&dev.env);
    phone.pass(&dev.env);
    std::fs::write(laptop.dir.join("docs/plan.txt"), b"laptop edit").unwrap();
    std::fs::write(phone.dir.join("docs/plan.txt"), b"phone edit").unwrap();
    laptop.pass(&dev.env);
    let report = phone.pass(&dev.env);
    assert_eq!(report["conflicts"], 1, "{report}");
    laptop.pass(&dev.env);
    let date = time::OffsetDateTime::now_utc().date();
    let copy = format!(
        "docs/plan (phone's conflicting copy {:04}-{:02}-{:02}).txt",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    for c in [&laptop, &phone] {
        assert_eq!(std::fs::read(c.dir.join("docs/plan.txt")).unwrap(), b"laptop edit");
        assert_eq!(std::fs::read(c.dir.join(&copy)).unwrap(), b"phone edit");
    }
    let versions = common::ok_json(&dev.env, &["versions", "/docs/plan.txt"]);
    let shas: Vec<&str> = versions.as_array().unwrap().iter().map(|v| v["sha256"].as_str().unwrap()).collect();
    assert_eq!(shas, [sha_hex(b"laptop edit"), sha_hex(b"base")]);
}

fn spawn_sync(dev: &Dev, c: &SyncClient, log: &Path) -> ProcessGuard {
    let mut args: Vec<String> = vec!["sync".into(), c.dir.display().to_string(), "--device".into(), c.device.clone()];
    args.extend(["--scan-interval".into(), "3600".into()]);
    let env: Vec<(String, String)> = dev.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    ProcessGuard::spawn_with_env(&format!("sync {}", c.device), Path::new(common::BIN), &args, &env, log).unwrap()
}

#[test]
fn long_running_clients_follow_file_system_events_and_the_change_feed() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let laptop = SyncClient::new(work.path(), "laptop");
    let phone = SyncClient::new(work.path(), "phone");
    let mut a = spawn_sync(&dev, &laptop, &work.path().join("laptop.log"));
    let mut b = spawn_sync(&dev, &phone, &work.path().join("phone.log"));
    let wait_for = |path: &Path, want: Option<&[u8]>, what: &str| {
        poll_until(Duration::from_secs(30), what, || {
            let now = std::fs::read(path).ok();
            (now.as_deref() == want).then_some(())
        })
        .unwrap()
    };
    std::fs::write(laptop.dir.join("hello.txt"), b"from the laptop").unwrap();
    wait_for(&phone.dir.join("hello.txt"), Some(b"from the laptop"), "the laptop's file on the phone");
    std::fs::create_dir(phone.dir.join("Photos")).unwrap();
    std::fs::write(phone.dir.join("Photos/cat.jpg"), b"meow").unwrap();
    wait_for(&laptop.dir.join("Photos/cat.jpg"), Some(b"meow"), "the phone's photo on the laptop");
    std::fs::remove_file(laptop.dir.join("hello.txt")).unwrap();
    wait_for(&phone.dir.join("hello.txt"), None, "the delete on the phone");
    assert!(a.is_running() && b.is_running());
    let log = std::fs::read_to_string(work.path().join("phone.log")).unwrap();
    assert!(log.contains("synced"), "the status line: {log}");
    a.kill9();
    b.kill9();
}

#[test]
fn a_grantee_syncs_a_shared_folder_and_a_view_share_only_reads() {
    let work = tempfile::tempdir().unwrap();
    let dev = start_dev(&work.path().join("data"));
    let owner = &dev.env; // user "dev"
    let bob = common::user_env(owner, "bob");
    let carol = common::user_env(owner, "carol");
    let team = SyncClient::new(work.path(), "owner-laptop");
    std::fs::create_dir_all(team.dir.join("Team/plans")).unwrap();
    std::fs::write(team.dir.join("Team/plans/q1.txt"), b"ship it").unwrap();
    std::fs::write(team.dir.join("private.txt"), b"mine only").unwrap();
    team.pass(owner);
    common::ok_json(owner, &["share", "/Team", "bob", "--permission", "edit"]);
    common::ok_json(owner, &["share", "/Team", "carol", "--permission", "view"]);

    let shared_pass = |env: &HashMap<String, String>, c: &SyncClient| {
        let dir = c.dir.display().to_string();
        tessera(env, &["--owner", "dev", "sync", &dir, "--device", &c.device, "--remote", "/Team", "--once", "--json"])
    };
    let bobs = SyncClient::new(work.path(), "bob-laptop");
    let out = shared_pass(&bob, &bobs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(bobs.dir.join("plans/q1.txt")).unwrap(), b"ship it");
    assert!(!bobs.dir.join("private.txt").exists() && !bobs.dir.join("Team").exists());

    // An edit share writes both ways.
    std::fs::write(bobs.dir.join("plans/q2.txt"), b"from bob").unwrap();
    assert!(shared_pass(&bob, &bobs).status.success());
    team.pass(owner);
    assert_eq!(std::fs::read(team.dir.join("Team/plans/q2.txt")).unwrap(), b"from bob");
    std::fs::write(team.dir.join("Team/plans/q1.txt"), b"shipped").unwrap();
    std::fs::write(team.dir.join("private.txt"), b"still mine").unwrap();
    team.pass(owner);
    let report: serde_json::Value = serde_json::from_slice(&shared_pass(&bob, &bobs).stdout).unwrap();
    assert_eq!(report["downloaded"], 1, "only the shared change comes down: {report}");
    assert_eq!(std::fs::read(bobs.dir.join("plans/q1.txt")).unwrap(), b"shipped");

    // A view share reads, and refuses writes without losing the local file.
    let carols = SyncClient::new(work.path(), "carol-phone");
    assert!(shared_pass(&carol, &carols).status.success());
    assert_eq!(std::fs::read(carols.dir.join("plans/q2.txt")).unwrap(), b"from bob");
    std::fs::write(carols.dir.join("plans/carol.txt"), b"not allowed").unwrap();
    let refused = shared_pass(&carol, &carols);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("permission denied"));
    assert_eq!(std::fs::read(carols.dir.join("plans/carol.txt")).unwrap(), b"not allowed");
    assert!(tessera(owner, &["stat", "/Team/plans/carol.txt"]).status.code() == Some(1));

    // Unshared: the grantee's next pass is refused and changes nothing locally.
    common::ok_json(owner, &["unshare", "/Team", "bob"]);
    let before = local_tree(&bobs.dir);
    assert!(!shared_pass(&bob, &bobs).status.success());
    assert_eq!(local_tree(&bobs.dir), before);
}
