//! Runs a router: loads the cluster view from the metadata nodes, serves the
//! native API, `/metrics` and `/health` on one listener and the S3 API on
//! another, the operator console on a third when `[admin] listen` is set, and
//! keeps the view current in the background.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde::Deserialize;
use tessera_meta::client::MetaClient;
use tessera_proto::api::tessera_server::TesseraServer;
use tessera_proto::listener;
use tonic::service::Routes;

use crate::api::ApiService;
use crate::auth::Authenticator;
use crate::cluster_view::ClusterView;
use crate::datapath::{DataPath, DataPathConfig};
use crate::s3::server::{S3Config, S3Listener, S3Metrics};

/// `tessera-router` configuration (TOML; unknown keys rejected).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    pub listen: String,
    pub addr_file: Option<PathBuf>,
    /// Addresses of metadata nodes (any subset; the leader is found from them).
    pub meta: Vec<String>,
    /// How often placement and Bloom mirrors are refreshed.
    pub refresh_ms: u64,
    /// Longest a change-feed call may wait for the next change (long-poll).
    pub max_change_wait_ms: u64,
    pub datapath: DataPathConfig,
    pub s3: S3Config,
    pub repair: crate::repair::background::RepairConfig,
    pub gc: crate::gc::background::GcConfig,
    /// The background tiering job (the tiers are set cluster-wide).
    pub tiering: crate::tiering::background::TieringJobConfig,
    pub links: crate::links::LinksConfig,
    /// The operator console (off unless `listen` is set).
    pub admin: crate::console::AdminConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            addr_file: None,
            meta: Vec::new(),
            refresh_ms: 2000,
            max_change_wait_ms: 60_000,
            datapath: DataPathConfig::default(),
            s3: S3Config::default(),
            repair: Default::default(),
            gc: Default::default(),
            tiering: Default::default(),
            links: Default::default(),
            admin: Default::default(),
        }
    }
}

