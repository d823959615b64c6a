//! Moving users between shard groups on a real in-process cluster (one
//! metadata node hosting the cluster group and two shard groups, six block
//! nodes): everything a user has arrives, writes during the move wait and
//! land, a move whose mover stopped is rolled back or finished, GC keeps
//! the chunks of moved users, and a history of reads and commits through two
//! routers across three moves is linearizable.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestCluster;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, MoveState, UserMove};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::user_move::UserFence;
use tessera_meta::model::versions::{CommitVersion, ConflictPolicy};
use tessera_meta::model::{
    EntryKind, FileRef, LinkPermission, Permission, QueryResponse, ShardCommand, ShardQuery, ShardResponse,
};
use tessera_router::cluster_view::ClusterView;
use tessera_router::datapath::{now_ms, DataPath, DataPathConfig};
use tessera_router::error::RouterError;
use tessera_router::{gc, links, ops, sharing, user_move};
use tessera_tests::linearizability::{check_from, Event, Op};
use tessera_tests::TestRng;

/// A cluster with shard groups 1 and 2 and the given users.
async fn two_groups(users: &[&str]) -> TestCluster {
    let c = TestCluster::start().await;
    let addr = c.meta.as_ref().unwrap().addr.clone();
    c.dp.view.meta.create_shard(2, &[(1, addr)], 64).await.unwrap();
    for user in users {
        let u = tessera_meta::cluster::User {
            user_id: (*user).into(),
            display_name: (*user).into(),
            access_key: format!("AK{user}"),
            secret_key: format!("secret-of-{user}"),
            created_at_ms: now_ms(),
        };
        cluster_ok(&c, ClusterCommand::CreateUser(u)).await;
    }
    c.dp.view.refresh().await.unwrap();
    c
}

async fn cluster_ok(c: &TestCluster, cmd: ClusterCommand) {
    let (resp, _) = c.dp.view.meta.propose(0, &GroupCommand::Cluster(cmd)).await.unwrap();
    assert!(matches!(resp, GroupResponse::Cluster(Ok(_))), "{resp:?}");
}

fn other_group(g: u64) -> u64 {
    if g == 1 {
        2
    } else {
        1
    }
}

async fn fence_on(c: &TestCluster, group: u64, user: &str) -> Option<UserFence> {
    let q = GroupQuery::Shard(ShardQuery::UserFence { user_id: user.into() });
    match c.dp.view.meta.query(group, &q).await.unwrap() {
        GroupAnswer::Shard(Ok(QueryResponse::Fence(f))) => f,
        other => panic!("unexpected {other:?}"),
    }
}

