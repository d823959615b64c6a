//! Process-level tests of `tessera-block`: real binaries on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{chunk, http_get, put, BlockProcess};
use tessera_block::bloom::BloomMirror;
use tessera_block::FragmentKey;
use tessera_proto::block::get_bloom_response::Content;
use tessera_proto::ChunkHash;
use tessera_tests::TestRng;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_batch_has_delete_stats_and_bad_input() {
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("block.toml");
    std::fs::write(&cfg, "max_fragment_bytes = 4194304\nzone = \"z1\"\n").unwrap();
    let node =
        BlockProcess::start(work.path(), &work.path().join("data"), &["--config", cfg.to_str().unwrap()]).unwrap();
    let client = node.client().await;
    let mut rng = TestRng::new(1);
    let sizes = [1usize, 100, 4095, 4096, 65_536, (1 << 20) + 3, 3 << 20];
    let mut written = Vec::new();
    for i in 0..120u64 {
        let key = FragmentKey::new(chunk(i / 6), (i % 6) as u8);
        let data = rng.bytes(sizes[i as usize % sizes.len()]);
        assert!(!put(&client, &key, &data).await.unwrap(), "first put is new");
        written.push((key, data));
    }
    // Re-putting identical bytes is recognised and writes nothing.
    assert!(put(&client, &written[0].0, &written[0].1).await.unwrap());
    for (key, data) in &written {
        let (code, back) = client.get_fragment(key).await.unwrap();
        assert_eq!(&back, data, "fragment {key:?}");
        assert_eq!((code.data_shards, code.parity_shards), (4, 2));
    }
    // BatchHas: every fragment index of the first 20 chunks, nothing of unknown chunks.
    let mut hashes: Vec<ChunkHash> = (0..20).map(chunk).collect();
    hashes.push(chunk(9_999));
    let held = client.batch_has(&hashes).await.unwrap();
    for held_indices in &held[..20] {
        assert_eq!(held_indices, &vec![0, 1, 2, 3, 4, 5]);
    }
    assert!(held[20].is_empty());

    let stats = client.stats().await.unwrap();
    assert_eq!(stats.fragments, 120);
    assert_eq!(stats.fragment_bytes, written.iter().map(|(_, d)| d.len() as u64).sum::<u64>());
    assert_eq!(stats.zone, "z1");
    assert!(stats.disk_free_bytes > 0);

    // Bad input gets clear statuses and the node keeps serving.
    let err = client.get_fragment(&FragmentKey::new(chunk(12_345), 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let mut raw = client.raw();
    let err = raw
        .get_fragment(tessera_proto::block::GetFragmentRequest {
            background: false,
            key: Some(tessera_proto::block::FragmentKey { chunk_hash: vec![1u8; 31].into(), index: 0 }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("32 bytes"), "{}", err.message());
    let big = vec![7u8; (4 << 20) + 1];
    let err = put(&client, &FragmentKey::new(chunk(50_000), 0), &big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    assert!(err.message().contains("exceeds the limit"), "{}", err.message());
    let err = put(&client, &FragmentKey::new(chunk(50_001), 9), b"abc").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "index outside 4+2: {err}");
    let (_, back) = client.get_fragment(&written[5].0).await.unwrap();
    assert_eq!(back, written[5].1, "still serving after bad requests");

    // Delete frees the space and the fragment is gone.
    let keys: Vec<FragmentKey> = written[..6].iter().map(|(k, _)| *k).collect();
    let resp = client.delete(&keys).await.unwrap();
    assert_eq!(resp.deleted, 6);
    assert_eq!(resp.bytes_freed, written[..6].iter().map(|(_, d)| d.len() as u64).sum::<u64>());
    assert_eq!(client.get_fragment(&keys[0]).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client.stats().await.unwrap().fragments, 114);

    // Observability endpoints on the same port.
    let (status, body) = http_get(&node.addr, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = http_get(&node.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("tessera_block_fragments 114"), "{metrics}");
    assert!(metrics.contains("tessera_block_requests_total{op=\"put_fragment\",status=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("tessera_block_request_duration_seconds_bucket"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_put_storm_loses_no_acknowledged_fragment() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let acked: Arc<Mutex<HashMap<FragmentKey, Vec<u8>>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let client = client.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = TestRng::new(100 + w);
            for i in 0.. {
                let key = FragmentKey::new(chunk(w * 1_000_000 + i), (i % 6) as u8);
                let len = 1 + rng.below(300_000) as usize;
                let data = rng.bytes(len);
                match put(&client, &key, &data).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(key, data);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once a good number of puts were acknowledged (bounded by a deadline).
    tessera_tests::poll_until(Duration::from_secs(60), "200 acknowledged puts", || {
        (acked.lock().unwrap().len() >= 200).then_some(())
    })
    .unwrap();
    node.guard.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(acked.len() >= 200);

    let node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    for (key, data) in &acked {
        let (_, back) = client.get_fragment(key).await.unwrap_or_else(|e| panic!("{key:?} lost: {e}"));
        assert_eq!(&back, data, "{key:?} differs after restart");
    }
    // The Bloom filter was rebuilt at start: every acknowledged chunk is in it.
    let bloom = client.get_bloom(None, "").await.unwrap();
    let Some(Content::Snapshot(bytes)) = bloom.content else { panic!("expected a snapshot") };
    let mirror = BloomMirror::from_snapshot(bloom.incarnation, bloom.sequence, &bytes).unwrap();
    for key in acked.keys() {
        assert!(mirror.may_contain(&key.chunk), "Bloom lost {:?}", key.chunk);
    }
    assert!(client.stats().await.unwrap().fragments >= acked.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_file_is_detected_by_get_and_scrub() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let mut rng = TestRng::new(7);
    let mut written = Vec::new();
    for i in 0..64u64 {
        let key = FragmentKey::new(chunk(i), 0);
        let data = rng.bytes(64 << 10);
        put(&client, &key, &data).await.unwrap();
        written.push((key, data));
    }
    // A clean stop flushes the memtables, so the fragments live in blob files.
    assert_eq!(node.guard.terminate(Duration::from_secs(30)).unwrap(), Some(0));
    let blobs: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "blob"))
        .collect();
    assert!(!blobs.is_empty(), "fragments should be in blob files");
    for blob in &blobs {
        let mut bytes = std::fs::read(blob).unwrap();
        // Flip a run of bytes at several places inside the data region.
        for frac in [3usize, 5, 7] {
            let at = bytes.len() * frac / 10;
            for b in &mut bytes[at..at + 16] {
                *b ^= 0xFF;
            }
        }
        std::fs::write(blob, &bytes).unwrap();
    }
    let node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let mut corrupt = Vec::new();
    for (key, data) in &written {
        match client.get_fragment(key).await {
            Ok((_, back)) => assert_eq!(&back, data, "corrupt bytes returned as data for {key:?}"),
            Err(e) => {
                assert_eq!(e.code(), Code::DataLoss, "{key:?}: {e}");
                corrupt.push(*key);
            }
        }
    }
    assert!(!corrupt.is_empty(), "flipped bytes were not detected by get");
    let report = client.scrub().await.unwrap();
    assert_eq!(report.examined, written.len() as u64);
    let mut scrubbed: Vec<FragmentKey> = report
        .corrupt
        .iter()
        .filter_map(|c| c.key.as_ref())
        .map(|k| FragmentKey::from_wire(&k.chunk_hash, k.index).unwrap())
        .collect();
    scrubbed.sort();
    corrupt.sort();
    assert_eq!(scrubbed, corrupt, "scrub reports exactly what get found corrupt");
    // A healthy fragment is still served after the corrupt ones.
    let healthy = written.iter().find(|(k, _)| !corrupt.contains(k)).unwrap();
    assert_eq!(client.get_fragment(&healthy.0).await.unwrap().1, healthy.1);
    // Re-putting a corrupt fragment repairs it.
    let (key, data) = written.iter().find(|(k, _)| corrupt.contains(k)).unwrap();
    assert!(!put(&client, key, data).await.unwrap());
    assert_eq!(&client.get_fragment(key).await.unwrap().1, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bloom_mirror_from_snapshot_and_deltas_has_no_false_negatives() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    for i in 0..300u64 {
        put(&client, &FragmentKey::new(chunk(i), 0), b"x").await.unwrap();
    }
    let snap = client.get_bloom(None, "").await.unwrap();
    let Some(Content::Snapshot(bytes)) = snap.content else { panic!("expected snapshot") };
    let mut mirror = BloomMirror::from_snapshot(snap.incarnation.clone(), snap.sequence, &bytes).unwrap();
    for round in 0..3u64 {
        for i in 0..200u64 {
            put(&client, &FragmentKey::new(chunk(1_000 + round * 1_000 + i), 1), b"y").await.unwrap();
        }
        let upd = client.get_bloom(Some(mirror.sequence), &mirror.incarnation).await.unwrap();
        match upd.content {
            Some(Content::Delta(d)) => {
                assert_eq!(d.added.len() as u64, upd.sequence - mirror.sequence);
                let added: Vec<ChunkHash> = d.added.iter().map(|b| ChunkHash::from_slice(b).unwrap()).collect();
                mirror.apply_delta(upd.sequence, &added);
            }
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    let all: Vec<u64> = (0..300).chain((0..3).flat_map(|r| (0..200).map(move |i| 1_000 + r * 1_000 + i))).collect();
    for i in &all {
        assert!(mirror.may_contain(&chunk(*i)), "false negative for chunk {i}");
    }
    let absent = (1_000_000..1_010_000).filter(|i| mirror.may_contain(&chunk(*i))).count();
    assert!(absent < 100, "{absent} false positives in 10000");

    // After a restart the incarnation changes and a mirror must re-snapshot.
    node.guard.kill9();
    let node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let upd = client.get_bloom(Some(mirror.sequence), &mirror.incarnation).await.unwrap();
    assert_ne!(upd.incarnation, mirror.incarnation);
    let Some(Content::Snapshot(bytes)) = upd.content else { panic!("restart must force a snapshot") };
    let fresh = BloomMirror::from_snapshot(upd.incarnation, upd.sequence, &bytes).unwrap();
    for i in &all {
        assert!(fresh.may_contain(&chunk(*i)), "rebuilt filter lost chunk {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_writes_but_keeps_serving_reads() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let key = FragmentKey::new(chunk(1), 0);
    put(&client, &key, b"before the disk filled").await.unwrap();
    node.guard.kill9();
    // A reserve larger than any disk: every write now sees a full disk.
    let cfg = work.path().join("full.toml");
    std::fs::write(&cfg, "min_free_bytes = 1000000000000000000\n").unwrap();
    let node = BlockProcess::start(work.path(), &data_dir, &["--config", cfg.to_str().unwrap()]).unwrap();
    let client = node.client().await;
    let err = put(&client, &FragmentKey::new(chunk(2), 0), b"no room").await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("disk full"), "{}", err.message());
    assert_eq!(client.get_fragment(&key).await.unwrap().1, b"before the disk filled");
    assert_eq!(client.stats().await.unwrap().fragments, 1);
}

#[test]
fn bad_config_and_corrupt_data_dir_fail_at_start_with_a_clear_message() {
    let work = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tessera-block"));
    // Unknown config key.
    let cfg = work.path().join("typo.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmax_fragmnet_bytes = 5\n").unwrap();
    let out = std::process::Command::new(bin).args(["--config", cfg.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_fragmnet_bytes"), "{err}");

    // A data dir whose RocksDB files are garbage.
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("CURRENT"), "MANIFEST-000999\n").unwrap();
    std::fs::write(data.join("MANIFEST-000999"), vec![0xAB; 4096]).unwrap();
    let out = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open data dir"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_data_survives() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let mut node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    let client = node.client().await;
    let key = FragmentKey::new(chunk(77), 3);
    put(&client, &key, b"durable").await.unwrap();
    assert_eq!(node.guard.terminate(Duration::from_secs(30)).unwrap(), Some(0));
    let node = BlockProcess::start(work.path(), &data_dir, &[]).unwrap();
    assert_eq!(node.client().await.get_fragment(&key).await.unwrap().1, b"durable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_put_streams_are_refused_and_store_nothing() {
    use tessera_proto::block::{put_fragment_request::Part, FragmentHeader, PutFragmentRequest};
    let work = tempfile::tempdir().unwrap();
    let node = BlockProcess::start(work.path(), &work.path().join("data"), &[]).unwrap();
    let client = node.client().await;
    let key = FragmentKey::new(chunk(1), 0);
    let header = |len: u64, crc: Option<u32>| PutFragmentRequest {
        part: Some(Part::Header(FragmentHeader {
            key: Some(tessera_block::client::wire_key(&key)),
            data_shards: 4,
            parity_shards: 2,
            chunk_len: len * 4,
            fragment_len: len,
            crc32c: crc,
        })),
    };
    let data = |b: &'static [u8]| PutFragmentRequest { part: Some(Part::Data(bytes::Bytes::from_static(b))) };
    let cases: Vec<(&str, Vec<PutFragmentRequest>)> = vec![
        ("wrong checksum", vec![header(5, Some(crc32c_of(b"hellO"))), data(b"hello")]),
        ("truncated body", vec![header(10, None), data(b"hello")]),
        ("overlong body", vec![header(3, None), data(b"hello")]),
        ("no header", vec![data(b"hello")]),
        ("empty stream", vec![]),
    ];
    for (what, msgs) in cases {
        let err = client.raw().put_fragment(futures::stream::iter(msgs)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err}");
    }
    assert_eq!(client.get_fragment(&key).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client.stats().await.unwrap().fragments, 0);
}

fn crc32c_of(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}
