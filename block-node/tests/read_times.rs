//! Read times for storage tiering: recorded in memory on reads, flushed in
//! batches, listed by `ListFragments`, removed with a chunk's last fragment.
//! Real RocksDB in temp dirs, and real `tessera-block` processes.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{chunk, http_get, put, BlockProcess};
use tessera_block::{FragmentKey, FragmentMeta, FragmentStore, ListedFragment};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn meta_for(data: &[u8]) -> FragmentMeta {
    FragmentMeta {
        data_shards: 4,
        parity_shards: 2,
        chunk_len: data.len() as u64 * 4,
        fragment_len: data.len() as u64,
        crc32c: crc32c::crc32c(data),
        stored_at: 0,
    }
}

fn open(dir: &std::path::Path) -> FragmentStore {
    FragmentStore::open(dir, 1 << 20, 0, |_| {}).unwrap()
}

fn listed(store: &FragmentStore, key: &FragmentKey) -> ListedFragment {
    let (all, _) = store.list(None, 10_000).unwrap();
    *all.iter().find(|f| f.key == *key).unwrap_or_else(|| panic!("{key:?} not listed"))
}

#[test]
fn many_reads_of_a_chunk_cost_one_record_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (hot, cold) = (FragmentKey::new(chunk(1), 0), FragmentKey::new(chunk(2), 0));
    let other_fragment = FragmentKey::new(chunk(1), 3);
    let data = vec![9u8; 3000];
    let before_put = now_ms();
    let read_at;
    {
        let store = open(dir.path());
        for key in [hot, cold, other_fragment] {
            store.put(&key, meta_for(&data), &data).unwrap();
        }
        let f = listed(&store, &cold);
        assert_eq!(f.last_read_ms, 0, "never read");
        // Stored with second precision.
        assert!(f.stored_ms >= before_put / 1000 * 1000 && f.stored_ms <= now_ms(), "stored_ms {}", f.stored_ms);

        read_at = now_ms();
        for _ in 0..100 {
            assert_eq!(store.read(&hot).unwrap().1, data);
        }
        assert_eq!(store.read_log().pending(), 1);
        // Listed from memory before any flush, for every fragment of the chunk.
        assert!(listed(&store, &hot).last_read_ms >= read_at);
        assert!(listed(&store, &other_fragment).last_read_ms >= read_at);
        assert_eq!(listed(&store, &cold).last_read_ms, 0);
        assert_eq!(store.persisted_read_records().unwrap(), 0, "reads alone write nothing");
        // An internal verification is not a client read.
        store.get(&cold).unwrap();
        assert_eq!(listed(&store, &cold).last_read_ms, 0);

        assert_eq!(store.flush_reads().unwrap(), 1, "100 reads of one chunk: one record");
        assert_eq!(store.read_log().records_written(), 1);
        assert_eq!(store.read_log().flushes(), 1);
        assert_eq!(store.persisted_read_records().unwrap(), 1);
        assert_eq!(store.flush_reads().unwrap(), 0, "nothing read since");
        assert_eq!(store.read_log().flushes(), 1);
    }
    let store = open(dir.path());
    let t = listed(&store, &hot).last_read_ms;
    assert!(t >= read_at && t <= now_ms(), "read time after reopen: {t}");
    assert_eq!(store.persisted_read_ms(&chunk(1)).unwrap(), Some(t));
    assert_eq!(listed(&store, &cold).last_read_ms, 0);
}

#[test]
fn deleting_the_last_fragment_of_a_chunk_removes_its_read_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![5u8; 100];
    let (a0, a1) = (FragmentKey::new(chunk(10), 0), FragmentKey::new(chunk(10), 1));
    let b0 = FragmentKey::new(chunk(11), 0);
    {
        let store = open(dir.path());
        for key in [a0, a1, b0] {
            store.put(&key, meta_for(&data), &data).unwrap();
            store.read(&key).unwrap();
        }
        assert_eq!(store.flush_reads().unwrap(), 2);
        // Read again, not flushed: a later flush must not write the record back.
        store.read(&a0).unwrap();
        store.read(&b0).unwrap();

        // One fragment of the chunk left: the record stays.
        assert_eq!(store.delete(&[a1]).unwrap().0, 1);
        assert!(store.persisted_read_ms(&chunk(10)).unwrap().is_some());
        assert!(listed(&store, &a0).last_read_ms > 0);
        // Unconditional delete of the last one.
        assert_eq!(store.delete(&[a0]).unwrap().0, 1);
        assert_eq!(store.persisted_read_ms(&chunk(10)).unwrap(), None);
        // Conditional (garbage collection) delete.
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(store.delete_untouched(&[b0], 10).unwrap().deleted, 1);
        assert_eq!(store.persisted_read_ms(&chunk(11)).unwrap(), None);

        assert_eq!(store.read_log().pending(), 0, "pending reads of deleted chunks are dropped");
        assert_eq!(store.flush_reads().unwrap(), 0);
        store.flush().unwrap();
        assert_eq!(store.persisted_read_records().unwrap(), 0);
    }
    let store = open(dir.path());
    for key in [a0, b0] {
        store.put(&key, meta_for(&data), &data).unwrap();
        assert_eq!(listed(&store, &key).last_read_ms, 0, "{key:?} re-stored: never read since");
    }
}

