//! Raft commit throughput of a 3-replica group over loopback: three
//! in-process `tessera-meta` nodes on real RocksDB (synced log appends).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterCommand, User};
use tessera_meta::command::{GroupCommand, GroupResponse};
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

criterion_group!(benches, bench);
criterion_main!(benches);