/// Reference counts group `group` holds for the chunks of `user`'s file `path`.
async fn refs_on(c: &TestCluster, group: u64, hashes: Vec<[u8; 32]>) -> Vec<u64> {
    let q = GroupQuery::Shard(ShardQuery::RefCounts { hashes });
    match c.dp.view.meta.query(group, &q).await.unwrap() {
        GroupAnswer::Shard(Ok(QueryResponse::RefCounts(counts))) => counts.into_iter().map(|(_, n)| n).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

async fn chunk_hashes(c: &TestCluster, user: &str, path: &str) -> Vec<[u8; 32]> {
    let newest = ops::versions(&c.dp, user, FileRef::Path(path.into())).await.unwrap().versions[0].version;
    let q = ShardQuery::GetVersion { user_id: user.into(), file: FileRef::Path(path.into()), version: newest };
    match ops::query(&c.dp, user, q).await.unwrap() {
        QueryResponse::Version(v) => v.chunks.iter().map(|r| r.hash).collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).rotate_left((i % 7) as u32)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moved_user_keeps_files_versions_shares_links_quota_and_change_cursors() {
    let c = two_groups(&["alice", "bob"]).await;
    let from = c.dp.view.shard_of("alice").unwrap();
    let to = other_group(from);
    for v in 0..3u8 {
        c.put("alice", "/docs/report.bin", &data(v, 300_000 + usize::from(v) * 1000)).await.unwrap();
    }
    c.put("alice", "/photos/cat.jpg", &data(9, 700_000)).await.unwrap();
    sharing::share(&c.dp, "alice", None, "/docs", "bob", Permission::View, None, "t").await.unwrap();
    let link = links::create(&c.dp, "alice", "/photos/cat.jpg", LinkPermission::View, None, None, "t").await.unwrap();
    ops::command(&c.dp, "alice", ShardCommand::SetQuota { user_id: "alice".into(), quota_bytes: Some(1 << 30) })
        .await
        .unwrap();
    let changes_before = ops::changes(&c.dp, "alice", 0, 1000, "", Duration::ZERO).await.unwrap();
    let head = changes_before.events.last().unwrap().cursor;
    let hashes = chunk_hashes(&c, "alice", "/photos/cat.jpg").await;
    let usage_before = ops::query(&c.dp, "alice", ShardQuery::Usage { user_id: "alice".into() }).await.unwrap();

    let done =
        user_move::move_user(&c.dp.view.meta, "alice", to, &user_move::MoveOptions::by("test"), |_| {}).await.unwrap();
    assert_eq!((done.from, done.to), (from, to));
    assert!(done.records > 0 && done.bytes > 0, "{done:?}");

    // The router follows without a restart (its map is old until it asks).
    assert_eq!(c.get("alice", "/photos/cat.jpg", None).await.unwrap(), data(9, 700_000));
    assert_eq!(c.dp.view.shard_of("alice").unwrap(), to);
    assert_eq!(c.get("alice", "/docs/report.bin", None).await.unwrap(), data(2, 302_000));
    let versions = ops::versions(&c.dp, "alice", FileRef::Path("/docs/report.bin".into())).await.unwrap();
    assert_eq!(versions.versions.len(), 3);
    let usage_after = ops::query(&c.dp, "alice", ShardQuery::Usage { user_id: "alice".into() }).await.unwrap();
    assert_eq!(usage_after, usage_before, "usage and quota travel with the user");
    // The change log is the same log: same events, same cursors, and the next write follows on.
    let changes_after = ops::changes(&c.dp, "alice", 0, 1000, "", Duration::ZERO).await.unwrap();
    assert_eq!(changes_after.events, changes_before.events);
    c.put("alice", "/after.txt", b"written on the new group").await.unwrap();
    let next = ops::changes(&c.dp, "alice", head, 1000, "", Duration::ZERO).await.unwrap();
    assert_eq!(next.events.len(), 1, "{next:?}");
    assert!(next.events[0].cursor > head && next.events[0].path == "/after.txt");
    // Bob still sees and reads what alice shared; the link still opens.
    let shared = sharing::shared_with(&c.dp, "bob").await.unwrap();
    assert!(shared.iter().any(|s| s.owner == "alice" && s.path == "/docs"), "{shared:?}");
    assert!(matches!(links::lookup(&c.dp, link.token).await.unwrap(), links::Lookup::Found(l) if l.owner == "alice"));
    // The chunk references moved with the records; the source holds none and refuses the user.
    assert!(refs_on(&c, to, hashes.clone()).await.iter().all(|n| *n > 0));
    assert!(refs_on(&c, from, hashes).await.iter().all(|n| *n == 0));
    assert!(matches!(fence_on(&c, from, "alice").await, Some(UserFence::Gone { to: t, .. }) if t == to));
    assert_eq!(fence_on(&c, to, "alice").await, None);

    // And back again: a user can return to a group it left.
    user_move::move_user(&c.dp.view.meta, "alice", from, &user_move::MoveOptions::by("test"), |_| {}).await.unwrap();
    assert_eq!(c.get("alice", "/after.txt", None).await.unwrap(), b"written on the new group");
    assert_eq!(c.dp.view.shard_of("alice").unwrap(), from);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_during_a_move_wait_and_every_acknowledged_one_is_kept() {
    let c = Arc::new(two_groups(&["carol"]).await);
    for i in 0..40u8 {
        c.put("carol", &format!("/seed/{i}"), &data(i, 20_000)).await.unwrap();
    }
    let to = other_group(c.dp.view.shard_of("carol").unwrap());
    // New files, new versions of old ones, deletions and purges while the move runs.
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..60u8 {
                let path = format!("/live/{i}");
                if let Err(e) = c.put("carol", &path, &data(i.wrapping_add(100), 5_000)).await {
                    panic!("write {path} failed during the move: {e}");
                }
                acked.push((path, i));
                if i % 4 == 0 {
                    let seed = format!("/seed/{}", i / 4);
                    c.put("carol", &seed, &data(i.wrapping_add(200), 9_000)).await.unwrap();
                }
                if i % 6 == 5 {
                    let seed = format!("/seed/{}", 20 + i / 6);
                    ops::delete(&c.dp, "carol", &seed, "t").await.unwrap();
                    if i % 12 == 11 {
                        ops::purge(&c.dp, "carol", &seed, "t").await.unwrap();
                    }
                }
            }
            acked
        })
    };
    // One record per page: the copy takes long enough for many writes to land
    // while it runs, which the replay must bring over.
    let slow = user_move::MoveOptions { page_records: 1, ..user_move::MoveOptions::by("test") };
    let done = user_move::move_user(&c.dp.view.meta, "carol", to, &slow, |_| {}).await.unwrap();
    let acked = writer.await.unwrap();
    assert_eq!(acked.len(), 60);
    eprintln!("move with writes: {done:?}");
    assert!(done.replayed > 0, "writes landed during the copy and were replayed: {done:?}");
    for (path, i) in acked {
        assert_eq!(c.get("carol", &path, None).await.unwrap(), data(i.wrapping_add(100), 5_000), "{path}");
    }
    for i in 0..40u8 {
        let path = format!("/seed/{i}");
        let got = c.get("carol", &path, None).await;
        match i {
            0..15 => assert_eq!(got.unwrap(), data((i * 4).wrapping_add(200), 9_000), "{path}: the newer version"),
            20..30 => assert!(got.is_err(), "{path} was deleted during the move"),
            _ => assert_eq!(got.unwrap(), data(i, 20_000), "{path}"),
        }
    }
    // Versions and chunk references are whole on the target: a GC pass past
    // the grace finds nothing of carol's to delete.
    let options = gc::GcOptions { grace: gc::MIN_GRACE, by: "test".into(), ..Default::default() };
    let deadline = tokio::time::Instant::now() + gc::MIN_GRACE + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        gc::run(&c.dp, &options, |_| {}).await.unwrap();
    }
    for i in (0..15u8).chain(30..40) {
        assert!(c.get("carol", &format!("/seed/{i}"), None).await.is_ok(), "/seed/{i} after GC");
    }
    // Every write is in the change log once, in cursor order.
    let log = ops::changes(&c.dp, "carol", 0, 1000, "", Duration::ZERO).await.unwrap();
    assert!(log.events.windows(2).all(|w| w[0].cursor < w[1].cursor));
    assert_eq!(log.events.iter().filter(|e| e.path.starts_with("/live/")).count(), 60);
}

