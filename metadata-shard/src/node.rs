//! Runs a `tessera-meta` process: opens the hosted groups, serves Raft
//! transport, admin/client RPCs, `/metrics` and `/health` on one listener,
//! bootstraps or joins the cluster group, and exports Raft state as metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tessera_proto::listener;
use tessera_proto::raft::meta_admin_server::MetaAdminServer;
use tessera_proto::raft::raft_transport_server::RaftTransportServer;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::admin::AdminService;
use crate::client::MetaClient;
use crate::host::{MetaHost, RaftSettings};
use crate::raft::transport::TransportService;

/// `tessera-meta` configuration (TOML; unknown keys rejected).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    pub listen: String,
    pub addr_file: Option<PathBuf>,
    /// Address others use to reach this process; defaults to the bound address.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// Unique, stable numeric id of this process in the cluster (≥ 1).
    pub node_id: u64,
    /// Create the cluster group with this node as its first member (once).
    pub bootstrap: bool,
    /// Address of a running member: join the cluster group through it.
    pub join: Option<String>,
    pub raft: RaftSettings,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            addr_file: None,
            advertise: None,
            data_dir: PathBuf::from("tessera-meta-data"),
            node_id: 1,
            bootstrap: false,
            join: None,
            raft: RaftSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: u64,
}

#[derive(Default, Clone)]
struct RaftGauges {
    term: Family<GroupLabel, Gauge>,
    leader: Family<GroupLabel, Gauge>,
    is_leader: Family<GroupLabel, Gauge>,
    last_log: Family<GroupLabel, Gauge>,
    committed: Family<GroupLabel, Gauge>,
    applied: Family<GroupLabel, Gauge>,
    apply_lag: Family<GroupLabel, Gauge>,
    voters: Family<GroupLabel, Gauge>,
}

impl RaftGauges {
    fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_meta_raft");
        r.register("term", "Current Raft term", self.term.clone());
        r.register("leader", "Node id of the group's leader (-1: none known)", self.leader.clone());
        r.register("is_leader", "1 when this process leads the group", self.is_leader.clone());
        r.register("last_log_index", "Index of the last log entry", self.last_log.clone());
        r.register("commit_index", "Index of the last entry known committed", self.committed.clone());
        r.register("last_applied_index", "Index of the last applied entry", self.applied.clone());
        r.register("apply_lag", "Log entries not yet applied", self.apply_lag.clone());
        r.register("voters", "Voting members of the group", self.voters.clone());
    }

    fn update(&self, host: &MetaHost) {
        for g in host.groups() {
            let m = g.raft.metrics().borrow().clone();
            let l = GroupLabel { group: g.group };
            let last = m.last_log_index.unwrap_or(0) as i64;
            let applied = m.last_applied.map(|a| a.index).unwrap_or(0) as i64;
            self.term.get_or_create(&l).set(m.current_term as i64);
            self.leader.get_or_create(&l).set(m.current_leader.map(|x| x as i64).unwrap_or(-1));
            self.is_leader.get_or_create(&l).set(i64::from(m.current_leader == Some(host.node_id)));
            self.last_log.get_or_create(&l).set(last);
            if let Ok(Some(c)) = g.log.committed() {
                self.committed.get_or_create(&l).set(c.index as i64);
            }
            self.applied.get_or_create(&l).set(applied);
            self.apply_lag.get_or_create(&l).set(last - applied);
            self.voters.get_or_create(&l).set(m.membership_config.membership().voter_ids().count() as i64);
        }
    }
}

/// A metadata node running in this process.
pub struct RunningMetaNode {
    pub addr: String,
    pub host: Arc<MetaHost>,
    server: listener::ServerHandle,
    gauges: tokio::task::JoinHandle<()>,
}

impl RunningMetaNode {
    /// Waits until the server stops (after the shutdown signal given to
    /// [`start`]), then stops the Raft groups.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let served = self.server.join().await;
        self.gauges.abort();
        self.host.shutdown().await;
        served
    }

    /// Graceful stop for embedded nodes.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.host.begin_stopping();
        self.server.trigger_stop();
        self.wait().await
    }
}

/// Runs the process until `shutdown` resolves.
pub async fn run(
    cfg: MetaConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start(cfg, shutdown).await?.wait().await
}

/// Binds, opens the hosted groups, starts serving, then bootstraps or joins
/// the cluster group as configured.
pub async fn start(
    cfg: MetaConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningMetaNode> {
    let (tcp, bound): (TcpListener, _) =
        listener::bind(&cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = cfg.advertise.clone().unwrap_or_else(|| bound.to_string());
    let host = MetaHost::open(cfg.node_id, addr.clone(), &cfg.data_dir, &cfg.raft)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", cfg.data_dir.display()))?;

    let mut registry = Registry::default();
    let gauges = RaftGauges::default();
    gauges.register(&mut registry);
    let routes = Routes::new(
        RaftTransportServer::new(TransportService { host: host.clone() })
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20),
    )
    .add_service(MetaAdminServer::new(AdminService { host: host.clone() }));
    let health_host = host.clone();
    let health: listener::HealthCheck =
        Arc::new(move || if health_host.groups().is_empty() { Err("hosts no raft group yet".into()) } else { Ok(()) });
    let http = listener::observability_routes(Arc::new(registry), health);
    let signal_host = host.clone();
    let shutdown = async move {
        shutdown.await;
        signal_host.begin_stopping();
    };
    let server = listener::spawn(tcp, routes, http, shutdown);
    tracing::info!(%addr, node_id = cfg.node_id, "metadata node listening");
    listener::announce(bound, cfg.addr_file.as_deref())?;

    let gauge_host = host.clone();
    let gauge_task = tokio::spawn(async move {
        loop {
            gauges.update(&gauge_host);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    if cfg.bootstrap && host.group(0).is_none() {
        host.init_group(0).await?;
        tracing::info!("bootstrapped the cluster group");
    }
    if let Some(join) = &cfg.join {
        let joined = host
            .group(0)
            .map(|g| g.raft.metrics().borrow().membership_config.membership().voter_ids().any(|v| v == cfg.node_id))
            .unwrap_or(false);
        if !joined {
            let client = MetaClient::new(vec![join.clone()]);
            let voters = client.add_replica(0, cfg.node_id, &addr).await?;
            tracing::info!(?voters, "joined the cluster group");
        }
    }
    Ok(RunningMetaNode { addr, host, server, gauges: gauge_task })
}

impl tessera_proto::config::ListenerConfig for MetaConfig {
    fn listen_mut(&mut self) -> &mut String {
        &mut self.listen
    }

    fn addr_file_mut(&mut self) -> &mut Option<PathBuf> {
        &mut self.addr_file
    }
}
