//! The operator console: server-rendered HTML pages on a separate admin port
//! (`[admin] listen`), behind an admin password (`[admin] password_hash`, an
//! argon2id PHC string). It shows cluster health (the same numbers as `tessera
//! admin status --json`, from [`crate::status`]), background work (repair,
//! rebalance, GC, storage tiering with bytes per tier), users with usage and quota, and the
//! router's recent warnings and errors, and has buttons that start a repair or
//! GC pass in this router.
//!
//! * [`auth`]: login form, session cookies (HttpOnly, SameSite=Strict), a
//!   per-session CSRF token for every POST, rate-limited wrong passwords.
//! * [`jobs`]: the passes the buttons start, one at a time.
//! * [`pages`]: the HTML (everything escaped, inline CSS, no external assets).
//! * [`errors`]: the recent warnings and errors this process logged.

pub mod auth;
pub mod errors;
pub mod jobs;
pub mod pages;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::datapath::DataPath;

/// `[admin]` in `router.toml`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the console (e.g. 127.0.0.1:7090); empty turns it off.
    pub listen: String,
    /// File to write the console's address to once bound.
    pub addr_file: Option<PathBuf>,
    /// argon2id PHC string of the admin password (`tessera admin hash-password`).
    pub password_hash: String,
    /// Minutes a login lasts.
    pub session_minutes: u64,
}

impl AdminConfig {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("[admin] listen is set but password_hash is empty (hash one with `tessera admin hash-password`)")]
    NoCredential,
    #[error("[admin] password_hash: {0}")]
    BadCredential(#[from] tessera_meta::password::PasswordError),
    #[error("cannot listen for the console on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot write the console's address file: {0}")]
    AddrFile(std::io::Error),
}

/// `tessera_router_console_*` on `/metrics`.
#[derive(Default, Clone)]
pub struct ConsoleMetrics {
    /// Login attempts by outcome (`ok`, `failed`, `limited`).
    pub logins: Family<Vec<(String, String)>, Counter>,
    /// Passes started from the console, by kind.
    pub passes_started: Family<Vec<(String, String)>, Counter>,
}

impl ConsoleMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_console");
        r.register("logins", "Console login attempts by outcome", self.logins.clone());
        r.register("passes_started", "Repair and GC passes started from the console", self.passes_started.clone());
    }

    fn login(&self, outcome: &str) {
        self.logins.get_or_create(&vec![("outcome".into(), outcome.into())]).inc();
    }
}

/// What the pages read and the buttons start.
pub struct Console {
    pub dp: Arc<DataPath>,
    pub auth: auth::Sessions,
    pub jobs: jobs::Jobs,
    pub metrics: ConsoleMetrics,
    /// The router's background jobs, for "running" and their schedules.
    pub background: jobs::Background,
    /// The metadata nodes status is collected from (the router's `meta`).
    pub meta_endpoints: Vec<String>,
}

pub struct ConsoleListener {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleListener {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `[admin] listen` and serves the console until stopped.
pub async fn start(
    dp: Arc<DataPath>,
    cfg: &AdminConfig,
    meta_endpoints: Vec<String>,
    background: jobs::Background,
    metrics: ConsoleMetrics,
) -> Result<ConsoleListener, ConsoleError> {
    if cfg.password_hash.is_empty() {
        return Err(ConsoleError::NoCredential);
    }
    tessera_meta::password::check_hash(&cfg.password_hash)?;
    let minutes = if cfg.session_minutes == 0 { 12 * 60 } else { cfg.session_minutes };
    let console = Arc::new(Console {
        jobs: jobs::Jobs::new(dp.clone(), background.clone()),
        dp,
        auth: auth::Sessions::new(cfg.password_hash.clone(), std::time::Duration::from_secs(minutes * 60)),
        metrics,
        background,
        meta_endpoints,
    });
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ConsoleError::Listen { addr: cfg.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Listen { addr: cfg.listen.clone(), source })?;
    if let Some(path) = &cfg.addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string()).map_err(ConsoleError::AddrFile)?;
        std::fs::rename(&tmp, path).map_err(ConsoleError::AddrFile)?;
    }
    tracing::info!(%addr, "operator console listening");
    let app = routes::router(console).into_make_service_with_connect_info::<SocketAddr>();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stopped.changed().await;
        });
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "operator console stopped");
        }
    });
    Ok(ConsoleListener { addr, stop, task })
}
