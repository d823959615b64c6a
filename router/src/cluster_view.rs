//! `ClusterView`: the router's picture of the cluster, read from the cluster
//! group: block nodes (with zones), the shard map and the placement epoch,
//! turned into a [`Placement`]. Refreshed in the background, so a router
//! follows membership changes without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterQuery, NodeKind};
use tessera_meta::command::{GroupAnswer, GroupQuery};
use tessera_meta::model::{QueryResponse, ShardQuery};

use crate::blocks::BlockPool;
use crate::error::RouterError;
use crate::meta_cache::MetaCache;
use crate::placement::{BlockNodeInfo, Placement, ShardInfo};

pub struct ClusterView {
    pub meta: Arc<MetaClient>,
    pub pool: Arc<BlockPool>,
    pub cache: Arc<MetaCache>,
    placement: RwLock<Arc<Placement>>,
}

async fn cluster_query(meta: &MetaClient, q: ClusterQuery) -> Result<ClusterAnswer, RouterError> {
    match meta.query(0, &GroupQuery::Cluster(q)).await? {
        GroupAnswer::Cluster(a) => Ok(a),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

async fn load_placement(meta: &MetaClient) -> Result<Placement, RouterError> {
    let ClusterAnswer::Epoch(epoch) = cluster_query(meta, ClusterQuery::Epoch).await? else {
        return Err(RouterError::Metadata("epoch query answered something else".into()));
    };
    let ClusterAnswer::Nodes(nodes) = cluster_query(meta, ClusterQuery::Nodes(NodeKind::Block)).await? else {
        return Err(RouterError::Metadata("node query answered something else".into()));
    };
    let ClusterAnswer::ShardMap(shards) = cluster_query(meta, ClusterQuery::ShardMap).await? else {
        return Err(RouterError::Metadata("shard map query answered something else".into()));
    };
    let nodes = nodes
        .into_iter()
        .map(|n| BlockNodeInfo {
            id: n.id,
            zone: n.zone,
            endpoint: if n.addr.starts_with("http") { n.addr } else { format!("http://{}", n.addr) },
            labels: n.labels,
        })
        .collect();
    let shards = shards.into_iter().map(|s| ShardInfo { group_id: s.group_id, vnodes: s.vnodes }).collect();
    let ClusterAnswer::Tiering(tiering) = cluster_query(meta, ClusterQuery::Tiering).await? else {
        return Err(RouterError::Metadata("tiering query answered something else".into()));
    };
    Ok(Placement::new(epoch, nodes, shards).with_tiering(tiering))
}

impl ClusterView {
    /// The view a router serves from: placement plus a Bloom mirror of every block node.
    pub async fn load(meta: Arc<MetaClient>) -> Result<Arc<Self>, RouterError> {
        let view = Self::without_mirrors(meta).await?;
        view.refresh_mirrors().await;
        Ok(view)
    }

    /// Placement only, for tools that route shard queries or ask block nodes
    /// exactly (`BatchHas`): skips fetching every node's Bloom filter. Presence
    /// checks then ask the nodes, since a missing mirror answers "maybe".
    pub async fn without_mirrors(meta: Arc<MetaClient>) -> Result<Arc<Self>, RouterError> {
        let placement = load_placement(&meta).await?;
        Ok(Arc::new(Self {
            meta,
            pool: Arc::new(BlockPool::default()),
            cache: Arc::new(MetaCache::default()),
            placement: RwLock::new(Arc::new(placement)),
        }))
    }

    /// The metadata shard of `user_id`.
    pub fn shard_of(&self, user_id: &str) -> Result<u64, RouterError> {
        self.placement().shard_for_user(user_id).map_err(|e| RouterError::Unavailable(e.to_string()))
    }

    /// A linearizable read on the user's shard, bypassing the cache; a
    /// change-log read with nothing new waits up to `wait`.
    pub async fn shard_query(
        &self,
        user_id: &str,
        q: ShardQuery,
        wait: Duration,
    ) -> Result<QueryResponse, RouterError> {
        match self.meta.query_wait(self.shard_of(user_id)?, &GroupQuery::Shard(q), wait).await? {
            GroupAnswer::Shard(Ok(r)) => Ok(r),
            GroupAnswer::Shard(Err(e)) => Err(e.into()),
            other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        }
    }

    /// The current placement snapshot.
    pub fn placement(&self) -> Arc<Placement> {
        self.placement.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the cluster group; swaps in a new placement when anything changed.
    pub async fn refresh(&self) -> Result<(), RouterError> {
        let fresh = load_placement(&self.meta).await?;
        let current = self.placement();
        if fresh.epoch() != current.epoch()
            || fresh.block_nodes() != current.block_nodes()
            || fresh.shards() != current.shards()
            || fresh.tiering() != current.tiering()
        {
            tracing::info!(epoch = fresh.epoch(), nodes = fresh.block_nodes().len(), "placement changed");
            *self.placement.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        }
        Ok(())
    }

    /// Updates the Bloom mirror of every block node (unreachable nodes are
    /// skipped; their mirror stays as it was).
    pub async fn refresh_mirrors(&self) {
        let placement = self.placement();
        let refreshes = placement.block_nodes().iter().map(|n| self.pool.refresh_mirror(n));
        for (node, result) in placement.block_nodes().iter().zip(futures::future::join_all(refreshes).await) {
            if let Err(e) = result {
                tracing::debug!(node = %node.id, error = %e, "Bloom mirror not refreshed");
            }
        }
    }

    /// Refreshes placement and mirrors every `every` until the task is dropped.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let view = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(view) = view.upgrade() else { return };
                if let Err(e) = view.refresh().await {
                    tracing::warn!(error = %e, "cluster view refresh failed");
                }
                view.refresh_mirrors().await;
            }
        })
    }
}
