//! `tessera-block`: runs one block node.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tessera_block::{BlockConfig, BlockNode};
use tessera_proto::{config, listener};

#[derive(Parser, Debug)]
#[command(name = "tessera-block", version, about = "Tessera block node: stores erasure-coded chunk fragments")]
struct Args {
    #[command(flatten)]
    server: config::ServerArgs,
    /// Data directory (RocksDB).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Node id, unique in the cluster.
    #[arg(long)]
    node_id: Option<String>,
    /// Failure domain of this node (zone or rack).
    #[arg(long)]
    zone: Option<String>,
}

fn load(args: Args) -> anyhow::Result<BlockConfig> {
    let mut cfg: BlockConfig = args.server.load()?;
    if let Some(v) = args.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = args.node_id {
        cfg.node_id = v;
    }
    if let Some(v) = args.zone {
        cfg.zone = v;
    }
    Ok(cfg)
}

async fn run(cfg: BlockConfig) -> anyhow::Result<()> {
    let node = {
        let open_cfg = cfg.clone();
        tokio::task::spawn_blocking(move || BlockNode::open(&open_cfg))
            .await?
            .map_err(|e| anyhow::anyhow!("cannot open data dir {}: {e}", cfg.data_dir.display()))?
    };
    let (tcp, addr) =
        listener::bind(&cfg.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.listen))?;
    tracing::info!(%addr, node_id = %cfg.node_id, zone = %cfg.zone, "block node listening");
    listener::announce(addr, cfg.addr_file.as_deref())?;
    node.serve(tcp, listener::shutdown_signal()).await
}

fn main() -> ExitCode {
    config::init_logging();
    let args = Args::parse();
    let result =
        load(args).and_then(|cfg| tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(cfg)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-block: {e:#}");
            ExitCode::FAILURE
        }
    }
}
