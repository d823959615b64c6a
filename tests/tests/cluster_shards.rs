//! Growing and shrinking the metadata tier of a `tessera cluster up` cluster
//! (3 metadata nodes, 2 shard groups) with the CLI while a user writes:
//! `admin shard add` creates a group and moves the users the ring gives it,
//! `admin user move` moves one user, `admin shard drain` empties a group and
//! removes it; every acknowledged file reads back through routers that were
//! never restarted. A move also survives kill -9 of its mover and the routers
//! (a restarted router rolls it back) and of the source's or the target's Raft
//! leader. Sync clients converge across moves, also after their change-feed
//! cursor fell past the change log's retention.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tessera_tests::local_cluster::{ok_json, read_back, tessera_with, LocalCluster};
use tessera_tests::{poll_until, TestRng};

type Env = HashMap<String, String>;
/// Files a writer had acknowledged: (remote path, bytes).
type Files = Vec<(String, Vec<u8>)>;

fn put(env: &Env, dir: &Path, remote: &str, data: &[u8]) -> Result<(), String> {
    let local = dir.join(format!("up-{}", remote.replace('/', "_")));
    std::fs::write(&local, data).map_err(|e| e.to_string())?;
    let out = tessera_with(env, &["put", local.to_str().unwrap_or_default(), remote]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn user_env(env: &Env, name: &str) -> Env {
    let user = ok_json(env, &["admin", "user", "create", name]);
    let mut other = env.clone();
    other.insert("TESSERA_ACCESS_KEY".into(), user["access_key"].as_str().unwrap().into());
    other.insert("TESSERA_SECRET_KEY".into(), user["secret_key"].as_str().unwrap().into());
    other
}

/// `admin shard status --json`: group id → the ids of the users living on it.
fn users_by_group(env: &Env) -> HashMap<u64, Vec<String>> {
    let status = ok_json(env, &["admin", "shard", "status"]);
    status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let users = g["user_ids"].as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_owned()).collect();
            (g["group"].as_u64().unwrap(), users)
        })
        .collect()
}

fn group_of(env: &Env, user: &str) -> u64 {
    let groups = users_by_group(env);
    let found: Vec<u64> = groups.iter().filter(|(_, users)| users.iter().any(|u| u == user)).map(|(g, _)| *g).collect();
    assert_eq!(found.len(), 1, "user {user} lives on exactly one group: {groups:?}");
    found[0]
}

/// The CLI's stdout lines as JSON (commands that report per user print one line each).
fn json_lines(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = tessera_with(env, &all);
    assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn fails_with(env: &Env, args: &[&str], needle: &str) {
    let out = tessera_with(env, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "tessera {args:?} should fail");
    assert!(stderr.contains(needle), "tessera {args:?}: {stderr}");
}

/// Writes files as the cluster's default user until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Files>>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(env: Env, dir: PathBuf) -> Self {
        Self::start_paced(env, dir, Duration::ZERO)
    }

    /// A writer that rests `pause` between writes.
    fn start_paced(env: Env, dir: PathBuf, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (acked, failures) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        std::fs::create_dir_all(&dir).unwrap();
        let thread = {
            let (stop, acked, failures) = (stop.clone(), acked.clone(), failures.clone());
            std::thread::spawn(move || {
                let mut rng = TestRng::new(17);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let len = 10_000 + rng.below(50_000) as usize;
                    let (path, data) = (format!("/live/w{i}"), rng.bytes(len));
                    match put(&env, &dir, &path, &data) {
                        Ok(()) => acked.lock().unwrap().push((path, data)),
                        Err(e) => failures.lock().unwrap().push(format!("{path}: {e}")),
                    }
                    std::thread::sleep(pause);
                }
            })
        };
        Self { stop, acked, failures, thread: Some(thread) }
    }

    fn wait_for(&self, more: usize) {
        let start = self.acked.lock().unwrap().len();
        poll_until(Duration::from_secs(60), "writes", || {
            (self.acked.lock().unwrap().len() >= start + more).then_some(())
        })
        .unwrap();
    }

    fn finish(mut self) -> (Files, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.acked.lock().unwrap().clone(), self.failures.lock().unwrap().clone())
    }
}

