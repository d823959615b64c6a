//! `tessera-router`: the stateless front of a Tessera cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tessera_proto::{config, listener};
use tessera_router::server::{self, RouterConfig};

#[derive(Parser, Debug)]
#[command(name = "tessera-router", version, about = "Tessera router: chunking, dedup, erasure coding and client APIs")]
struct Args {
    /// TOML config file (unknown keys are rejected); flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Write the address actually bound to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Metadata node address (repeat for several).
    #[arg(long)]
    meta: Vec<String>,
}

fn main() -> ExitCode {
    config::init_logging();
    let args = Args::parse();
    let result = (|| -> anyhow::Result<()> {
        let mut cfg = match &args.config {
            Some(p) => config::load_toml::<RouterConfig>(p)?,
            None => RouterConfig::default(),
        };
        if let Some(v) = args.listen {
            cfg.listen = v;
        }
        if let Some(v) = args.addr_file {
            cfg.addr_file = Some(v);
        }
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
