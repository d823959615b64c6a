//! `tessera-router`: the stateless front of a Tessera cluster.

use std::process::ExitCode;

use clap::Parser;
use tessera_proto::{config, listener};
use tessera_router::server::{self, RouterConfig};

#[derive(Parser, Debug)]
#[command(name = "tessera-router", version, about = "Tessera router: chunking, dedup, erasure coding and client APIs")]
struct Args {
    #[command(flatten)]
    server: config::ServerArgs,
    /// Metadata node address (repeat for several).
    #[arg(long)]
    meta: Vec<String>,
}

fn main() -> ExitCode {
    config::init_logging();
    let args = Args::parse();
    let result = (|| -> anyhow::Result<()> {
        let mut cfg: RouterConfig = args.server.load()?;
        if !args.meta.is_empty() {
            cfg.meta = args.meta;
        }
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(async { server::start(cfg, listener::shutdown_signal()).await?.wait().await })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-router: {e:#}");
            ExitCode::FAILURE
        }
    }
}