#[test]
fn adding_moving_and_draining_groups_under_writes_keeps_every_file() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let groups = users_by_group(&env);
    assert_eq!(groups.len(), 2, "cluster up makes two shard groups: {groups:?}");
    let default_user = groups.values().flatten().next().expect("the default user").clone();

    // Twelve more users with a file each, spread over the two groups.
    let mut users = Vec::new();
    let mut rng = TestRng::new(5);
    for i in 0..12 {
        let name = format!("u{i}");
        let uenv = user_env(&env, &name);
        let file = (format!("/own/{name}.bin"), rng.bytes(30_000));
        put(&uenv, work.path(), &file.0, &file.1).unwrap();
        users.push((name, uenv, file));
    }
    let before = users_by_group(&env);
    assert!(before.values().all(|u| !u.is_empty()), "both groups hold users: {before:?}");

    let writer = Writer::start(env.clone(), work.path().join("w"));
    writer.wait_for(3);

    // A third group: it gets the users the ring now gives it, nobody else moves.
    let out = json_lines(&env, &["admin", "shard", "add"]);
    assert_eq!(out[0]["group"], 3, "{out:?}");
    let after_add = users_by_group(&env);
    assert_eq!(after_add.len(), 3);
    let moved_in = &after_add[&3];
    assert!(!moved_in.is_empty(), "the ring gives the new group some of the 13 users: {after_add:?}");
    assert_eq!(out[0]["users_to_move"].as_u64().unwrap() as usize, moved_in.len(), "{out:?}");
    assert_eq!(out.len(), 1 + moved_in.len(), "one report per moved user: {out:?}");
    for (g, users) in &after_add {
        if *g != 3 {
            assert!(users.iter().all(|u| before[g].contains(u)), "only moves to group 3: {before:?} -> {after_add:?}");
        }
    }
    writer.wait_for(3);

    // The writing user moves to another group by hand, twice.
    for _ in 0..2 {
        let from = group_of(&env, &default_user);
        let to = if from == 3 { 1 } else { 3 };
        let report = ok_json(&env, &["admin", "user", "move", &default_user, "--to", &to.to_string()]);
        assert_eq!((report["from"].as_u64(), report["to"].as_u64()), (Some(from), Some(to)), "{report}");
        assert_eq!(group_of(&env, &default_user), to);
        writer.wait_for(3);
    }

    // Bad requests are clear errors and change nothing.
    fails_with(&env, &["admin", "user", "move", "nobody-here", "--to", "1"], "no user nobody-here");
    fails_with(&env, &["admin", "user", "move", &default_user, "--to", "99"], "no shard group 99");
    let here = group_of(&env, &default_user).to_string();
    fails_with(&env, &["admin", "user", "move", &default_user, "--to", &here], "already");

    // Draining group 3 moves everyone off it and removes it.
    let out = tessera_with(&env, &["admin", "shard", "drain", "3"]);
    assert!(out.status.success(), "drain: {}", String::from_utf8_lossy(&out.stderr));
    let after_drain = users_by_group(&env);
    assert_eq!(after_drain.keys().copied().collect::<std::collections::BTreeSet<_>>(), [1, 2].into());
    assert_eq!(after_drain.values().map(Vec::len).sum::<usize>(), before.values().map(Vec::len).sum::<usize>());
    writer.wait_for(3);

    let (acked, failures) = writer.finish();
    assert!(failures.is_empty(), "writes failed during the moves: {failures:?}");
    eprintln!("{} writes acknowledged during the moves", acked.len());
    read_back(&env, work.path(), &acked).unwrap();
    for (name, uenv, file) in &users {
        read_back(uenv, work.path(), std::slice::from_ref(file)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let status = ok_json(&env, &["admin", "status"]);
    assert_eq!(status["user_moves"], Value::Array(vec![]), "no move left behind");
}

/// `tessera --json ls PATH` entries (path, id, size, version, content hash),
/// sorted: what a user sees of a folder.
fn listing(env: &Env, path: &str) -> Vec<String> {
    let out = ok_json(env, &["ls", path]);
    let mut entries: Vec<String> = out
        .as_array()
        .unwrap_or_else(|| panic!("ls answered {out}"))
        .iter()
        .map(|e| format!("{} {} {} {} {}", e["path"], e["id"], e["size"], e["version"], e["sha256"]))
        .collect();
    entries.sort();
    entries
}

fn moves_in_progress(env: &Env) -> Vec<Value> {
    ok_json(env, &["admin", "status"])["user_moves"].as_array().cloned().unwrap_or_default()
}

/// A slow move (one record per page) of `user` to `to`, as a child process.
fn start_move(env: &Env, user: &str, to: u64) -> std::process::Child {
    std::process::Command::new(tessera_tests::binary("tessera").unwrap())
        .args(["admin", "user", "move", user, "--to", &to.to_string(), "--page-records", "1"])
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The user can write and read again, and the folder is as it was.
fn user_intact(env: &Env, dir: &Path, before: &[String], tag: &str) {
    assert_eq!(listing(env, "/bench/list"), before, "{tag}: the folder changed");
    let file = (format!("/after/{tag}"), format!("written after {tag}").into_bytes());
    put(env, dir, &file.0, &file.1).unwrap_or_else(|e| panic!("{tag}: write refused: {e}"));
    read_back(env, dir, &[file]).unwrap();
}

#[test]
fn a_move_survives_its_mover_killed_and_either_groups_leader_killed() {
    let work = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let big = user_env(&cluster.env, "big");
    // A thousand files: thousands of records, so a one-record-per-page move takes a while.
    let out = tessera_with(&big, &["bench", "native", "--workload", "list", "--count", "1", "--concurrency", "1"]);
    assert!(out.status.success(), "bench: {}", String::from_utf8_lossy(&out.stderr));
    let before = listing(&big, "/bench/list");
    assert_eq!(before.len(), 1000);
    let home = group_of(&cluster.env, "big");
    let other = if home == 1 { 2 } else { 1 };

    // The mover dies mid-copy: a router rolls the move back; the user stays home.
    let mut mover = start_move(&cluster.env, "big", other);
    poll_until(Duration::from_secs(30), "the move to start", || {
        (!moves_in_progress(&cluster.env).is_empty()).then_some(())
    })
    .unwrap();
    mover.kill().unwrap();
    mover.wait().unwrap();
    let stuck = moves_in_progress(&cluster.env);
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(stuck[0]["state"], "Copying", "{stuck:?}");
    // The user was being copied, not fenced: it still writes.
    let during = (String::from("/during/dead-move"), b"written while the dead move was stuck".to_vec());
    put(&big, work.path(), &during.0, &during.1).unwrap();
    // The routers die too and come back: taking the move over needs nothing a router kept in memory.
    for (id, _, kind) in cluster.processes().unwrap() {
        if kind == "router" {
            cluster.kill9("router", &id).unwrap();
        }
    }
    cluster.start(&[]).unwrap();
    poll_until(Duration::from_secs(150), "a router to take the dead move over", || {
        moves_in_progress(&cluster.env).is_empty().then_some(())
    })
    .unwrap();
    assert_eq!(group_of(&cluster.env, "big"), home, "a move that never committed is rolled back");
    user_intact(&big, work.path(), &before, "rollback");
    read_back(&big, work.path(), &[during]).unwrap();

    // A group's leader dies mid-copy, first the source's, then the target's:
    // the mover carries on with the new leaders (or gives up and rolls back).
    for (tag, source) in [("source-leader-kill", true), ("target-leader-kill", false)] {
        let before = listing(&big, "/bench/list");
        let from = group_of(&cluster.env, "big");
        let to = if from == 1 { 2 } else { 1 };
        let mut mover = start_move(&cluster.env, "big", to);
        poll_until(Duration::from_secs(30), "the move to start", || {
            (!moves_in_progress(&cluster.env).is_empty()).then_some(())
        })
        .unwrap();
        let victim_group = if source { from } else { to };
        let status = cluster.status().unwrap();
        let leader = status["raft_groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group"].as_u64() == Some(victim_group))
            .and_then(|g| g["leader"].as_u64())
            .expect("the group has a leader");
        cluster.kill9("meta", &leader.to_string()).unwrap();
        let exit = poll_until(Duration::from_secs(180), "the mover to finish", || mover.try_wait().unwrap()).unwrap();
        cluster.start(&[]).unwrap();
        if exit.success() {
            assert_eq!(group_of(&cluster.env, "big"), to, "{tag}");
        } else {
            // It gave up and rolled back (or left the rest to a router).
            poll_until(Duration::from_secs(150), "the move to be settled", || {
                moves_in_progress(&cluster.env).is_empty().then_some(())
            })
            .unwrap();
        }
        eprintln!("{tag}: mover exit {exit}, user on group {}", group_of(&cluster.env, "big"));
        user_intact(&big, work.path(), &before, tag);
        assert!(moves_in_progress(&cluster.env).is_empty());
    }
}

/// Every file under `root` (relative path → bytes), skipping the sync client's own state.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// One `tessera sync --once --json` pass of `dir` as `device`.
fn sync_pass(env: &Env, dir: &Path, device: &str) -> Value {
    ok_json(env, &["sync", &dir.display().to_string(), "--device", device, "--once"])
}

#[test]
fn sync_clients_converge_across_moves_without_downloading_again() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let user = users_by_group(&env).values().flatten().next().expect("the default user").clone();
    let (laptop, phone) = (work.path().join("laptop"), work.path().join("phone"));
    std::fs::create_dir_all(laptop.join("docs")).unwrap();
    std::fs::create_dir_all(&phone).unwrap();
    let mut rng = TestRng::new(23);
    for i in 0..20 {
        std::fs::write(laptop.join(format!("docs/f{i}.bin")), rng.bytes(20_000)).unwrap();
    }
    assert_eq!(sync_pass(&env, &laptop, "laptop")["uploaded"], 20);
    assert_eq!(sync_pass(&env, &phone, "phone")["downloaded"], 20);

    for round in 0..2 {
        // The laptop edits, the user moves, the phone catches up from its cursor.
        std::fs::write(laptop.join(format!("docs/new{round}.bin")), rng.bytes(5_000)).unwrap();
        std::fs::write(laptop.join("docs/f3.bin"), rng.bytes(7_000)).unwrap();
        std::fs::remove_file(laptop.join(format!("docs/f{}.bin", 10 + round))).unwrap();
        let up = sync_pass(&env, &laptop, "laptop");
        assert_eq!((up["uploaded"].as_u64(), up["deleted_remote"].as_u64()), (Some(2), Some(1)), "{up}");
        let to = if group_of(&env, &user) == 1 { 2 } else { 1 };
        ok_json(&env, &["admin", "user", "move", &user, "--to", &to.to_string()]);
        assert_eq!(group_of(&env, &user), to, "the user moved");
        let down = sync_pass(&env, &phone, "phone");
        assert_eq!(
            (down["downloaded"].as_u64(), down["deleted_local"].as_u64()),
            (Some(2), Some(1)),
            "only what changed comes down after the move: {down}"
        );
        assert_eq!(tree(&laptop), tree(&phone), "round {round}");
        // Nothing new: a pass after the move finds no event it has not seen.
        let quiet = sync_pass(&env, &phone, "phone");
        assert_eq!((quiet["events"].as_u64(), quiet["downloaded"].as_u64()), (Some(0), Some(0)), "{quiet}");
    }
}

