//! `MetaHost`: the Raft groups hosted by one `tessera-meta` process, all on
//! one RocksDB and one listener. Which groups a process hosts is recorded in
//! RocksDB, so a restart reopens exactly those replicas.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use openraft::{BasicNode, Config, SnapshotPolicy};
use rocksdb::{IteratorMode, WriteOptions};
use serde::Deserialize;

use crate::command::TesseraApplier;
use crate::raft::db::{group_key, CF_META};
use crate::raft::network::{GroupNetwork, PeerChannels};
use crate::raft::{GroupId, LogStore, MetaDb, NodeId, Raft, StateMachineStore};

const HOSTED: &[u8] = b"hosted";

/// Raft timing and log-compaction settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every_entries: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_every_entries: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("invalid raft settings: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
}

pub struct GroupReplica {
    pub group: GroupId,
    pub raft: Raft,
    pub sm: StateMachineStore,
    /// Read-only handle on the group's log (for the committed index).
    pub log: LogStore,
}

pub struct MetaHost {
    pub node_id: NodeId,
    /// Address peers and clients reach this process at.
    pub addr: String,
    db: MetaDb,
    peers: PeerChannels,
    config: Arc<Config>,
    groups: RwLock<BTreeMap<GroupId, Arc<GroupReplica>>>,
    /// Set when the process begins to stop, so long-polls answer at once
    /// instead of holding up a graceful shutdown.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl MetaHost {
    /// Opens the data dir and every group hosted before.
    pub async fn open(
        node_id: NodeId,
        addr: String,
        data_dir: &Path,
        settings: &RaftSettings,
    ) -> Result<Arc<Self>, HostError> {
        let db = MetaDb::open(data_dir)?;
        let config = Config {
            cluster_name: "tessera".into(),
            heartbeat_interval: settings.heartbeat_ms,
            election_timeout_min: settings.election_timeout_min_ms,
            election_timeout_max: settings.election_timeout_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(settings.snapshot_every_entries),
            max_in_snapshot_log_to_keep: settings.snapshot_every_entries.min(1000),
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| HostError::Config(e.to_string()))?);
        let host = Arc::new(Self {
            node_id,
            addr,
            db,
            peers: PeerChannels::default(),
            config,
            groups: RwLock::default(),
            stopping: tokio::sync::watch::Sender::new(false),
        });
        for group in host.hosted_groups()? {
            host.host_group(group).await?;
        }
        Ok(host)
    }

    fn hosted_groups(&self) -> Result<Vec<GroupId>, rocksdb::Error> {
        let mut out = Vec::new();
        for item in self.db.db.iterator_cf(self.db.cf(CF_META), IteratorMode::Start) {
            let (k, _) = item?;
            if k.len() == 8 + HOSTED.len() && &k[8..] == HOSTED {
                let mut g = [0u8; 8];
                g.copy_from_slice(&k[..8]);
                out.push(u64::from_be_bytes(g));
            }
        }
        Ok(out)
    }

    pub fn group(&self, group: GroupId) -> Option<Arc<GroupReplica>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).get(&group).cloned()
    }

    pub fn groups(&self) -> Vec<Arc<GroupReplica>> {
        self.groups.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Starts (idempotently) a replica of `group` on this process.
    pub async fn host_group(&self, group: GroupId) -> Result<Arc<GroupReplica>, HostError> {
        if let Some(g) = self.group(group) {
            return Ok(g);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.db.put_cf_opt(self.db.cf(CF_META), group_key(group, HOSTED), [], &wo)?;
        let log = LogStore::new(self.db.clone(), group);
        let sm = StateMachineStore::new(self.db.clone(), group, Arc::new(TesseraApplier));
        let network = GroupNetwork { group, peers: self.peers.clone() };
        let raft = Raft::new(self.node_id, self.config.clone(), network, log.clone(), sm.clone())
            .await
            .map_err(|e| HostError::Raft(e.to_string()))?;
        let replica = Arc::new(GroupReplica { group, raft, sm, log });
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        Ok(groups.entry(group).or_insert(replica).clone())
    }

    /// Creates `group` with this process as its only voter.
    pub async fn init_group(&self, group: GroupId) -> Result<Arc<GroupReplica>, HostError> {
        let replica = self.host_group(group).await?;
        let members = BTreeMap::from([(self.node_id, BasicNode::new(&self.addr))]);
        match replica.raft.initialize(members).await {
            Ok(()) => Ok(replica),
            // Already initialized (e.g. a restart with --bootstrap): fine.
            Err(openraft::error::RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(replica),
            Err(e) => Err(HostError::Raft(e.to_string())),
        }
    }

    /// Marks the process as stopping (long-polls return early).
    pub fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`begin_stopping`](Self::begin_stopping) was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub async fn shutdown(&self) {
        for g in self.groups() {
            if let Err(e) = g.raft.shutdown().await {
                tracing::warn!(group = g.group, error = %e, "raft shutdown");
            }
        }
    }
}
