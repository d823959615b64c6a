//! Cost of a placement lookup: chunk → k+m block nodes (rendezvous, one draw
//! per fragment) and user → metadata shard (hash ring), plus building a snapshot.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sha2::{Digest, Sha256};
use tessera_proto::ChunkHash;
use tessera_router::placement::{BlockNodeInfo, Placement, ShardInfo};

const FRAGMENTS: usize = 6; // 4+2

fn nodes(count: usize, zones: usize) -> Vec<BlockNodeInfo> {
    (0..count)
        .map(|i| BlockNodeInfo {
            id: format!("node-{i}"),
            zone: format!("zone-{}", i % zones),
            endpoint: format!("http://node-{i}:7100"),
            labels: vec![],
        })
        .collect()
}

fn shards(count: u64, vnodes: u32) -> Vec<ShardInfo> {
    (1..=count).map(|group_id| ShardInfo { group_id, vnodes }).collect()
}

/// Real-looking chunk hashes, cycled through so each lookup sees a new key.
fn chunks() -> Vec<ChunkHash> {
    (0u64..1024).map(|i| ChunkHash(Sha256::digest(i.to_le_bytes()).into())).collect()
}

fn nodes_for_chunk(c: &mut Criterion) {
    let chunks = chunks();
    let mut group = c.benchmark_group("nodes_for_chunk_4+2");
    // (nodes, zones): one node per zone, and shared zones (the zone-spread path).
    for (node_count, zones) in [(8, 8), (64, 64), (64, 4), (100, 10)] {
        let placement = Placement::new(1, nodes(node_count, zones), vec![]);
        let label = format!("{node_count}_nodes_{zones}_zones");
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut next = chunks.iter().cycle();
            b.iter(|| {
                let chunk = next.next().unwrap_or(&chunks[0]);
                placement.nodes_for_chunk(black_box(chunk), FRAGMENTS).map(|picked| picked.len())
            })
        });
    }
    group.finish();
}

fn shard_for_user(c: &mut Criterion) {
    let users: Vec<String> = (0..1024).map(|i| format!("user-{i}@example.com")).collect();
    let mut group = c.benchmark_group("shard_for_user");
    for (shard_count, vnodes) in [(4, 64), (64, 64)] {
        let placement = Placement::new(1, vec![], shards(shard_count, vnodes));
        let label = format!("{shard_count}_shards_{vnodes}_vnodes");
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut next = users.iter().cycle();
            b.iter(|| placement.shard_for_user(black_box(next.next().map_or("", String::as_str))))
        });
    }
    group.finish();
}

fn new_snapshot(c: &mut Criterion) {
    let (node_list, shard_list) = (nodes(64, 8), shards(16, 64));
    c.bench_function("placement_new_64_nodes_16x64_vnodes", |b| {
        b.iter(|| Placement::new(1, black_box(node_list.clone()), black_box(shard_list.clone())))
    });
}

criterion_group!(benches, nodes_for_chunk, shard_for_user, new_snapshot);
criterion_main!(benches);
