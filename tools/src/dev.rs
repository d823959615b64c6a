//! `tessera dev`: a whole local cluster in one process on a data dir.
//!
//! Currently the block layer: six block stores (one per 4+2 fragment), each in
//! `DIR/block-N`, listening on consecutive ports from `--port` (or free ports).
//! The metadata shard and router join it as they are built.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tessera_block::{BlockConfig, BlockNode};

#[derive(Args)]
pub struct DevArgs {
    /// Data directory; created if missing, reused across restarts.
    #[arg(long)]
    data: PathBuf,
    /// First port to listen on (0 = pick free ports).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Number of block stores.
    #[arg(long, default_value_t = 6)]
    block_nodes: u16,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data).with_context(|| format!("cannot create data dir {}", args.data.display()))?;
    let mut nodes = Vec::new();
    let mut lines = Vec::new();
    for i in 0..args.block_nodes {
        let port = if args.port == 0 { 0 } else { args.port + i };
        let cfg = BlockConfig {
            listen: format!("127.0.0.1:{port}"),
            data_dir: args.data.join(format!("block-{i}")),
            node_id: format!("block-{i}"),
            zone: format!("zone-{i}"),
            ..BlockConfig::default()
        };
        let node = BlockNode::start(&cfg)
            .await
            .with_context(|| format!("starting block store {i} on {}", cfg.data_dir.display()))?;
        println!("block store {} listening on {}", cfg.node_id, node.addr);
        lines.push(format!("{} {}", cfg.node_id, node.endpoint()));
        nodes.push(node);
    }
    let list = args.data.join("block-nodes");
    std::fs::write(&list, lines.join("\n") + "\n").with_context(|| format!("writing {}", list.display()))?;
    println!("tessera dev running on {} (Ctrl-C to stop)", args.data.display());
    tessera_proto::listener::shutdown_signal().await;
    for node in nodes {
        node.stop().await?;
    }
    Ok(())
}
