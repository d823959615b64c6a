//! `tessera admin tier set|show|status|run`: the cluster's storage tiers (kept
//! in the cluster group, so every router follows them), bytes per tier, and a
//! tiering pass from the operator's shell.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterCommand, TierPassRecord};
use tessera_meta::tiering::TieringConfig;
use tessera_router::cluster_view::ClusterView;
use tessera_router::datapath::{DataPath, DataPathConfig};
use tessera_router::tiering::{self, TierPassOptions};

#[derive(Subcommand, Debug)]
pub enum TierCommand {
    /// Store the cluster's tiers from a TOML file (see docs/operations.md,
    /// "Storage tiers"); routers follow within their refresh interval.
    Set { file: PathBuf },
    /// The tiers in force, as TOML (or JSON with --json).
    Show,
    /// Bytes and fragments per tier, and the latest tiering pass.
    Status {
        #[command(flatten)]
        code: HotCode,
    },
    /// Run one pass now: demote chunks not read for their tier's age, promote
    /// chunks read in a colder tier, remove leftovers of interrupted moves.
    Run(TierRunArgs),
}

/// The first tier's erasure code (as in the routers' `[datapath]`).
#[derive(Args, Debug, Clone, Copy)]
pub struct HotCode {
    #[arg(long, default_value_t = 4)]
    pub data_shards: usize,
    #[arg(long, default_value_t = 2)]
    pub parity_shards: usize,
}

#[derive(Args, Debug)]
pub struct TierRunArgs {
    #[command(flatten)]
    pub code: HotCode,
    /// Upper bound on bytes moved per second (0 = as fast as the nodes go).
    #[arg(long, default_value_t = 0)]
    pub max_bytes_per_sec: u64,
    /// Longest a move batch may take from its first write to its commit (e.g. 60s).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub move_deadline: Duration,
    /// Chunks read and written at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
}

fn summary(r: &TierPassRecord) -> String {
    format!(
        "{} · nodes listed {}/{} · chunks examined {} · demoted {}, promoted {} · {} moved · leftovers cleaned {}, stale moves {}",
        r.phase,
        r.nodes_listed,
        r.nodes_total,
        r.chunks_examined,
        r.chunks_demoted,
        r.chunks_promoted,
        indicatif::HumanBytes(r.bytes_moved),
        r.copies_cleaned,
        r.moves_stale,
    )
}

async fn data_path(meta: MetaClient, code: HotCode) -> anyhow::Result<Arc<DataPath>> {
    // Tiering asks block nodes exactly, so it needs no Bloom mirrors.
    let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
    let config =
        DataPathConfig { data_shards: code.data_shards, parity_shards: code.parity_shards, ..Default::default() };
    Ok(DataPath::new(view, config)?)
}

pub async fn run(meta: MetaClient, command: TierCommand, json: bool) -> anyhow::Result<()> {
    match command {
        TierCommand::Set { file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let config = TieringConfig::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let names: Vec<&str> = config.tiers.iter().map(|t| t.name.as_str()).collect();
            let epoch = crate::admin::cluster_command(&meta, ClusterCommand::SetTiering(Some(config.clone()))).await?;
            if json {
                println!("{}", json!({"tiers": names, "epoch": epoch}));
            } else {
                println!("tiers set: {}; placement epoch {epoch}", names.join(", "));
            }
            Ok(())
        }
        TierCommand::Show => {
            let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
            match (view.placement().tiering(), json) {
                (None, true) => println!("null"),
                (None, false) => println!("storage tiering is not configured"),
                (Some(c), true) => println!("{}", serde_json::to_string(c)?),
                (Some(c), false) => print!("{}", toml::to_string(c)?),
            }
            Ok(())
        }
        TierCommand::Status { code } => {
            let dp = data_path(meta, code).await?;
            let usage = tiering::tier_usage(&dp).await;
            let last = tiering::pass::last_record(&dp).await?;
            if json {
                println!("{}", json!({"configured": dp.tiers().configured(), "tiers": usage, "last_pass": last}));
                return Ok(());
            }
            if !dp.tiers().configured() {
                println!("storage tiering is not configured (one tier of every block node)");
            }
            for t in &usage {
                println!(
                    "{:<10} code {:<5} compression {:<4} nodes {} ({} unreachable) · {} fragments · {} stored · demote after {}",
                    t.name,
                    t.code,
                    t.compression,
                    t.nodes.len(),
                    t.nodes_unreachable.len(),
                    t.fragments,
                    indicatif::HumanBytes(t.fragment_bytes),
                    t.demote_after_secs
                        .map(|s| humantime::format_duration(Duration::from_secs(s)).to_string())
                        .unwrap_or_else(|| "—".into()),
                );
            }
            match last {
                None => println!("no tiering pass has run yet"),
                Some(r) => println!("last pass by {}: {}", r.by, summary(&r)),
            }
            Ok(())
        }
        TierCommand::Run(args) => {
            let dp = data_path(meta, args.code).await?;
            let options = TierPassOptions {
                max_bytes_per_sec: args.max_bytes_per_sec,
                move_deadline: args.move_deadline,
                parallel: args.parallel,
                by: "tessera admin".into(),
                ..Default::default()
            };
            let terminal = std::io::stderr().is_terminal();
            let mut last_line = Instant::now();
            let started = Instant::now();
            let record = tiering::run_pass(&dp, &options, &Default::default(), |r| {
                if terminal || last_line.elapsed() >= Duration::from_secs(2) {
                    last_line = Instant::now();
                    eprintln!("{}", summary(r));
                }
            })
            .await?;
            let secs = started.elapsed().as_secs_f64();
            if json {
                let mut value = serde_json::to_value(&record)?;
                value["elapsed_secs"] = json!(secs);
                println!("{value}");
            } else {
                println!(
                    "tiering done in {secs:.1} s: {} ({}/s)",
                    summary(&record),
                    indicatif::HumanBytes((record.bytes_moved as f64 / secs.max(1e-3)) as u64)
                );
                for e in &record.errors {
                    println!("error: {e}");
                }
            }
            if !record.errors.is_empty() {
                anyhow::bail!("the pass finished with {} errors", record.errors.len());
            }
            Ok(())
        }
    }
}