#[test]
fn a_device_past_the_change_log_retention_resyncs_without_downloading_again_even_after_a_move() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let user = users_by_group(&env).values().flatten().next().expect("the default user").clone();
    let (laptop, phone) = (work.path().join("laptop"), work.path().join("phone"));
    std::fs::create_dir_all(laptop.join("docs")).unwrap();
    std::fs::create_dir_all(&phone).unwrap();
    let mut rng = TestRng::new(29);
    for i in 0..12 {
        std::fs::write(laptop.join(format!("docs/f{i}.bin")), rng.bytes(20_000)).unwrap();
    }
    assert_eq!(sync_pass(&env, &laptop, "laptop")["uploaded"], 12);
    assert_eq!(sync_pass(&env, &phone, "phone")["downloaded"], 12);

    // The phone is away while the laptop edits one file, deletes one and adds one.
    std::fs::write(laptop.join("docs/f2.bin"), rng.bytes(9_000)).unwrap();
    std::fs::remove_file(laptop.join("docs/f5.bin")).unwrap();
    std::fs::write(laptop.join("docs/added.bin"), rng.bytes(3_000)).unwrap();
    let up = sync_pass(&env, &laptop, "laptop");
    assert_eq!((up["uploaded"].as_u64(), up["deleted_remote"].as_u64()), (Some(2), Some(1)), "{up}");

    // GC trims every event committed before now.
    std::thread::sleep(Duration::from_millis(20));
    let gc = ok_json(&env, &["admin", "gc", "run", "--change-log-retention", "0s"]);
    assert!(gc["change_events_trimmed"].as_u64().unwrap() >= 12 + 3, "{gc}");
    let too_old = |what: &str| {
        let out = tessera_with(&env, &["changes", "--after", "1"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && stderr.contains("cursor too old"), "{what}: {stderr}");
    };
    too_old("on its group");
    // The move carries the trimmed-through cursor: the new group refuses the
    // old cursor too instead of answering with a gap.
    let to = if group_of(&env, &user) == 1 { 2 } else { 1 };
    ok_json(&env, &["admin", "user", "move", &user, "--to", &to.to_string()]);
    assert_eq!(group_of(&env, &user), to);
    too_old("after the move");

    // The phone's cursor is too old: it compares the whole tree and fetches
    // only what changed.
    let down = sync_pass(&env, &phone, "phone");
    assert_eq!(down["full_resync"], true, "{down}");
    assert_eq!(
        (down["downloaded"].as_u64(), down["deleted_local"].as_u64(), down["uploaded"].as_u64()),
        (Some(2), Some(1), Some(0)),
        "only what changed comes down: {down}"
    );
    assert_eq!(tree(&laptop), tree(&phone));
    // It follows from the head again: a change after the resync arrives as an event.
    std::fs::write(laptop.join("docs/later.bin"), rng.bytes(1_000)).unwrap();
    assert_eq!(sync_pass(&env, &laptop, "laptop")["uploaded"], 1);
    let next = sync_pass(&env, &phone, "phone");
    assert_eq!((next["full_resync"].as_bool(), next["downloaded"].as_u64()), (Some(false), Some(1)), "{next}");
    assert!(next["events"].as_u64().unwrap() >= 1, "{next}");
    assert_eq!(tree(&laptop), tree(&phone));
}

