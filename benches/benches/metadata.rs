//! Raft commit throughput of a 3-replica group over loopback: three
//! in-process `tessera-meta` nodes on real RocksDB (synced log appends).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterCommand, User};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::versions::{CommitVersion, ConflictPolicy};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery};
use tessera_meta::node::{self, MetaConfig};

fn config(dir: &std::path::Path, id: u64, bootstrap: bool, join: Option<String>) -> MetaConfig {
    MetaConfig { data_dir: dir.join(format!("meta-{id}")), node_id: id, bootstrap, join, ..MetaConfig::default() }
}

fn user(n: u64) -> GroupCommand {
    GroupCommand::Cluster(ClusterCommand::CreateUser(User {
        user_id: format!("bench-{n}"),
        display_name: String::new(),
        access_key: format!("AKB{n}"),
        secret_key: "bench-secret".into(),
        created_at_ms: 0,
    }))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nodes = rt.block_on(async {
        let n1 = node::start(config(dir.path(), 1, true, None), std::future::pending()).await.unwrap();
        let n2 =
            node::start(config(dir.path(), 2, false, Some(n1.addr.clone())), std::future::pending()).await.unwrap();
        let n3 =
            node::start(config(dir.path(), 3, false, Some(n1.addr.clone())), std::future::pending()).await.unwrap();
        vec![n1, n2, n3]
    });
    let client = Arc::new(MetaClient::new(nodes.iter().map(|n| n.addr.clone()).collect()));
    let counter = Arc::new(AtomicU64::new(0));
    let mut g = c.benchmark_group("raft_3_replicas");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for concurrency in [1u64, 16] {
        g.throughput(Throughput::Elements(concurrency * 20));
        g.bench_function(format!("commits_concurrency_{concurrency}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let tasks = (0..concurrency).map(|_| {
                            let (client, counter) = (client.clone(), counter.clone());
                            tokio::spawn(async move {
                                for _ in 0..20 {
                                    let n = counter.fetch_add(1, Ordering::Relaxed);
                                    let (resp, _) = client.propose(0, &user(n)).await.unwrap();
                                    assert!(matches!(resp, GroupResponse::Cluster(Ok(_))));
                                }
                            })
                        });
                        for t in futures::future::join_all(tasks).await {
                            t.unwrap();
                        }
                    }
                    started.elapsed()
                })
            })
        });
    }
    g.finish();
    rt.block_on(async {
        for n in nodes {
            let _ = n.stop().await;
        }
    });
}

fn file(n: u64) -> GroupCommand {
    let mut sha = [0u8; 32];
    sha[..8].copy_from_slice(&n.to_le_bytes());
    GroupCommand::Shard(ShardCommand::CommitVersion(CommitVersion {
        user_id: "bench".into(),
        path: format!("/big/file-{n:05}.txt"),
        size: 0,
        content_sha256: sha,
        chunks: vec![],
        device_id: "bench".into(),
        created_by: "bench".into(),
        base_version: None,
        policy: ConflictPolicy::ConflictCopy,
        now_ms: 0,
        meta: Default::default(),
    }))
}

/// Listing a 10,000-entry folder and reading the change log, through the
/// leader with linearizable reads, on a single-replica shard.
fn reads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = rt.block_on(node::start(config(dir.path(), 1, true, None), std::future::pending())).unwrap();
    let client = Arc::new(MetaClient::new(vec![node.addr.clone()]));
    rt.block_on(async {
        client.create_shard(1, &[(1, node.addr.clone())], 64).await.unwrap();
        let tasks = (0..16u64).map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for n in (t..10_000).step_by(16) {
                    let (resp, _) = client.propose(1, &file(n)).await.unwrap();
                    assert!(matches!(resp, GroupResponse::Shard(Ok(_))), "{resp:?}");
                }
            })
        });
        for t in futures::future::join_all(tasks).await {
            t.unwrap();
        }
    });
    let mut g = c.benchmark_group("shard_reads");
    g.sample_size(10);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("list_folder_10k_entries_pages_of_1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut start_after = None;
                let mut seen = 0;
                loop {
                    let q = GroupQuery::Shard(ShardQuery::ListFolder {
                        user_id: "bench".into(),
                        path: "/big".into(),
                        start_after: start_after.clone(),
                        limit: 1000,
                        include_deleted: false,
                    });
                    let GroupAnswer::Shard(Ok(QueryResponse::Folder(page))) = client.query(1, &q).await.unwrap() else {
                        panic!("unexpected answer")
                    };
                    seen += page.entries.len();
                    match page.next_start_after {
                        Some(next) => start_after = Some(next),
                        None => break,
                    }
                }
                assert_eq!(seen, 10_000);
            })
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("read_changes_1000_events", |b| {
        b.iter(|| {
            rt.block_on(async {
                let q = GroupQuery::Shard(ShardQuery::ReadChanges {
                    user_id: "bench".into(),
                    after_cursor: 5_000,
                    limit: 1000,
                    exclude_device: None,
                });
                let GroupAnswer::Shard(Ok(QueryResponse::Changes(page))) = client.query(1, &q).await.unwrap() else {
                    panic!("unexpected answer")
                };
                assert_eq!(page.events.len(), 1000);
            })
        })
    });
    g.finish();
    rt.block_on(async {
        let _ = node.stop().await;
    });
}

criterion_group!(benches, bench, reads);
criterion_main!(benches);
