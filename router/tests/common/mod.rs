//! An in-process cluster for router tests: one metadata node (cluster group +
//! one shard), six block nodes in six zones, real RocksDB and gRPC on
//! 127.0.0.1.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use tessera_block::{BlockConfig, BlockNode, RunningBlockNode};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterCommand, NodeInfo, NodeKind};
use tessera_meta::command::{GroupCommand, GroupResponse};
use tessera_meta::node::{self, MetaConfig, RunningMetaNode};
use tessera_router::cluster_view::ClusterView;
use tessera_router::codec::ChunkerParams;
use tessera_router::datapath::{DataPath, DataPathConfig};
use tessera_router::download;
use tessera_router::error::RouterError;
use tessera_router::upload::{self, UploadReport, UploadRequest};

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub meta: Option<RunningMetaNode>,
    pub blocks: Vec<Option<RunningBlockNode>>,
    pub dp: Arc<DataPath>,
}

/// Small chunks so tests exercise many of them quickly.
pub fn small_chunks() -> ChunkerParams {
    ChunkerParams { min_size: 16 << 10, avg_size: 64 << 10, max_size: 256 << 10 }
}

/// Starts a block node in `dir/ID` and registers it in the cluster group.
pub async fn start_block(meta: &MetaClient, dir: &std::path::Path, id: &str, zone: &str) -> RunningBlockNode {
    let cfg = BlockConfig {
        data_dir: dir.join(id),
        node_id: id.into(),
        zone: zone.into(),
        min_free_bytes: 0,
        ..BlockConfig::default()
    };
    let node = BlockNode::start(&cfg).await.unwrap();
    let info = NodeInfo {
        kind: NodeKind::Block,
        id: cfg.node_id.clone(),
        addr: node.addr.to_string(),
        zone: cfg.zone,
        labels: vec![],
    };
    let (resp, _) = meta.propose(0, &GroupCommand::Cluster(ClusterCommand::RegisterNode(info))).await.unwrap();
    assert!(matches!(resp, GroupResponse::Cluster(Ok(_))), "{resp:?}");
    node
}

impl TestCluster {
    pub async fn start() -> Self {
        Self::start_with(small_chunks()).await
    }

    /// With the given chunk sizes (`ChunkerParams::default()` is production's).
    pub async fn start_with(chunker: ChunkerParams) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let meta_cfg =
            MetaConfig { data_dir: dir.path().join("meta"), node_id: 1, bootstrap: true, ..MetaConfig::default() };
        let meta = node::start(meta_cfg, std::future::pending()).await.unwrap();
        let client = Arc::new(MetaClient::new(vec![meta.addr.clone()]));
        let mut blocks = Vec::new();
        for i in 0..6 {
            blocks.push(Some(start_block(&client, dir.path(), &format!("block-{i}"), &format!("zone-{i}")).await));
        }
        client.create_shard(1, &[(1, meta.addr.clone())], 64).await.unwrap();
        let view = ClusterView::load(client).await.unwrap();
        let config = DataPathConfig { chunker, ..DataPathConfig::default() };
        let dp = DataPath::new(view, config).unwrap();
        Self { dir, meta: Some(meta), blocks, dp }
    }

    pub async fn put(&self, user: &str, path: &str, data: &[u8]) -> Result<UploadReport, RouterError> {
        let req = UploadRequest {
            user_id: user.into(),
            created_by: user.into(),
            path: path.into(),
            device_id: "test".into(),
            base_version: None,
            policy: Default::default(),
            meta: Default::default(),
        };
        // Feed the data in uneven pieces, as a network stream would.
        let pieces: Vec<Result<Bytes, RouterError>> =
            data.chunks(100_003).map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        upload::upload(&self.dp, &req, futures::stream::iter(pieces)).await
    }

    pub async fn get(&self, user: &str, path: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, RouterError> {
        use futures::StreamExt;
        let file = download::resolve(&self.dp, user, path, None).await?;
        let mut stream = Box::pin(download::stream_file(self.dp.clone(), file, range));
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            out.extend_from_slice(&piece?);
        }
        Ok(out)
    }

    pub async fn stop_block(&mut self, i: usize) {
        if let Some(node) = self.blocks[i].take() {
            node.stop().await.unwrap();
        }
    }
}
