//! The router's metadata cache: repeated lookups are served from memory,
//! this router's own writes are never followed by a stale read, and another
//! router's writes reach the cache through the change log.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestCluster;
use tessera_meta::client::MetaClient;
use tessera_meta::model::EntryKind;
use tessera_router::cluster_view::ClusterView;
use tessera_router::datapath::{DataPath, DataPathConfig};
use tessera_router::ops;
use tessera_router::upload::{self, UploadRequest};

fn version(e: &tessera_meta::model::Entry) -> u64 {
    match &e.kind {
        EntryKind::File(f) => f.version,
        EntryKind::Folder => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_own_writes_and_other_routers_writes() {
    let c = TestCluster::start().await;
    c.put("alice", "/f.txt", b"one").await.unwrap();
    let cache = &c.dp.view.cache;
    assert_eq!(version(&ops::stat(&c.dp, "alice", "/f.txt").await.unwrap()), 1);
    let hits = cache.hits.get();
    for _ in 0..10 {
        assert_eq!(version(&ops::stat(&c.dp, "alice", "/f.txt").await.unwrap()), 1);
    }
    assert_eq!(cache.hits.get(), hits + 10, "repeated stats are served from the cache");

    // A write through this router is visible to its very next read.
    c.put("alice", "/f.txt", b"two").await.unwrap();
    assert_eq!(version(&ops::stat(&c.dp, "alice", "/f.txt").await.unwrap()), 2);
    assert_eq!(c.get("alice", "/f.txt", None).await.unwrap(), b"two");

    // A second router writes; the first one's cache follows the change log.
    let meta_addr = c.meta.as_ref().unwrap().addr.clone();
    let other_view = ClusterView::load(Arc::new(MetaClient::new(vec![meta_addr]))).await.unwrap();
    let other =
        DataPath::new(other_view, DataPathConfig { chunker: common::small_chunks(), ..DataPathConfig::default() })
            .unwrap();
    let req = UploadRequest {
        user_id: "alice".into(),
        created_by: "alice".into(),
        path: "/f.txt".into(),
        device_id: "other".into(),
        base_version: None,
        policy: Default::default(),
        meta: Default::default(),
    };
    let body =
        futures::stream::iter(vec![Ok::<_, tessera_router::error::RouterError>(bytes::Bytes::from_static(b"three"))]);
    assert_eq!(upload::upload(&other, &req, body).await.unwrap().version, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = version(&ops::stat(&c.dp, "alice", "/f.txt").await.unwrap());
        assert!(v >= 2, "went back to version {v}");
        if v == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the other router's write never reached the cache");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.get("alice", "/f.txt", None).await.unwrap(), b"three");
}
