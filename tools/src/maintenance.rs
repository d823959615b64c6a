//! `tessera admin repair|rebalance`: runs the router's repair engine from the
//! operator's shell, with progress on stderr and a report at the end.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_meta::client::MetaClient;
use tessera_router::cluster_view::ClusterView;
use tessera_router::datapath::{DataPath, DataPathConfig};
use tessera_router::repair::{self, Mode, RepairOptions, RepairProgress};

#[derive(Args, Debug, Clone)]
pub struct RepairArgs {
    /// Erasure code of the cluster's chunks (as in the routers' `[datapath]`).
    #[arg(long, default_value_t = 4)]
    pub data_shards: usize,
    #[arg(long, default_value_t = 2)]
    pub parity_shards: usize,
    /// Chunks worked on at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
}

fn summary(p: &RepairProgress) -> String {
    format!(
        "shards {}/{} · chunks {} ({} healthy, {} repaired) · fragments rebuilt {}, copied {}, removed {} · {} written{}",
        p.shards_done,
        p.shards_total,
        p.chunks_examined,
        p.chunks_healthy,
        p.chunks_repaired,
        p.fragments_rebuilt,
        p.fragments_copied,
        p.fragments_removed,
        indicatif::HumanBytes(p.bytes_written),
        if p.chunks_waiting_for_node + p.chunks_lost > 0 {
            format!(" · {} waiting for a node, {} lost", p.chunks_waiting_for_node, p.chunks_lost)
        } else {
            String::new()
        }
    )
}

pub async fn run(meta: MetaClient, mode: Mode, scrub: bool, args: RepairArgs, json: bool) -> anyhow::Result<()> {
    // Repair asks every node exactly (BatchHas), so it needs no Bloom mirrors.
    let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
    let config =
        DataPathConfig { data_shards: args.data_shards, parity_shards: args.parity_shards, ..Default::default() };
    let dp = DataPath::new(view, config)?;
    let options = RepairOptions { mode, scrub, parallel: args.parallel, ..Default::default() };
    // On a terminal a live line; in logs and scripts a line every two seconds.
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").unwrap_or(ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        if scrub {
            bar.set_message("scrubbing every block node…");
        }
        bar
    });
    if bar.is_none() && scrub {
        eprintln!("scrubbing every block node…");
    }
    let started = Instant::now();
    let mut last_line = Instant::now();
    let report = repair::run(&dp, &options, |p| match &bar {
        Some(bar) => bar.set_message(summary(p)),
        None if last_line.elapsed() >= Duration::from_secs(2) => {
            last_line = Instant::now();
            eprintln!("{}", summary(p));
        }
        None => {}
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Err(e) = repair::record(&dp, &report, "tessera admin", started.elapsed()).await {
        eprintln!("warning: the outcome was not recorded in the cluster group: {e}");
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let what = if mode == Mode::Rebalance { "rebalance" } else { "repair" };
        println!("{what} done: {}", summary(&report));
        if scrub {
            println!("scrub: {} fragments verified, {} corrupt", report.fragments_scrubbed, report.corrupt_fragments);
        }
        if !report.nodes_unreachable.is_empty() {
            println!("unreachable block nodes: {}", report.nodes_unreachable.join(", "));
        }
        for e in &report.errors {
            println!("error: {e}");
        }
    }
    if !report.complete() {
        anyhow::bail!(
            "not every chunk is fully redundant: {} wait for an unreachable node, {} lost, {} errors",
            report.chunks_waiting_for_node,
            report.chunks_lost,
            report.errors.len()
        );
    }
    Ok(())
}