/// Starts a move by hand as a mover would and stops where `commit` says,
/// with a start time long past so that it counts as stale.
async fn half_done_move(c: &TestCluster, user: &str, commit: bool) -> UserMove {
    let meta = &c.dp.view.meta;
    let from = c.dp.view.shard_of(user).unwrap();
    let m = UserMove {
        user_id: user.into(),
        move_id: format!("test-{commit}"),
        from,
        to: other_group(from),
        state: MoveState::Copying,
        started_at_ms: now_ms() - 3_600_000,
        touched_at_ms: now_ms() - 3_600_000,
        copied_records: 0,
        copied_bytes: 0,
        by: "a mover that died".into(),
    };
    cluster_ok(c, ClusterCommand::BeginUserMove(m.clone())).await;
    let step = |group, cmd| async move { meta.shard_ok(group, cmd).await.unwrap() };
    step(m.from, ShardCommand::TrackUser { user_id: user.into(), move_id: m.move_id.clone() }).await;
    step(m.from, ShardCommand::FenceUser { user_id: user.into(), move_id: m.move_id.clone() }).await;
    let q = GroupQuery::Shard(ShardQuery::ExportUser { user_id: user.into(), cursor: None, limit: 10_000 });
    let GroupAnswer::Shard(Ok(QueryResponse::UserExport(page))) = meta.query(m.from, &q).await.unwrap() else {
        panic!("export failed");
    };
    assert!(page.next.is_none());
    let begin = ShardCommand::BeginImport {
        user_id: user.into(),
        move_id: m.move_id.clone(),
        next_entry_id: page.next_entry_id,
    };
    step(m.to, begin).await;
    let records = page.records.into_iter().map(|(k, v)| (k, Some(v))).collect();
    step(m.to, ShardCommand::ImportRecords { user_id: user.into(), move_id: m.move_id.clone(), records }).await;
    if commit {
        cluster_ok(c, ClusterCommand::CommitUserMove { user_id: user.into(), move_id: m.move_id.clone() }).await;
    }
    m
}

