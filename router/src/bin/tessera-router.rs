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
    /// Address of the S3 API (e.g. 0.0.0.0:9000); an empty value turns it off.
    #[arg(long)]
    s3_listen: Option<String>,
    /// File to write the S3 listener's address to once bound.
    #[arg(long)]
    s3_addr_file: Option<std::path::PathBuf>,
    /// Base domain for virtual-hosted-style S3 requests (bucket.DOMAIN).
    #[arg(long)]
    s3_domain: Option<String>,
    /// Address of the operator console (e.g. 127.0.0.1:7090; needs `[admin]
    /// password_hash`); an empty value turns it off.
    #[arg(long)]
    admin_listen: Option<String>,
}

fn main() -> ExitCode {
    config::init_logging();
    let args = Args::parse();
    let result = (|| -> anyhow::Result<()> {
        let mut cfg: RouterConfig = args.server.load()?;
        if !args.meta.is_empty() {
            cfg.meta = args.meta;
        }
        if let Some(listen) = args.s3_listen {
            cfg.s3.listen = listen;
        }
        if args.s3_addr_file.is_some() {
            cfg.s3.addr_file = args.s3_addr_file;
        }
        if let Some(listen) = args.admin_listen {
            cfg.admin.listen = listen;
        }
        if args.s3_domain.is_some() {
            cfg.s3.domain = args.s3_domain;
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
