//! `tessera dev`: a whole cluster in one process on a data dir — a metadata
//! node (cluster group and one shard), six block stores (4+2 coding, one zone
//! each) and a router, all the real components over loopback gRPC.
//!
//! Ports and the default user's credentials are kept in the data dir, so a
//! restart comes back on the same addresses with the same data. `DIR/env`
//! holds `export` lines for the CLI and S3 tools.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use tessera_block::{BlockConfig, BlockNode};
use tessera_meta::client::MetaClient;
use tessera_meta::node::{self as meta_node, MetaConfig};
use tessera_router::console::AdminConfig;
use tessera_router::s3::server::S3Config;
use tessera_router::server::{self as router_server, RouterConfig};

use crate::local_cluster::{create_user, ensure_shards, free_port, register_block, write_env, ClientEnv};

const BLOCK_NODES: u16 = 6;

#[derive(Args)]
pub struct DevArgs {
    /// Data directory; created if missing, reused across restarts.
    #[arg(long)]
    data: PathBuf,
    /// Router port; the metadata node and block stores use the next ports.
    /// Default: ports chosen on first start and reused afterwards.
    #[arg(long)]
    port: Option<u16>,
    /// Metadata shard groups created on a new data directory (all on the one
    /// metadata node); ignored when the directory holds a cluster already.
    #[arg(long, default_value_t = 1)]
    shards: u32,
}

#[derive(Serialize, Deserialize, Clone)]
struct DevState {
    router_port: u16,
    /// 0 in state files written before the router served S3: chosen at start.
    #[serde(default)]
    s3_port: u16,
    meta_port: u16,
    block_ports: Vec<u16>,
    user_id: String,
    access_key: String,
    secret_key: String,
    /// The operator console (generated on the first start that lacks it).
    #[serde(default)]
    admin_port: u16,
    #[serde(default)]
    admin_password: String,
    #[serde(default)]
    admin_password_hash: String,
}

fn load_state(dir: &Path, port: Option<u16>) -> anyhow::Result<(DevState, bool)> {
    let path = dir.join("dev.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut s: DevState = serde_json::from_str(&text).with_context(|| format!("corrupt {}", path.display()))?;
        if let Some(p) = port {
            s.router_port = p;
        }
        if s.s3_port == 0 {
            s.s3_port = free_port()?;
        }
        ensure_admin(&mut s)?;
        return Ok((s, false));
    }
    let (router_port, s3_port, meta_port, block_ports) = match port {
        Some(p) => (p, p + 1, p + 2, (0..BLOCK_NODES).map(|i| p + 3 + i).collect()),
        None => {
            (free_port()?, free_port()?, free_port()?, (0..BLOCK_NODES).map(|_| free_port()).collect::<Result<_, _>>()?)
        }
    };
    let (access_key, secret_key) = crate::admin::new_credentials();
    let mut state = DevState {
        router_port,
        s3_port,
        meta_port,
        block_ports,
        user_id: "dev".into(),
        access_key,
        secret_key,
        admin_port: 0,
        admin_password: String::new(),
        admin_password_hash: String::new(),
    };
    ensure_admin(&mut state)?;
    Ok((state, true))
}

/// A console port and password for state files that have none yet.
fn ensure_admin(s: &mut DevState) -> anyhow::Result<()> {
    if s.admin_port == 0 {
        s.admin_port = free_port()?;
    }
    if s.admin_password.is_empty() || s.admin_password_hash.is_empty() {
        (s.admin_password, s.admin_password_hash) = crate::local_cluster::new_admin_password()?;
    }
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let dir = args.data;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let (state, fresh) = load_state(&dir, args.port)?;

    let meta_cfg = MetaConfig {
        listen: format!("127.0.0.1:{}", state.meta_port),
        data_dir: dir.join("meta"),
        node_id: 1,
        bootstrap: true,
        ..MetaConfig::default()
    };
    let meta = meta_node::start(meta_cfg, std::future::pending()).await.context("starting the metadata node")?;
    let client = Arc::new(MetaClient::new(vec![meta.addr.clone()]));

    let mut blocks = Vec::new();
    for (i, port) in state.block_ports.iter().enumerate() {
        let cfg = BlockConfig {
            listen: format!("127.0.0.1:{port}"),
            data_dir: dir.join(format!("block-{i}")),
            node_id: format!("block-{i}"),
            zone: format!("zone-{i}"),
            ..BlockConfig::default()
        };
        let node = BlockNode::start(&cfg).await.with_context(|| format!("starting block store {i}"))?;
        register_block(&client, &cfg.node_id, &node.addr.to_string(), &cfg.zone, vec![]).await?;
        blocks.push(node);
    }
    ensure_shards(&client, &[(1, meta.addr.clone())], args.shards).await?;
    if fresh {
        create_user(&client, &state.user_id, "Development user", &state.access_key, &state.secret_key).await?;
    }
    write_atomic(&dir.join("dev.json"), &serde_json::to_string_pretty(&state)?)?;

    let router_cfg = RouterConfig {
        listen: format!("127.0.0.1:{}", state.router_port),
        meta: vec![meta.addr.clone()],
        refresh_ms: 1000,
        s3: S3Config {
            listen: format!("127.0.0.1:{}", state.s3_port),
            // Virtual-hosted style as bucket.localhost:PORT (the port is part of the Host header).
            domain: Some(format!("localhost:{}", state.s3_port)),
            ..S3Config::default()
        },
        admin: AdminConfig {
            listen: format!("127.0.0.1:{}", state.admin_port),
            password_hash: state.admin_password_hash.clone(),
            ..AdminConfig::default()
        },
        ..RouterConfig::default()
    };
    let router = router_server::start(router_cfg, std::future::pending()).await.context("starting the router")?;
    let endpoint = router.endpoint();
    let s3 = router.s3_endpoint().unwrap_or_default();
    let admin_url = router.admin_endpoint().unwrap_or_default();
    let env = ClientEnv {
        router: &endpoint,
        s3: &s3,
        meta: &meta.addr,
        access_key: &state.access_key,
        secret_key: &state.secret_key,
        admin: Some((&admin_url, &state.admin_password)),
    };
    write_env(&dir, &env)?;
    println!(
        "tessera dev: router {endpoint}, S3 {s3}, metadata {}, {} block stores (4+2) in {}",
        meta.addr,
        blocks.len(),
        dir.display()
    );
    println!("operator console: {admin_url} (password: TESSERA_ADMIN_PASSWORD in {})", dir.join("env").display());
    println!("credentials and endpoints: source {}", dir.join("env").display());
    if let Some(bin_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        println!("the CLI: export PATH=\"{}:$PATH\"; tessera ls /", bin_dir.display());
    }

    tessera_proto::listener::shutdown_signal().await;
    router.stop().await?;
    for b in blocks {
        b.stop().await?;
    }
    meta.stop().await?;
    Ok(())
}