pub struct RunningRouter {
    pub addr: std::net::SocketAddr,
    /// The S3 listener's address, when the gateway is on.
    pub s3_addr: Option<std::net::SocketAddr>,
    /// The operator console's address, when it is on.
    pub admin_addr: Option<std::net::SocketAddr>,
    pub dp: Arc<DataPath>,
    server: listener::ServerHandle,
    s3: Option<S3Listener>,
    console: Option<crate::console::ConsoleListener>,
    refresh: tokio::task::JoinHandle<()>,
    /// Background repair and GC jobs (those turned on).
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningRouter {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn s3_endpoint(&self) -> Option<String> {
        self.s3_addr.map(|a| format!("http://{a}"))
    }

    pub fn admin_endpoint(&self) -> Option<String> {
        self.admin_addr.map(|a| format!("http://{a}"))
    }

    pub async fn wait(mut self) -> anyhow::Result<()> {
        let served = self.server.join().await;
        if let Some(console) = self.console.take() {
            console.stop().await;
        }
        if let Some(s3) = self.s3.take() {
            s3.stop().await;
        }
        self.refresh.abort();
        for job in self.background.drain(..) {
            job.abort();
        }
        served
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.server.trigger_stop();
        self.wait().await
    }
}

/// Starts serving; `shutdown` stops the server gracefully.
pub async fn start(
    cfg: RouterConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningRouter> {
    if cfg.meta.is_empty() {
        anyhow::bail!("no metadata node addresses configured (`meta` / --meta)");
    }
    if cfg.gc.interval_secs > 0 && std::time::Duration::from_secs(cfg.gc.grace_secs) < crate::gc::MIN_GRACE {
        anyhow::bail!("[gc] grace_secs = {} is below the minimum of {:?}", cfg.gc.grace_secs, crate::gc::MIN_GRACE);
    }
    if let Some(q) = cfg.datapath.write_quorum {
        let (k, m) = (cfg.datapath.data_shards, cfg.datapath.parity_shards);
        if q <= k || q > k + m {
            anyhow::bail!("[datapath] write_quorum = {q} must be between k+1 = {} and k+m = {}", k + 1, k + m);
        }
    }
    let meta = Arc::new(MetaClient::new(cfg.meta.clone()));
    let view = ClusterView::load(meta.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the cluster view from {:?}: {e}", cfg.meta))?;
    let dp = DataPath::new(view.clone(), cfg.datapath)?;
    let mut registry = Registry::default();
    dp.counters.register(&mut registry);
    crate::datapath::DataPathCounters::register_cache(&view.cache, &mut registry);
    let auth = Arc::new(Authenticator::new(meta));
    let repair_metrics = crate::repair::background::RepairMetrics::default();
    repair_metrics.register(&mut registry);
    let gc_metrics = crate::gc::background::GcMetrics::default();
    gc_metrics.register(&mut registry);
    let tier_metrics = crate::tiering::background::TieringMetrics::default();
    tier_metrics.register(&mut registry);
    let s3_metrics = S3Metrics::default();
    s3_metrics.register(&mut registry);
    let console_metrics = crate::console::ConsoleMetrics::default();
    if cfg.admin.enabled() {
        console_metrics.register(&mut registry);
    }
    let api = ApiService { dp: dp.clone(), auth: auth.clone(), max_change_wait_ms: cfg.max_change_wait_ms };
    let api_router =
        Routes::new(TesseraServer::new(api).max_decoding_message_size(16 << 20).max_encoding_message_size(16 << 20))
            .into_axum_router()
            .layer(axum::middleware::from_fn(crate::auth::tag_method_path));
    let routes = Routes::from(api_router);
    let health_view = view.clone();
    let health: listener::HealthCheck = Arc::new(move || {
        if health_view.placement().block_nodes().is_empty() {
            Err("no block nodes known".into())
        } else {
            Ok(())
        }
    });
    let http = listener::observability_routes(Arc::new(registry), health)
        .merge(crate::links::http::routes(dp.clone(), cfg.links.clone()))
        .merge(crate::changes_http::routes(dp.clone(), auth.clone(), cfg.max_change_wait_ms));
    let (tcp, addr) =
        listener::bind(&cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    let s3 = if cfg.s3.listen.is_empty() {
        None
    } else {
        Some(crate::s3::server::start(dp.clone(), auth, &cfg.s3, s3_metrics).await?)
    };
    let s3_addr = s3.as_ref().map(|l| l.addr);
    let server = listener::spawn(tcp, routes, http, shutdown);
    listener::announce(addr, cfg.addr_file.as_deref())?;
    tracing::info!(%addr, "router listening");
    let refresh = view.spawn_refresh(Duration::from_millis(cfg.refresh_ms.max(100)));
    let by = format!("router {addr}");
    let console = if cfg.admin.enabled() {
        let jobs = crate::console::jobs::Background {
            repair_running: repair_metrics.running.clone(),
            gc_running: gc_metrics.running.clone(),
            repair: cfg.repair.clone(),
            gc: cfg.gc.clone(),
            by: format!("console of {by}"),
        };
        Some(crate::console::start(dp.clone(), &cfg.admin, cfg.meta.clone(), jobs, console_metrics).await?)
    } else {
        None
    };
    let admin_addr = console.as_ref().map(|c| c.addr);
    let background = [
        crate::repair::background::spawn(dp.clone(), cfg.repair.clone(), repair_metrics, by.clone()),
        crate::gc::background::spawn(dp.clone(), cfg.gc.clone(), gc_metrics, by.clone()),
        crate::tiering::background::spawn(dp.clone(), cfg.tiering.clone(), tier_metrics, by),
        // A user move whose mover died is finished or rolled back by whichever router sees it first.
        Some(crate::user_move::spawn_recovery(view.meta.clone(), Duration::from_secs(10))),
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(RunningRouter { addr, s3_addr, admin_addr, dp, server, s3, console, refresh, background })
}

impl tessera_proto::config::ListenerConfig for RouterConfig {
    fn listen_mut(&mut self) -> &mut String {
        &mut self.listen
    }

    fn addr_file_mut(&mut self) -> &mut Option<PathBuf> {
        &mut self.addr_file
    }
}
