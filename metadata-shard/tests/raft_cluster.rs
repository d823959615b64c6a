//! Three real `tessera-meta` processes on 127.0.0.1: leader killed with
//! kill -9 during a stream of commits, restart and catch-up, and a replica
//! added later that catches up from a snapshot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_meta::client::{ClientError, MetaClient};
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse, User};
use tessera_meta::command::{ApplyErrorKind, GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_tests::{read_addr_file, ProcessGuard};

struct MetaProcess {
    guard: ProcessGuard,
    addr: String,
    node_id: u64,
    data_dir: PathBuf,
}

fn start(work: &Path, node_id: u64, extra: &[&str]) -> MetaProcess {
    let data_dir = work.join(format!("meta-{node_id}"));
    start_on(work, node_id, &data_dir, "127.0.0.1:0", extra)
}

/// Starts a node on `listen`; a restarted node comes back on the address its
/// peers know it by.
fn start_on(work: &Path, node_id: u64, data_dir: &Path, listen: &str, extra: &[&str]) -> MetaProcess {
    let cfg = work.join("meta.toml");
    // Fast elections, and frequent snapshots so log compaction happens.
    std::fs::write(&cfg, "[raft]\nheartbeat_ms = 50\nelection_timeout_min_ms = 300\nelection_timeout_max_ms = 600\nsnapshot_every_entries = 20\n").unwrap();
    let addr_file = work.join(format!("meta-{node_id}.addr"));
    let _ = std::fs::remove_file(&addr_file);
    let mut args: Vec<String> = vec![
        "--config".into(),
        cfg.display().to_string(),
        "--listen".into(),
        listen.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--node-id".into(),
        node_id.to_string(),
        "--addr-file".into(),
        addr_file.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = work.join(format!("meta-{node_id}-{}.log", std::process::id()));
    let mut guard = ProcessGuard::spawn(
        &format!("tessera-meta-{node_id}"),
        Path::new(env!("CARGO_BIN_EXE_tessera-meta")),
        &args,
        &log,
    )
    .unwrap();
    let addr = read_addr_file(&addr_file, Duration::from_secs(60), &mut guard).unwrap();
    MetaProcess { guard, addr, node_id, data_dir: data_dir.to_path_buf() }
}

fn user(i: usize) -> GroupCommand {
    GroupCommand::Cluster(ClusterCommand::CreateUser(User {
        user_id: format!("user-{i:05}"),
        display_name: format!("User {i}"),
        access_key: format!("AK{i:05}"),
        secret_key: format!("secret-of-{i:05}"),
        created_at_ms: i as i64,
    }))
}

async fn voters_of(client: &MetaClient, addr: &str) -> BTreeSet<u64> {
    match client.status(addr).await {
        Ok(s) => {
            s.groups.iter().find(|g| g.group_id == 0).map(|g| g.voters.iter().copied().collect()).unwrap_or_default()
        }
        Err(_) => BTreeSet::new(),
    }
}

async fn leader_of(client: &MetaClient, nodes: &[&MetaProcess]) -> Option<u64> {
    for n in nodes {
        if let Ok(s) = client.status(&n.addr).await {
            if let Some(g) = s.groups.iter().find(|g| g.group_id == 0) {
                if g.leader == Some(n.node_id) {
                    return Some(n.node_id);
                }
            }
        }
    }
    None
}

async fn wait_async<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn has_user(client: &MetaClient, addr: &str, id: usize) -> bool {
    let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey(format!("AK{id:05}")));
    matches!(client.query_local(addr, 0, &q).await, Ok(GroupAnswer::Cluster(ClusterAnswer::User(Some(u)))) if u.user_id == format!("user-{id:05}"))
}

/// Acknowledged = the leader answered with the commit's result. A retry of a
/// commit whose first answer was lost finds the user already created: that
/// commit happened too.
async fn commit_user(client: &MetaClient, i: usize) -> Result<u64, ClientError> {
    let (resp, index) = client.propose(0, &user(i)).await?;
    match resp {
        GroupResponse::Cluster(Ok(ClusterResponse::UserCreated(_))) => Ok(index),
        GroupResponse::Cluster(Err(e)) if e.kind == ApplyErrorKind::AlreadyExists => Ok(index),
        other => panic!("unexpected response {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_no_acknowledged_commit_and_replicas_catch_up() {
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, &["--bootstrap"]);
    let n2 = start(work.path(), 2, &["--join", &n1.addr]);
    let n3 = start(work.path(), 3, &["--join", &n1.addr]);
    let admin = MetaClient::new(vec![n1.addr.clone()]);
    wait_async("3 voters", Duration::from_secs(30), async || {
        (voters_of(&admin, &n1.addr).await == BTreeSet::from([1, 2, 3])).then_some(())
    })
    .await;
    let mut nodes = vec![n1, n2, n3];

    let client = Arc::new(MetaClient::new(nodes.iter().map(|n| n.addr.clone()).collect()));
    let acked: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let writer = {
        let client = client.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0..400usize {
                match commit_user(&client, i).await {
                    Ok(index) => acked.lock().unwrap().push((i, index)),
                    Err(e) => panic!("commit {i} failed: {e}"),
                }
            }
        })
    };
    wait_async("40 commits", Duration::from_secs(60), async || (acked.lock().unwrap().len() >= 40).then_some(())).await;
    let refs: Vec<&MetaProcess> = nodes.iter().collect();
    let leader = wait_async("a leader", Duration::from_secs(10), async || leader_of(&client, &refs).await).await;
    let victim = nodes.iter().position(|n| n.node_id == leader).unwrap();
    let before = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    nodes[victim].guard.kill9();
    let recovered = wait_async("a commit after the leader kill", Duration::from_secs(30), async || {
        (acked.lock().unwrap().len() > before).then(|| killed_at.elapsed())
    })
    .await;
    eprintln!("writes resumed {recovered:?} after killing leader {leader}");
    writer.await.unwrap();

    // Restart the killed node on its data dir: it rejoins and catches up.
    let dir = nodes[victim].data_dir.clone();
    let old_addr = nodes[victim].addr.clone();
    nodes[victim] = start_on(work.path(), leader, &dir, &old_addr, &[]);

    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 400);
    assert!(acked.windows(2).all(|w| w[0].1 < w[1].1), "acknowledged commits are in log order");
    for n in &nodes {
        let addr = n.addr.clone();
        wait_async(&format!("node {} to apply every commit", n.node_id), Duration::from_secs(30), async || {
            has_user(&client, &addr, 399).await.then_some(())
        })
        .await;
        for (i, _) in &acked {
            assert!(has_user(&client, &n.addr, *i).await, "node {} lacks acknowledged user {i}", n.node_id);
        }
    }

    // The log was compacted; a fourth replica added now starts from a snapshot.
    let status = client.status(&nodes[0].addr).await.unwrap();
    let g0 = status.groups.iter().find(|g| g.group_id == 0).unwrap();
    assert!(g0.purged_index.is_some(), "log should have been compacted: {g0:?}");
    let n4 = start(work.path(), 4, &[]);
    let voters = client.add_replica(0, 4, &n4.addr).await.unwrap();
    assert_eq!(voters, vec![1, 2, 3, 4]);
    // The new replica's own view catches up shortly after the leader's.
    let g4 = wait_async("the new replica to apply the snapshot", Duration::from_secs(30), async || {
        let s4 = client.status(&n4.addr).await.ok()?;
        let g = s4.groups.into_iter().find(|g| g.group_id == 0)?;
        (g.last_applied >= g0.last_applied && g.state != "Learner").then_some(g)
    })
    .await;
    assert!(g4.snapshot_index.is_some(), "new replica should have installed a snapshot: {g4:?}");
    for (i, _) in &acked {
        assert!(has_user(&client, &n4.addr, *i).await, "new replica lacks user {i}");
    }
    // Linearizable reads through a client that only knows the new replica.
    let via4 = MetaClient::new(vec![n4.addr.clone()]);
    let answer = via4.query(0, &GroupQuery::Cluster(ClusterQuery::UserByAccessKey("AK00123".into()))).await.unwrap();
    assert!(matches!(answer, GroupAnswer::Cluster(ClusterAnswer::User(Some(ref u))) if u.user_id == "user-00123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_group_moves_a_replica_while_serving_writes() {
    let work = tempfile::tempdir().unwrap();
    let n1 = start(work.path(), 1, &["--bootstrap"]);
    let n2 = start(work.path(), 2, &["--join", &n1.addr]);
    let n3 = start(work.path(), 3, &["--join", &n1.addr]);
    let n4 = start(work.path(), 4, &[]);
    let all: Vec<String> = [&n1, &n2, &n3, &n4].iter().map(|n| n.addr.clone()).collect();
    let client = Arc::new(MetaClient::new(all.clone()));
    let voters =
        client.create_group(7, &[(1, n1.addr.clone()), (2, n2.addr.clone()), (3, n3.addr.clone())]).await.unwrap();
    assert_eq!(voters, vec![1, 2, 3]);

    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let writer = {
        let (client, acked) = (client.clone(), acked.clone());
        tokio::spawn(async move {
            for i in 0..150usize {
                let (resp, _) = client.propose(7, &user(i)).await.unwrap_or_else(|e| panic!("commit {i}: {e}"));
                assert!(matches!(resp, GroupResponse::Cluster(Ok(_))), "{resp:?}");
                acked.lock().unwrap().push(i);
            }
        })
    };
    wait_async("20 commits", Duration::from_secs(30), async || (acked.lock().unwrap().len() >= 20).then_some(())).await;
    // Move the replica on node 3 to node 4 while the writer keeps going.
    assert_eq!(client.add_replica(7, 4, &n4.addr).await.unwrap(), vec![1, 2, 3, 4]);
    assert_eq!(client.remove_replica(7, 3).await.unwrap(), vec![1, 2, 4]);
    writer.await.unwrap();
    assert_eq!(acked.lock().unwrap().len(), 150);
    for n in [&n1, &n2, &n4] {
        let addr = n.addr.clone();
        let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey("AK00149".into()));
        wait_async(&format!("node {} to apply everything", n.node_id), Duration::from_secs(30), async || {
            matches!(client.query_local(&addr, 7, &q).await, Ok(GroupAnswer::Cluster(ClusterAnswer::User(Some(_)))))
                .then_some(())
        })
        .await;
        for i in 0..150 {
            let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey(format!("AK{i:05}")));
            assert!(
                matches!(
                    client.query_local(&n.addr, 7, &q).await,
                    Ok(GroupAnswer::Cluster(ClusterAnswer::User(Some(_))))
                ),
                "node {} lacks user {i} of group 7",
                n.node_id
            );
        }
    }
    // Group 7 is independent of the cluster group on the same processes.
    let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey("AK00001".into()));
    assert!(matches!(client.query(0, &q).await.unwrap(), GroupAnswer::Cluster(ClusterAnswer::User(None))));
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    tessera_tests::http_get(addr, path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_config_metrics_health_and_sigterm() {
    let work = tempfile::tempdir().unwrap();
    // Unknown config keys are refused at start, naming the key.
    let bad = work.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\n[raft]\nheartbeat_msec = 5\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera-meta"))
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("heartbeat_msec"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut n1 = start(work.path(), 1, &["--bootstrap"]);
    let client = MetaClient::new(vec![n1.addr.clone()]);
    commit_user(&client, 1).await.unwrap();
    let metrics = wait_async("raft gauges", Duration::from_secs(10), async || {
        let (code, body) = http_get(&n1.addr, "/metrics");
        (code == 200 && body.contains("tessera_meta_raft_commit_index{group=\"0\"}")).then_some(body)
    })
    .await;
    for name in ["term", "leader", "is_leader", "last_log_index", "last_applied_index", "apply_lag"] {
        assert!(metrics.contains(&format!("tessera_meta_raft_{name}{{group=\"0\"}}")), "{name} missing:\n{metrics}");
    }
    assert!(metrics.contains("tessera_meta_raft_is_leader{group=\"0\"} 1"), "{metrics}");
    assert_eq!(http_get(&n1.addr, "/health").0, 200);

    // SIGTERM: clean exit, and the data is there after a restart.
    assert_eq!(n1.guard.terminate(Duration::from_secs(30)).unwrap(), Some(0));
    let n1 = start_on(work.path(), 1, &n1.data_dir, &n1.addr, &[]);
    let client = MetaClient::new(vec![n1.addr.clone()]);
    let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey("AK00001".into()));
    assert!(matches!(client.query(0, &q).await.unwrap(), GroupAnswer::Cluster(ClusterAnswer::User(Some(_)))));
}
