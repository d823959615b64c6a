//! `ClusterView`: the router's picture of the cluster, read from the cluster
//! group: block nodes (with zones), the shard map and the placement epoch,
//! turned into a [`Placement`]. Refreshed in the background, so a router
//! follows membership changes without a restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterQuery, NodeKind};
use tessera_meta::command::{ApplyErrorKind, GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::{QueryResponse, ShardQuery};

use crate::blocks::BlockPool;
use crate::error::RouterError;
use crate::meta_cache::MetaCache;
use crate::placement::{BlockNodeInfo, Placement, ShardInfo};

/// How long a request waits for a moving user before it fails (retryably).
pub const MOVE_WAIT: Duration = Duration::from_secs(30);

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
    let ClusterAnswer::Assignments(assignments) = cluster_query(meta, ClusterQuery::Assignments).await? else {
        return Err(RouterError::Metadata("assignment query answered something else".into()));
    };
    Ok(Placement::new(epoch, nodes, shards).with_tiering(tiering).with_assignments(assignments))
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
    /// change-log read with nothing new waits up to `wait`. Follows the user
    /// through a move (see [`follow_user`](Self::follow_user)).
    pub async fn shard_query(
        &self,
        user_id: &str,
        q: ShardQuery,
        wait: Duration,
    ) -> Result<QueryResponse, RouterError> {
        let q = GroupQuery::Shard(q);
        let answer = self
            .follow_user(
                user_id,
                |shard| {
                    let q = &q;
                    async move { Ok(self.meta.query_wait(shard, q, wait).await?) }
                },
                |a| match a {
                    GroupAnswer::Shard(Err(e)) => Some(e.kind),
                    _ => None,
                },
            )
            .await?;
        match answer {
            GroupAnswer::Shard(Ok(r)) => Ok(r),
            GroupAnswer::Shard(Err(e)) => Err(e.into()),
            other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        }
    }

    /// Proposes `cmd` on the user's shard, following the user through a move.
    pub async fn propose_for_user(&self, user_id: &str, cmd: &GroupCommand) -> Result<GroupResponse, RouterError> {
        self.follow_user(
            user_id,
            |shard| async move { Ok(self.meta.propose(shard, cmd).await?.0) },
            |r| match r {
                GroupResponse::Shard(Err(e)) => Some(e.kind),
                _ => None,
            },
        )
        .await
    }

    /// Runs `op` on the user's shard. While the user moves between groups its
    /// groups answer "moving" (writes wait a moment and are tried again) or
    /// "moved" (the router re-reads the map at once and asks the new group),
    /// for up to [`MOVE_WAIT`]; after that the answer goes back as it is
    /// (a retryable "unavailable" for the client).
    async fn follow_user<'a, T, F, Fut>(
        &'a self,
        user_id: &str,
        op: F,
        refusal: impl Fn(&T) -> Option<ApplyErrorKind>,
    ) -> Result<T, RouterError>
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = Result<T, RouterError>> + 'a,
    {
        let deadline = tokio::time::Instant::now() + MOVE_WAIT;
        let mut pause = Duration::from_millis(20);
        loop {
            let answer = op(self.shard_of(user_id)?).await?;
            let kind = refusal(&answer);
            if !matches!(kind, Some(ApplyErrorKind::UserMoving | ApplyErrorKind::UserMoved))
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(answer);
            }
            if kind == Some(ApplyErrorKind::UserMoving) {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "map refresh while following a moving user failed");
            }
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
            || fresh.assignments() != current.assignments()
        {
            tracing::info!(epoch = fresh.epoch(), nodes = fresh.block_nodes().len(), "placement changed");
            // A user whose group changed is read from its new group from now on.
            let (old, new) = (current.assignments(), fresh.assignments());
            for user in old.keys().chain(new.keys()).filter(|u| old.get(*u) != new.get(*u)) {
                self.cache.invalidate(user);
            }
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
