//! Block node put/get throughput over loopback gRPC: 4 MiB chunks coded 4+2,
//! fragments sent to one node or spread over six, with real RocksDB (synced
//! WAL) under a temp dir.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{RngCore, SeedableRng};
use tessera_block::client::FragmentCode;
use tessera_block::{BlockClient, BlockConfig, BlockNode, FragmentKey, RunningBlockNode};
use tessera_router::codec::{hash_chunk, ErasureCode};

const CHUNK: usize = 4 << 20;

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    nodes: Vec<RunningBlockNode>,
    clients: Vec<BlockClient>,
}

async fn cluster(n: usize) -> Cluster {
    let mut dirs = Vec::new();
    let mut nodes = Vec::new();
    let mut clients = Vec::new();
    for i in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BlockConfig {
            data_dir: dir.path().join("data"),
            node_id: format!("bench-{i}"),
            min_free_bytes: 0,
            ..BlockConfig::default()
        };
        let node = BlockNode::start(&cfg).await.unwrap();
        clients.push(BlockClient::connect(node.endpoint()).await.unwrap());
        nodes.push(node);
        dirs.push(dir);
    }
    Cluster { _dirs: dirs, nodes, clients }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let code = ErasureCode::new(4, 2).unwrap();
    let mut data = vec![0u8; CHUNK];
    rand::rngs::StdRng::seed_from_u64(3).fill_bytes(&mut data);
    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("block_node_4MiB_chunk_4+2");
    g.throughput(Throughput::Bytes(CHUNK as u64));
    g.sample_size(20);
    for nodes in [1usize, 6] {
        let cl = rt.block_on(cluster(nodes));
        // Distinct chunk per iteration so every put really writes.
        g.bench_function(format!("put_{nodes}_nodes"), |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut chunk = data.clone();
                chunk[..8].copy_from_slice(&n.to_le_bytes());
                let hash = hash_chunk(&chunk);
                let frags = code.encode(&chunk).unwrap();
                rt.block_on(async {
                    let puts = frags.into_iter().enumerate().map(|(i, f)| {
                        let client = cl.clients[i % nodes].clone();
                        let key = FragmentKey::new(hash, i as u8);
                        let fc = FragmentCode { data_shards: 4, parity_shards: 2, chunk_len: CHUNK as u64 };
                        async move { client.put_fragment(&key, fc, f).await.unwrap() }
                    });
                    futures::future::join_all(puts).await
                })
            })
        });
        // Read back one chunk's data fragments (k of them) in parallel.
        let hash = hash_chunk(&data);
        rt.block_on(async {
            for (i, f) in code.encode(&data).unwrap().into_iter().enumerate() {
                let fc = FragmentCode { data_shards: 4, parity_shards: 2, chunk_len: CHUNK as u64 };
                cl.clients[i % nodes].put_fragment(&FragmentKey::new(hash, i as u8), fc, f).await.unwrap();
            }
        });
        g.bench_function(format!("get_{nodes}_nodes"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let gets = (0..4u8).map(|i| {
                        let client = cl.clients[i as usize % nodes].clone();
                        async move { client.get_fragment(&FragmentKey::new(hash, i)).await.unwrap().1 }
                    });
                    let frags: Vec<Vec<u8>> = futures::future::join_all(gets).await;
                    let present = frags.into_iter().map(Some).chain([None, None]).collect();
                    code.decode(present, CHUNK).unwrap()
                })
            })
        });
        rt.block_on(async {
            for node in cl.nodes {
                node.stop().await.unwrap();
            }
        });
    }
    g.finish();
}

/// Start-up cost of a node holding a million fragments: opening RocksDB and
/// rebuilding the Bloom filter and counters from the index.
fn open_million(c: &mut Criterion) {
    use tessera_block::{FragmentMeta, FragmentStore};
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let store = FragmentStore::open(&path, 64 << 20, 0, |_| {}).unwrap();
        let data = [7u8; 64];
        let meta = FragmentMeta {
            data_shards: 4,
            parity_shards: 2,
            chunk_len: 256,
            fragment_len: 64,
            crc32c: crc32c::crc32c(&data),
            stored_at: 0,
        };
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..N {
            let key = FragmentKey::new(hash_chunk(&i.to_le_bytes()), 0);
            batch.push((key, meta, &data[..]));
            if batch.len() == 10_000 {
                store.put_new_batch(&batch).unwrap();
                batch.clear();
            }
        }
        store.flush().unwrap();
    }
    let mut g = c.benchmark_group("block_node_open");
    g.sample_size(10);
    g.bench_function("open_and_rebuild_bloom_1M_fragments", |b| {
        b.iter(|| {
            let mut bloom = tessera_block::bloom::HeldChunks::new(N, 1024);
            let store = FragmentStore::open(&path, 64 << 20, 0, |k| bloom.insert(&k.chunk)).unwrap();
            assert_eq!(store.fragment_count(), N);
            bloom.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, open_million);
criterion_main!(benches);
