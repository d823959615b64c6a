//! The router's data path against an in-process cluster: round trips,
//! dedup, delta uploads, range reads and degraded reads.

mod common;

use common::{small_chunks, TestCluster};
use tessera_router::error::RouterError;
use tessera_tests::TestRng;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_of_edge_sizes_and_range_reads() {
    let c = TestCluster::start().await;
    let mut rng = TestRng::new(1);
    let max = small_chunks().max_size;
    for (i, len) in [0usize, 1, 4095, max - 1, max, max + 1, 3 << 20].into_iter().enumerate() {
        let data = rng.bytes(len);
        let path = format!("/files/f{i}.bin");
        let report = c.put("alice", &path, &data).await.unwrap();
        assert_eq!(report.size, len as u64);
        assert_eq!(report.version, 1);
        assert_eq!(report.chunks_total, report.chunks_uploaded + report.chunks_deduped);
        assert_eq!(c.get("alice", &path, None).await.unwrap(), data, "{len} bytes");
    }
    let data = rng.bytes(2 << 20);
    c.put("alice", "/r.bin", &data).await.unwrap();
    for (a, b) in [(0u64, 1u64), (5, 70_000), (300_000, 1_500_000), ((2 << 20) - 10, 2 << 20)] {
        assert_eq!(c.get("alice", "/r.bin", Some((a, b))).await.unwrap(), &data[a as usize..b as usize]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_content_is_deduplicated_and_edits_send_only_changed_chunks() {
    let c = TestCluster::start().await;
    let mut rng = TestRng::new(2);
    let data = rng.bytes(8 << 20);
    let first = c.put("alice", "/big.bin", &data).await.unwrap();
    assert!(first.chunks_total > 20, "{first:?}");
    assert_eq!(first.bytes_transferred, data.len() as u64);
    // Same bytes under another path and another user: nothing is sent.
    for (user, path) in [("alice", "/copy.bin"), ("bob", "/big.bin")] {
        let r = c.put(user, path, &data).await.unwrap();
        assert_eq!((r.chunks_deduped, r.bytes_transferred), (r.chunks_total, 0), "{user}{path}: {r:?}");
    }
    let bound = 2 * small_chunks().max_size as u64;
    // One byte changed in the middle.
    let mut edited = data.clone();
    edited[4 << 20] ^= 0xFF;
    let r = c.put("alice", "/big.bin", &edited).await.unwrap();
    assert_eq!(r.version, 2);
    assert!(r.bytes_transferred <= bound, "1-byte change sent {} bytes", r.bytes_transferred);
    // One byte inserted at the start.
    let mut inserted = vec![7u8];
    inserted.extend_from_slice(&edited);
    let r = c.put("alice", "/big.bin", &inserted).await.unwrap();
    assert!(r.bytes_transferred <= bound, "1-byte insert sent {} bytes", r.bytes_transferred);
    assert_eq!(c.get("alice", "/big.bin", None).await.unwrap(), inserted);
    assert!(c.dp.counters.bloom_checks.get() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lost_block_nodes_are_transparent_and_a_third_is_a_clear_error() {
    let mut c = TestCluster::start().await;
    let mut rng = TestRng::new(3);
    let files: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("/d/{i}"), rng.bytes(300_000 + i * 77_777))).collect();
    for (p, d) in &files {
        c.put("alice", p, d).await.unwrap();
    }
    c.stop_block(0).await;
    c.stop_block(3).await;
    for (p, d) in &files {
        assert_eq!(&c.get("alice", p, None).await.unwrap(), d, "{p} after losing 2 of 6 nodes");
    }
    assert!(c.dp.counters.degraded_reads.get() > 0, "reads should have been degraded");
    c.stop_block(5).await;
    let mut unavailable = 0;
    for (p, d) in &files {
        match c.get("alice", p, None).await {
            Ok(back) => assert_eq!(&back, d, "wrong bytes returned for {p}"),
            Err(RouterError::Unavailable(msg)) => {
                assert!(msg.contains("fragments"), "{msg}");
                unavailable += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(unavailable > 0, "with 3 of 6 nodes gone some chunk must be unreadable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_node_added_to_the_cluster_is_used_without_a_router_restart() {
    use tessera_block::BlockClient;
    let c = TestCluster::start().await;
    let _refresh = c.dp.view.spawn_refresh(std::time::Duration::from_millis(100));
    let epoch = c.dp.view.placement().epoch();
    let node = common::start_block(&c.dp.view.meta, c.dir.path(), "block-new", "zone-new").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while c.dp.view.placement().block_nodes().len() < 7 {
        assert!(std::time::Instant::now() < deadline, "router did not pick up the new node");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(c.dp.view.placement().epoch() > epoch);
    let mut rng = TestRng::new(4);
    let files: Vec<(String, Vec<u8>)> = (0..30).map(|i| (format!("/n/{i}"), rng.bytes(200_000))).collect();
    for (p, d) in &files {
        c.put("alice", p, d).await.unwrap();
    }
    let stats = BlockClient::connect(node.endpoint()).await.unwrap().stats().await.unwrap();
    assert!(stats.fragments > 0, "new chunks should use the new node");
    for (p, d) in &files {
        assert_eq!(&c.get("alice", p, None).await.unwrap(), d);
    }
}

/// The production chunk sizes (1/4/8 MiB) on a 100 MiB file, as the design asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_uploads_of_a_100_mib_file_with_production_chunking() {
    use tessera_router::codec::ChunkerParams;
    let c = TestCluster::start_with(ChunkerParams::default()).await;
    let mut rng = TestRng::new(100);
    // Edge sizes around the 4 MiB average and 8 MiB maximum first.
    for len in [0usize, 1, (4 << 20) - 1, 4 << 20, (4 << 20) + 1, (8 << 20) + 1] {
        let data = rng.bytes(len);
        c.put("alice", "/edge.bin", &data).await.unwrap();
        assert_eq!(c.get("alice", "/edge.bin", None).await.unwrap(), data, "{len} bytes");
    }
    let data = rng.bytes(100 << 20);
    let first = c.put("alice", "/hundred.bin", &data).await.unwrap();
    let two_chunks = 2 * ChunkerParams::default().max_size as u64;
    let mut edited = data.clone();
    edited[50 << 20] ^= 1;
    let r = c.put("alice", "/hundred.bin", &edited).await.unwrap();
    assert!(r.bytes_transferred <= two_chunks, "1-byte change: {r:?}");
    let mut inserted = vec![0u8];
    inserted.extend_from_slice(&edited);
    let r = c.put("alice", "/hundred.bin", &inserted).await.unwrap();
    assert!(r.bytes_transferred <= two_chunks, "1-byte insert: {r:?}");
    for (user, path) in [("alice", "/other.bin"), ("bob", "/hundred.bin")] {
        let r = c.put(user, path, &data).await.unwrap();
        assert_eq!((r.chunks_deduped, r.bytes_transferred), (r.chunks_total, 0), "{r:?}");
        assert_eq!(r.chunks_total, first.chunks_total);
    }
    assert_eq!(c.get("alice", "/hundred.bin", None).await.unwrap(), inserted);
}
