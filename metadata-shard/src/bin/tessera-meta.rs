//! `tessera-meta`: hosts replicas of the cluster group and metadata shards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tessera_meta::node::{self, MetaConfig};
use tessera_proto::{config, listener};

#[derive(Parser, Debug)]
#[command(name = "tessera-meta", version, about = "Tessera metadata node: Raft-replicated metadata shards")]
struct Args {
    #[command(flatten)]
    server: config::ServerArgs,
    /// Address other processes use to reach this one (default: the bound address).
    #[arg(long)]
    advertise: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Numeric node id (≥ 1), unique and stable.
    #[arg(long)]
    node_id: Option<u64>,
    /// Create the cluster group with this node as its first member.
    #[arg(long)]
    bootstrap: bool,
    /// Join the cluster group through this member's address.
    #[arg(long)]
    join: Option<String>,
}

fn load(args: Args) -> anyhow::Result<MetaConfig> {
    let mut cfg: MetaConfig = args.server.load()?;
    if let Some(v) = args.advertise {
        cfg.advertise = Some(v);
    }
    if let Some(v) = args.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = args.node_id {
        cfg.node_id = v;
    }
    if args.bootstrap {
        cfg.bootstrap = true;
    }
    if let Some(v) = args.join {
        cfg.join = Some(v);
    }
    if cfg.node_id == 0 {
        anyhow::bail!("node id must be at least 1");
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    config::init_logging();
    let result = load(Args::parse()).and_then(|cfg| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(node::run(cfg, listener::shutdown_signal()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-meta: {e:#}");
            ExitCode::FAILURE
        }
    }
}