async fn list_one(client: &tessera_block::BlockClient, key: &FragmentKey) -> ListedFragment {
    let (page, more) = client.list_fragments(None, 100).await.unwrap();
    assert!(!more);
    *page.iter().find(|f| f.key == *key).unwrap_or_else(|| panic!("{key:?} not listed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_fragment_read_times_are_listed_and_survive_a_clean_restart() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    // No periodic flush during the test: only the shutdown flush persists reads.
    let cfg = work.path().join("block.toml");
    std::fs::write(&cfg, "read_flush_ms = 3600000\n").unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let mut node = BlockProcess::start(work.path(), &data_dir, &args).unwrap();
    let client = node.client().await;
    let (read, unread) = (FragmentKey::new(chunk(20), 2), FragmentKey::new(chunk(21), 0));
    let before_put = now_ms();
    put(&client, &read, b"read me").await.unwrap();
    put(&client, &unread, b"leave me").await.unwrap();
    let f = list_one(&client, &unread).await;
    assert_eq!(f.last_read_ms, 0);
    assert!(f.stored_ms >= before_put / 1000 * 1000 && f.stored_ms <= now_ms(), "stored_ms {}", f.stored_ms);
    assert!(f.last_touch_ms >= before_put);

    let before_read = now_ms();
    for _ in 0..5 {
        assert_eq!(client.get_fragment(&read).await.unwrap().1, b"read me");
    }
    let read_ms = list_one(&client, &read).await.last_read_ms;
    assert!(read_ms >= before_read && read_ms <= now_ms(), "last_read_ms {read_ms}");
    let (_, metrics) = http_get(&node.addr, "/metrics").unwrap();
    assert!(metrics.contains("tessera_block_read_records_pending 1"), "{metrics}");
    assert!(metrics.contains("tessera_block_read_flushes_total 0"), "{metrics}");

    assert_eq!(node.guard.terminate(Duration::from_secs(30)).unwrap(), Some(0));
    let node = BlockProcess::start(work.path(), &data_dir, &args).unwrap();
    let client = node.client().await;
    assert_eq!(list_one(&client, &read).await.last_read_ms, read_ms, "flushed at shutdown");
    assert_eq!(list_one(&client, &unread).await.last_read_ms, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_times_are_flushed_periodically_and_survive_kill9() {
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let cfg = work.path().join("block.toml");
    std::fs::write(&cfg, "read_flush_ms = 100\n").unwrap();
    let args = ["--config", cfg.to_str().unwrap()];
    let mut node = BlockProcess::start(work.path(), &data_dir, &args).unwrap();
    let client = node.client().await;
    let key = FragmentKey::new(chunk(30), 0);
    put(&client, &key, b"hot").await.unwrap();
    for _ in 0..50 {
        client.get_fragment(&key).await.unwrap();
    }
    let read_ms = list_one(&client, &key).await.last_read_ms;
    assert!(read_ms > 0);
    let addr = node.addr.clone();
    tessera_tests::poll_until(Duration::from_secs(20), "a read-time flush", || {
        let (_, metrics) = http_get(&addr, "/metrics").ok()?;
        metrics.contains("tessera_block_read_records_written_total 1").then_some(())
    })
    .unwrap();
    let (_, metrics) = http_get(&addr, "/metrics").unwrap();
    assert!(metrics.contains("tessera_block_read_flushes_total 1"), "{metrics}");
    assert!(metrics.contains("tessera_block_read_records_pending 0"), "{metrics}");

    node.guard.kill9();
    let node = BlockProcess::start(work.path(), &data_dir, &args).unwrap();
    let client = node.client().await;
    assert_eq!(list_one(&client, &key).await.last_read_ms, read_ms, "persisted by the periodic flush");
}

/// Tiering's delete of the copy a move left: only fragments not stored within
/// the window go, and writing an identical fragment again counts as storing it
/// (a mover bringing the chunk back must not lose its copy to an older move).
#[test]
fn deletes_of_moved_copies_spare_fragments_stored_again_since() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (old, rewritten) = (FragmentKey::new(chunk(7), 0), FragmentKey::new(chunk(8), 0));
    let data = vec![5u8; 2000];
    for key in [old, rewritten] {
        store.put(&key, meta_for(&data), &data).unwrap();
    }
    // Within the window nothing goes.
    let kept = store.delete_unstored(&[old, rewritten], 60_000).unwrap();
    assert_eq!((kept.deleted, kept.kept_recent), (0, 2));
    // Stored times have second precision: wait past two second boundaries.
    std::thread::sleep(Duration::from_millis(2100));
    let before = listed(&store, &rewritten).stored_ms;
    store.put(&rewritten, meta_for(&data), &data).unwrap();
    assert!(listed(&store, &rewritten).stored_ms > before, "an identical re-put refreshes the stored time");
    let outcome = store.delete_unstored(&[old, rewritten], 1500).unwrap();
    assert_eq!((outcome.deleted, outcome.kept_recent), (1, 1), "{outcome:?}");
    let (left, _) = store.list(None, 100).unwrap();
    assert_eq!(left.iter().map(|f| f.key).collect::<Vec<_>>(), vec![rewritten]);
    assert_eq!(store.read(&rewritten).unwrap().1, data);
}

/// A chunk stored again on a node (a tiering move back into a tier it left)
/// has not been read there since: its read time is reset.
#[test]
fn storing_a_chunk_again_resets_its_read_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let key = FragmentKey::new(chunk(9), 1);
    let data = vec![3u8; 1500];
    store.put(&key, meta_for(&data), &data).unwrap();
    store.read(&key).unwrap();
    assert!(listed(&store, &key).last_read_ms > 0);
    store.put(&key, meta_for(&data), &data).unwrap();
    assert_eq!(listed(&store, &key).last_read_ms, 0, "an identical re-put is an arrival");
    store.read(&key).unwrap();
    store.flush_reads().unwrap();
    store.put(&key, meta_for(&data), &data).unwrap();
    drop(store);
    let store = open(dir.path());
    assert_eq!(listed(&store, &key).last_read_ms, 0, "the persisted read time went too");
}