/// Every event of the caller's feed from the start, with `tessera changes`.
fn feed_events(env: &Env) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0u64;
    loop {
        let page = ok_json(env, &["changes", "--after", &after.to_string(), "--limit", "1000"]);
        events.extend(page["events"].as_array().unwrap().iter().cloned());
        after = page["next_cursor"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            return events;
        }
    }
}

/// What a user has, as they see it: every file of `/own` with its versions.
fn holdings(env: &Env) -> Vec<String> {
    let mut out = listing(env, "/own");
    for i in 0..3 {
        out.push(ok_json(env, &["versions", &format!("/own/f{i}.bin")]).to_string());
    }
    out
}

#[test]
fn twenty_users_move_while_two_writers_and_a_sync_client_work_and_nothing_is_lost_or_repeated() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let env = cluster.env.clone();
    let mut rng = TestRng::new(31);
    // Twenty users with three files each, the first two files in two versions.
    let mut users = Vec::new();
    for u in 0..20 {
        let name = format!("m{u}");
        let uenv = user_env(&env, &name);
        for i in 0..3 {
            for _ in 0..if i < 2 { 2 } else { 1 } {
                put(&uenv, work.path(), &format!("/own/f{i}.bin"), &rng.bytes(8_000)).unwrap();
            }
        }
        users.push((name, uenv));
    }
    let before: Vec<(Vec<String>, Vec<Value>)> = users.iter().map(|(_, e)| (holdings(e), feed_events(e))).collect();

    // Two writers (users m0 and m1) and a laptop syncing as m2, all the while.
    let writers = [
        Writer::start_paced(users[0].1.clone(), work.path().join("w0"), Duration::from_millis(100)),
        Writer::start_paced(users[1].1.clone(), work.path().join("w1"), Duration::from_millis(100)),
    ];
    let (laptop, phone) = (work.path().join("laptop"), work.path().join("phone"));
    std::fs::create_dir_all(&laptop).unwrap();
    std::fs::create_dir_all(&phone).unwrap();
    let sync_env = users[2].1.clone();
    assert_eq!(sync_pass(&sync_env, &laptop, "laptop")["downloaded"], 3, "the laptop starts with m2's files");
    assert_eq!(sync_pass(&sync_env, &phone, "phone")["downloaded"], 3);
    let stop = Arc::new(AtomicBool::new(false));
    let laptop_thread = {
        let (stop, env, laptop) = (stop.clone(), sync_env.clone(), laptop.clone());
        std::thread::spawn(move || {
            let (mut rng, mut made) = (TestRng::new(37), 0u64);
            while !stop.load(Ordering::Relaxed) || made < 5 {
                std::fs::write(laptop.join(format!("note{made}.txt")), rng.bytes(2_000)).unwrap();
                made += 1;
                let out = tessera_with(&env, &["sync", &laptop.display().to_string(), "--device", "laptop", "--once"]);
                assert!(out.status.success(), "laptop pass: {}", String::from_utf8_lossy(&out.stderr));
                std::thread::sleep(Duration::from_millis(200));
            }
            made
        })
    };
    writers[0].wait_for(2);

    // Every user moves to the other group, one after the other.
    let moving = std::time::Instant::now();
    let start_groups = users_by_group(&env);
    let mut expected = HashMap::new();
    for (name, _) in &users {
        let from = *start_groups.iter().find(|(_, us)| us.contains(name)).expect("every user lives somewhere").0;
        let to = if from == 1 { 2 } else { 1 };
        let report = ok_json(&env, &["admin", "user", "move", name, "--to", &to.to_string()]);
        assert_eq!((report["from"].as_u64(), report["to"].as_u64()), (Some(from), Some(to)), "{report}");
        eprintln!(
            "{name}: {} records in {} ms, writes waited {} ms",
            report["records"], report["elapsed_ms"], report["fenced_ms"]
        );
        expected.insert(name.clone(), to);
    }
    let end_groups = users_by_group(&env);
    for (name, to) in &expected {
        assert!(end_groups[to].contains(name), "{name} lives on group {to}: {end_groups:?}");
    }
    eprintln!("20 moves in {:?}", moving.elapsed());
    stop.store(true, Ordering::Relaxed);
    let made = laptop_thread.join().unwrap();
    let mut acked_total = 0;
    for (w, writer) in writers.into_iter().enumerate() {
        let (acked, failures) = writer.finish();
        assert!(failures.is_empty(), "writer {w}: writes failed during the moves: {failures:?}");
        read_back(&users[w].1, work.path(), &acked).unwrap_or_else(|e| panic!("writer {w}: {e}"));
        acked_total += acked.len();
    }
    eprintln!("{acked_total} writes and {made} synced notes acknowledged during the moves");

    // Quiet users: the same files, versions and change feed as before.
    for (u, (name, uenv)) in users.iter().enumerate().skip(3) {
        assert_eq!(holdings(uenv), before[u].0, "{name}: listing or versions changed");
        assert_eq!(feed_events(uenv), before[u].1, "{name}: change feed changed");
    }
    // Busy users: the feed is the one before plus the new events, every cursor once, in order.
    for (u, (name, uenv)) in users.iter().enumerate().take(3) {
        assert_eq!(holdings(uenv), before[u].0, "{name}: its first files changed");
        let events = feed_events(uenv);
        assert_eq!(events[..before[u].1.len()], before[u].1[..], "{name}: the old events");
        let cursors: Vec<u64> = events.iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
        assert_eq!(cursors, (1..=cursors.len() as u64).collect::<Vec<_>>(), "{name}: a gap or a repeat");
    }
    // The phone catches up from its cursor: only the laptop's notes come down.
    let down = sync_pass(&sync_env, &phone, "phone");
    assert_eq!((down["downloaded"].as_u64(), down["full_resync"].as_bool()), (Some(made), Some(false)), "{down}");
    assert_eq!(sync_pass(&sync_env, &laptop, "laptop")["events"], 0);
    assert_eq!(tree(&laptop), tree(&phone));
    assert_eq!(moves_in_progress(&env), Vec::<Value>::new(), "no move left behind");
}
