//! A metadata shard on three real `tessera-meta` processes: a concurrent
//! history of reads, blind commits and compare-and-set commits on a few files,
//! recorded while the shard's leader is killed (kill -9) and restarted, must
//! be linearizable; change-log long-polls wake up on commits.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_meta::client::MetaClient;
use tessera_meta::command::{ApplyErrorKind, GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::namespace::EntryKind;
use tessera_meta::model::versions::{CommitVersion, ConflictPolicy};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery};
use tessera_tests::linearizability::{check_from, Event, Op};
use tessera_tests::{read_addr_file, ProcessGuard, TestRng};

const SHARD: u64 = 1;
const USER: &str = "lin-user";

struct Node {
    guard: ProcessGuard,
    addr: String,
    id: u64,
}

fn start(work: &Path, id: u64, listen: &str, extra: &[&str]) -> Node {
    let cfg = work.join("meta.toml");
    std::fs::write(
        &cfg,
        "[raft]\nheartbeat_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600\nsnapshot_every_entries = 50\n",
    )
    .unwrap();
    let addr_file = work.join(format!("n{id}.addr"));
    let _ = std::fs::remove_file(&addr_file);
    let data = work.join(format!("n{id}"));
    let mut args: Vec<String> = [
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        listen,
        "--data-dir",
        data.to_str().unwrap(),
        "--node-id",
        &id.to_string(),
        "--addr-file",
        addr_file.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = work.join(format!("n{id}-{}.log", rand_suffix()));
    let mut guard =
        ProcessGuard::spawn(&format!("meta-{id}"), Path::new(env!("CARGO_BIN_EXE_tessera-meta")), &args, &log).unwrap();
    let addr = read_addr_file(&addr_file, Duration::from_secs(60), &mut guard).unwrap();
    Node { guard, addr, id }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn commit(path: &str, content: u64, base: Option<u64>, device: &str) -> GroupCommand {
    let mut sha = [0u8; 32];
    sha[..8].copy_from_slice(&content.to_le_bytes());
    GroupCommand::Shard(ShardCommand::CommitVersion(CommitVersion {
        user_id: USER.into(),
        path: path.into(),
        size: 0,
        content_sha256: sha,
        chunks: vec![],
        device_id: device.into(),
        created_by: USER.into(),
        base_version: base,
        policy: ConflictPolicy::Reject,
        now_ms: 1_700_000_000_000,
        meta: Default::default(),
    }))
}

fn stat(path: &str) -> GroupQuery {
    GroupQuery::Shard(ShardQuery::Stat { user_id: USER.into(), path: path.into(), include_deleted: false })
}

fn version_of(answer: &GroupAnswer) -> Option<u64> {
    match answer {
        GroupAnswer::Shard(Ok(QueryResponse::Entry(e))) => match &e.kind {
            EntryKind::File(f) => Some(f.version),
            EntryKind::Folder => None,
        },
        _ => None,
    }
}

async fn shard_leader(client: &MetaClient, nodes: &[Node]) -> Option<usize> {
    for (i, n) in nodes.iter().enumerate() {
        if let Ok(s) = client.status(&n.addr).await {
            if s.groups.iter().any(|g| g.group_id == SHARD && g.leader == Some(n.id)) {
                return Some(i);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_history_with_leader_kills_is_linearizable() {
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, "127.0.0.1:0", &["--bootstrap"]);
    let n2 = start(work.path(), 2, "127.0.0.1:0", &["--join", &n1.addr]);
    let n3 = start(work.path(), 3, "127.0.0.1:0", &["--join", &n1.addr]);
    let client = Arc::new(MetaClient::new(vec![n1.addr.clone(), n2.addr.clone(), n3.addr.clone()]));
    client.create_group(SHARD, &[(1, n1.addr.clone()), (2, n2.addr.clone()), (3, n3.addr.clone())]).await.unwrap();
    let keys = ["/a.txt", "/b.txt", "/c.txt"];
    for k in keys {
        let (resp, _) = client.propose(SHARD, &commit(k, 0, None, "setup")).await.unwrap();
        assert!(matches!(resp, GroupResponse::Shard(Ok(_))), "{resp:?}");
    }
    let nodes = Arc::new(tokio::sync::Mutex::new(vec![n1, n2, n3]));

    let epoch = Instant::now();
    let history: Arc<Mutex<Vec<Event>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..4u64 {
        let (client, history) = (client.clone(), history.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = TestRng::new(w + 11);
            let mut last_seen = [1u64; 3];
            for i in 0..40u64 {
                let k = rng.below(3) as usize;
                let key = keys[k];
                let invoked = epoch.elapsed().as_nanos();
                let choice = rng.below(3);
                let (op, done) = if choice == 0 {
                    match client.query(SHARD, &stat(key)).await {
                        Ok(a) => match version_of(&a) {
                            Some(v) => {
                                last_seen[k] = v;
                                (Some(Op::Read(v)), true)
                            }
                            None => panic!("stat of {key} answered {a:?}"),
                        },
                        Err(_) => (None, false),
                    }
                } else {
                    let base = (choice == 2).then_some(last_seen[k]);
                    let content = w * 1_000_000 + i + 1;
                    match client.propose(SHARD, &commit(key, content, base, &format!("w{w}"))).await {
                        Ok((GroupResponse::Shard(Ok(tessera_meta::model::ShardResponse::Committed(c))), _)) => {
                            last_seen[k] = c.version;
                            let op = match base {
                                None => Op::Write(c.version),
                                Some(b) => Op::Cas { base: b, result: Some(c.version) },
                            };
                            (Some(op), true)
                        }
                        Ok((GroupResponse::Shard(Err(e)), _)) if e.kind == ApplyErrorKind::Conflict => {
                            last_seen[k] = e.current_version.unwrap_or(last_seen[k]);
                            (Some(Op::Cas { base: base.unwrap_or(0), result: None }), true)
                        }
                        Ok(other) => panic!("unexpected answer {other:?}"),
                        // Unknown outcome: it may or may not have happened.
                        Err(_) => (Some(Op::Unknown { base }), false),
                    }
                };
                if let Some(op) = op {
                    let completed = done.then(|| epoch.elapsed().as_nanos());
                    history.lock().unwrap().push(Event { key: key.into(), invoked, completed, op });
                }
            }
        }));
    }

    // Kill the shard's leader twice while the workers run; bring it back on
    // the same address each time.
    let killer = {
        let (client, nodes, history) = (client.clone(), nodes.clone(), history.clone());
        let work = work.path().to_path_buf();
        tokio::spawn(async move {
            for round in 1..=2usize {
                let deadline = Instant::now() + Duration::from_secs(60);
                while history.lock().unwrap().len() < round * 40 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let mut nodes = nodes.lock().await;
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut leader = None;
                while leader.is_none() && Instant::now() < deadline {
                    leader = shard_leader(&client, &nodes).await;
                    if leader.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                let Some(i) = leader else { panic!("no shard leader within 20 s") };
                let (id, addr) = (nodes[i].id, nodes[i].addr.clone());
                nodes[i].guard.kill9();
                tokio::time::sleep(Duration::from_millis(700)).await;
                nodes[i] = start(&work, id, &addr, &[]);
            }
        })
    };
    for w in workers {
        w.await.unwrap();
    }
    killer.await.unwrap();
    let history = history.lock().unwrap().clone();
    assert!(history.len() >= 100, "only {} operations recorded", history.len());
    assert!(history.iter().any(|e| matches!(e.op, Op::Cas { result: Some(_), .. })));
    assert!(history.iter().any(|e| matches!(e.op, Op::Cas { result: None, .. })), "no CAS conflict exercised");
    check_from(&history, 1).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_log_long_poll_wakes_on_commit_and_filters_the_callers_device() {
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, "127.0.0.1:0", &["--bootstrap"]);
    let client = Arc::new(MetaClient::new(vec![n1.addr.clone()]));
    client.create_group(SHARD, &[(1, n1.addr.clone())]).await.unwrap();
    let read = |after: u64, exclude: Option<&str>| {
        GroupQuery::Shard(ShardQuery::ReadChanges {
            user_id: USER.into(),
            after_cursor: after,
            limit: 100,
            exclude_device: exclude.map(str::to_owned),
        })
    };
    // Nothing yet: a long-poll that times out answers with no events.
    let started = Instant::now();
    let a = client.query_wait(SHARD, &read(0, None), Duration::from_millis(300)).await.unwrap();
    assert!(matches!(&a, GroupAnswer::Shard(Ok(QueryResponse::Changes(p))) if p.events.is_empty()), "{a:?}");
    assert!(started.elapsed() >= Duration::from_millis(300), "returned before its wait");

    // A long-poll in progress wakes up when another device commits.
    let poller = {
        let client = client.clone();
        let q = read(0, Some("laptop"));
        tokio::spawn(async move { client.query_wait(SHARD, &q, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.propose(SHARD, &commit("/mine.txt", 1, None, "laptop")).await.unwrap();
    client.propose(SHARD, &commit("/theirs.txt", 2, None, "phone")).await.unwrap();
    let answer = poller.await.unwrap().unwrap();
    let GroupAnswer::Shard(Ok(QueryResponse::Changes(page))) = answer else { panic!("{answer:?}") };
    let paths: Vec<&str> = page.events.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, vec!["/theirs.txt"], "the laptop's own change is filtered out");
    assert!(page.events.iter().all(|e| e.device_id == "phone"));
    drop(n1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_across_shards_records_shared_with_me_and_grants_inherited_access() {
    use tessera_meta::model::{Action, Permission};
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, "127.0.0.1:0", &["--bootstrap"]);
    let client = MetaClient::new(vec![n1.addr.clone()]);
    // Alice's data lives on shard 1, Bob's on shard 2.
    client.create_shard(1, &[(1, n1.addr.clone())], 64).await.unwrap();
    client.create_shard(2, &[(1, n1.addr.clone())], 64).await.unwrap();
    let mut alice_file = commit("/docs/a/b/c.txt", 9, None, "alice-laptop");
    if let GroupCommand::Shard(ShardCommand::CommitVersion(c)) = &mut alice_file {
        c.user_id = "alice".into();
        c.created_by = "alice".into();
    }
    client.propose(1, &alice_file).await.unwrap();
    client.share(1, 2, "alice", "/docs", "bob", Permission::Edit, None, "alice-laptop", 1_000).await.unwrap();

    let listed = client
        .query(
            2,
            &GroupQuery::Shard(ShardQuery::ListSharedWithMe { user_id: "bob".into(), start_after: None, limit: 10 }),
        )
        .await
        .unwrap();
    let GroupAnswer::Shard(Ok(QueryResponse::SharedWithMe(page))) = listed else { panic!("{listed:?}") };
    assert_eq!(page.entries.len(), 1, "{page:?}");
    assert_eq!((page.entries[0].owner.as_str(), page.entries[0].path.as_str()), ("alice", "/docs"));

    let may = |path: &str, action: Action, now_ms: i64| {
        GroupQuery::Shard(ShardQuery::CheckAccess {
            owner: "alice".into(),
            path: path.into(),
            user_id: "bob".into(),
            action,
            now_ms,
        })
    };
    let allowed = |a: GroupAnswer| matches!(a, GroupAnswer::Shard(Ok(QueryResponse::Access(d))) if d.allowed);
    assert!(allowed(client.query(1, &may("/docs/a/b/c.txt", Action::Write, 2_000)).await.unwrap()));
    assert!(!allowed(client.query(1, &may("/docs/a/b/c.txt", Action::Share, 2_000)).await.unwrap()));
    assert!(!allowed(client.query(1, &may("/private.txt", Action::Read, 2_000)).await.unwrap()));
    drop(n1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_versions_are_configurable_per_shard() {
    use tessera_meta::model::versions::FileRef;
    use tessera_meta::model::ShardConfig;
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, "127.0.0.1:0", &["--bootstrap"]);
    let client = MetaClient::new(vec![n1.addr.clone()]);
    client.create_shard(1, &[(1, n1.addr.clone())], 64).await.unwrap();
    let bad = GroupCommand::SetShardConfig(ShardConfig { max_versions: 0, ..ShardConfig::default() });
    assert!(matches!(client.propose(SHARD, &bad).await.unwrap().0, GroupResponse::Shard(Err(_))));
    let set = GroupCommand::SetShardConfig(ShardConfig { max_versions: 3, ..ShardConfig::default() });
    assert_eq!(client.propose(SHARD, &set).await.unwrap().0, GroupResponse::ShardConfigSet);
    for i in 1..=5 {
        client.propose(SHARD, &commit("/v.txt", i, None, "dev")).await.unwrap();
    }
    let q = GroupQuery::Shard(ShardQuery::ListVersions {
        user_id: USER.into(),
        file: FileRef::Path("/v.txt".into()),
        before: None,
        limit: 100,
    });
    let GroupAnswer::Shard(Ok(QueryResponse::Versions(page))) = client.query(SHARD, &q).await.unwrap() else {
        panic!("unexpected answer")
    };
    let kept: Vec<u64> = page.versions.iter().map(|v| v.version).collect();
    assert_eq!(kept, vec![5, 4, 3], "only the last 3 versions are kept");
    drop(n1);
}