async fn moves(c: &TestCluster) -> Vec<UserMove> {
    match c.dp.view.meta.query(0, &GroupQuery::Cluster(ClusterQuery::UserMoves)).await.unwrap() {
        GroupAnswer::Cluster(ClusterAnswer::UserMoves(m)) => m,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_whose_mover_died_is_rolled_back_before_the_commit_and_finished_after() {
    let c = two_groups(&["dave", "erin"]).await;
    c.put("dave", "/a", b"dave's file").await.unwrap();
    c.put("erin", "/b", b"erin's file").await.unwrap();

    let rolled = half_done_move(&c, "dave", false).await;
    let finished = half_done_move(&c, "erin", true).await;
    // A fresh move is left alone; stale ones are taken over.
    assert!(user_move::recover_stale(&c.dp.view.meta, Duration::from_secs(7200)).await.unwrap().is_empty());
    let mut outcomes = user_move::recover_stale(&c.dp.view.meta, user_move::STALE_AFTER).await.unwrap();
    outcomes.sort_by(|a, b| a.0.user_id.cmp(&b.0.user_id));
    let outcomes: Vec<_> = outcomes.into_iter().map(|(m, how)| (m.user_id, how)).collect();
    assert_eq!(
        outcomes,
        [("dave".to_owned(), user_move::Recovery::RolledBack), ("erin".to_owned(), user_move::Recovery::Finished)]
    );
    assert!(moves(&c).await.is_empty());

    // Dave stayed where he was and writes there again; the target's copy is gone.
    c.dp.view.refresh().await.unwrap();
    assert_eq!(c.dp.view.shard_of("dave").unwrap(), rolled.from);
    assert_eq!(fence_on(&c, rolled.from, "dave").await, None);
    assert!(matches!(fence_on(&c, rolled.to, "dave").await, Some(UserFence::Gone { .. })));
    c.put("dave", "/c", b"after the rollback").await.unwrap();
    assert_eq!(c.get("dave", "/a", None).await.unwrap(), b"dave's file");
    // Erin lives on the target now, with her data.
    assert_eq!(c.dp.view.shard_of("erin").unwrap(), finished.to);
    assert_eq!(c.get("erin", "/b", None).await.unwrap(), b"erin's file");
    c.put("erin", "/d", b"after the finish").await.unwrap();
    assert!(matches!(fence_on(&c, finished.from, "erin").await, Some(UserFence::Gone { .. })));

    // A rolled-back move cannot be committed by a mover that wakes up late.
    let late = c
        .dp
        .view
        .meta
        .propose(
            0,
            &GroupCommand::Cluster(ClusterCommand::CommitUserMove { user_id: "dave".into(), move_id: rolled.move_id }),
        )
        .await
        .unwrap()
        .0;
    assert!(matches!(late, GroupResponse::Cluster(Err(_))), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_after_a_move_keeps_every_chunk_of_the_moved_user() {
    let c = two_groups(&["frank"]).await;
    let files: Vec<(String, Vec<u8>)> = (0..5u8).map(|i| (format!("/f{i}"), data(i, 150_000))).collect();
    for (path, bytes) in &files {
        c.put("frank", path, bytes).await.unwrap();
    }
    let to = other_group(c.dp.view.shard_of("frank").unwrap());
    user_move::move_user(&c.dp.view.meta, "frank", to, &user_move::MoveOptions::by("test"), |_| {}).await.unwrap();
    let options = gc::GcOptions { grace: gc::MIN_GRACE, by: "test".into(), ..Default::default() };
    // Passes until the chunks are past the grace: none of them may go, since
    // only the target references them now.
    let deadline = tokio::time::Instant::now() + gc::MIN_GRACE + Duration::from_secs(3);
    let mut passes = 0;
    while tokio::time::Instant::now() < deadline {
        let record = gc::run(&c.dp, &options, |_| {}).await.unwrap();
        assert_eq!(record.fragments_deleted, 0, "{record:?}");
        passes += 1;
    }
    assert!(passes > 1);
    for (path, bytes) in &files {
        assert_eq!(&c.get("frank", path, None).await.unwrap(), bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gc_mark_during_which_a_move_commits_gives_up_and_deletes_nothing() {
    let c = Arc::new(two_groups(&["gina", "hank"]).await);
    let mut files = Vec::new();
    for (user, seed) in [("gina", 0u8), ("hank", 50)] {
        for i in 0..12u8 {
            let (path, bytes) = (format!("/g/{i}"), data(seed + i, 200_000));
            c.put(user, &path, &bytes).await.unwrap();
            files.push((user, path, bytes));
        }
    }
    // Gina moves back and forth for as long as GC runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mover = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut moves = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let to = other_group(c.dp.view.shard_of("gina").unwrap());
                user_move::move_user(&c.dp.view.meta, "gina", to, &user_move::MoveOptions::by("test"), |_| {})
                    .await
                    .unwrap();
                c.dp.view.refresh().await.unwrap();
                moves += 1;
            }
            moves
        })
    };
    // One reference per page: the mark takes long enough for moves to commit during it.
    let options = gc::GcOptions { grace: gc::MIN_GRACE, page: 1, by: "test".into(), ..Default::default() };
    let (mut gave_up, mut finished) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while gave_up == 0 && tokio::time::Instant::now() < deadline {
        match gc::run(&c.dp, &options, |_| {}).await {
            Ok(record) => {
                assert_eq!(record.fragments_deleted, 0, "{record:?}");
                finished += 1;
            }
            Err(e) if e.to_string().contains("moved between shard groups") => gave_up += 1,
            Err(e) => panic!("GC failed otherwise: {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let moves = mover.await.unwrap();
    eprintln!("{moves} moves; GC passes: {finished} finished, {gave_up} gave up");
    assert!(gave_up > 0, "a move committed during some mark and that pass gave up");
    for (user, path, bytes) in &files {
        assert_eq!(&c.get(user, path, None).await.unwrap(), bytes, "{user} {path}");
    }
}

/// A metadata-only commit of `path` for `user` (no chunks: the history is about versions).
fn bare_commit(user: &str, path: &str, content: u64, base: Option<u64>, device: &str) -> ShardCommand {
    let mut sha = [0u8; 32];
    sha[..8].copy_from_slice(&content.to_le_bytes());
    ShardCommand::CommitVersion(CommitVersion {
        user_id: user.into(),
        path: path.into(),
        size: 0,
        content_sha256: sha,
        chunks: vec![],
        device_id: device.into(),
        created_by: user.into(),
        base_version: base,
        policy: ConflictPolicy::Reject,
        now_ms: now_ms(),
        meta: Default::default(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_history_through_two_routers_while_the_user_moves_back_and_forth_is_linearizable() {
    let c = Arc::new(two_groups(&["dave"]).await);
    // A second router with its own map and cache: it learns of each move only
    // when a group sends it on.
    let meta_addr = c.meta.as_ref().unwrap().addr.clone();
    let other_view = ClusterView::load(Arc::new(MetaClient::new(vec![meta_addr]))).await.unwrap();
    let other = DataPath::new(other_view, DataPathConfig::default()).unwrap();
    let routers = [c.dp.clone(), other];
    // Six files, so no file's history outgrows the checker (128 operations).
    let keys = ["/a", "/b", "/c", "/d", "/e", "/f"];
    for k in keys {
        ops::command(&c.dp, "dave", bare_commit("dave", k, 0, None, "setup")).await.unwrap();
    }

    let epoch = Instant::now();
    let history: Arc<Mutex<Vec<Event>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (routers, history) = (routers.clone(), history.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = TestRng::new(w + 41);
            let mut last_seen = [1u64; 6];
            for i in 0..90u64 {
                // Spread over the moves rather than racing ahead of them.
                tokio::time::sleep(Duration::from_millis(5)).await;
                let (k, choice) = (rng.below(6) as usize, rng.below(3));
                let dp = &routers[rng.below(2) as usize];
                let invoked = epoch.elapsed().as_nanos();
                let (op, done) = if choice == 0 {
                    let entry =
                        ops::stat(dp, "dave", keys[k]).await.unwrap_or_else(|e| panic!("read {}: {e}", keys[k]));
                    let EntryKind::File(f) = &entry.kind else { panic!("{} is a file", keys[k]) };
                    last_seen[k] = f.version;
                    (Op::Read(f.version), true)
                } else {
                    let base = (choice == 2).then_some(last_seen[k]);
                    let cmd = bare_commit("dave", keys[k], w * 1_000_000 + i, base, &format!("w{w}"));
                    match ops::command(dp, "dave", cmd).await {
                        Ok(ShardResponse::Committed(c)) => {
                            last_seen[k] = c.version;
                            (base.map_or(Op::Write(c.version), |b| Op::Cas { base: b, result: Some(c.version) }), true)
                        }
                        Ok(other) => panic!("unexpected answer {other:?}"),
                        Err(RouterError::Conflict { current_version, .. }) if base.is_some() => {
                            last_seen[k] = current_version.unwrap_or(last_seen[k]);
                            (Op::Cas { base: base.unwrap_or(0), result: None }, true)
                        }
                        // Not acknowledged: it may or may not have taken effect.
                        Err(_) => (Op::Unknown { base }, false),
                    }
                };
                let completed = done.then(|| epoch.elapsed().as_nanos());
                history.lock().unwrap().push(Event { key: keys[k].into(), invoked, completed, op });
            }
        }));
    }
    // Three moves while the workers run, copying a few records per page so
    // that commits land during each copy and in the fence.
    let slow = user_move::MoveOptions { page_records: 4, ..user_move::MoveOptions::by("test") };
    let mut replayed = 0;
    for _ in 0..3 {
        let to = other_group(user_move::group_of(&c.dp.view.meta, "dave").await.unwrap());
        let done = user_move::move_user(&c.dp.view.meta, "dave", to, &slow, |_| {}).await.unwrap();
        replayed += done.replayed;
    }
    for w in workers {
        w.await.unwrap();
    }
    let history = history.lock().unwrap().clone();
    assert!(replayed > 0, "commits landed during the copies");
    assert!(history.iter().any(|e| matches!(e.op, Op::Cas { result: Some(_), .. })));
    assert!(history.iter().any(|e| matches!(e.op, Op::Read(_))));
    eprintln!("{} operations, {replayed} records replayed", history.len());
    check_from(&history, 1).unwrap();
}
