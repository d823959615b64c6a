//! `tessera admin gc run|status`: a garbage-collection pass from the operator's
//! shell (progress on stderr, the record kept in the cluster group), and the
//! state of the latest pass, whoever ran it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::GcRecord;
use tessera_router::cluster_view::ClusterView;
use tessera_router::datapath::{DataPath, DataPathConfig};
use tessera_router::gc::{self, GcOptions};

#[derive(Subcommand, Debug)]
pub enum GcCommand {
    /// Run one pass now: expire old upload sessions, mark every referenced chunk,
    /// delete fragments of unreferenced chunks untouched for the grace period.
    Run(GcRunArgs),
    /// The latest pass: phase, progress, fragments and bytes freed.
    Status,
}

#[derive(Args, Debug)]
pub struct GcRunArgs {
    /// How long a chunk must have gone untouched before it is deleted (e.g. 1h, 30m).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Upper bound on fragment deletes per second (0 = as fast as the nodes go).
    #[arg(long, default_value_t = 0)]
    pub max_deletes_per_sec: u64,
    /// Start a fresh sweep even if the previous pass was interrupted.
    #[arg(long)]
    pub no_resume: bool,
    /// Purge files and folders deleted longer ago than this (e.g. 30d), or `never`.
    #[arg(long, default_value = "30d", value_parser = parse_retention)]
    pub trash_retention: Retention,
    /// Trim change-feed events older than this (e.g. 90d), or `never`; a sync
    /// client whose cursor is older resyncs in full.
    #[arg(long, default_value = "90d", value_parser = parse_retention)]
    pub change_log_retention: Retention,
    /// Fragments per listing page and conditional delete, and chunk references
    /// per page of the mark (the sweep's position is recorded after each page).
    #[arg(long, default_value_t = 1000)]
    pub page: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Retention(Option<Duration>);

fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "never" {
        return Ok(Retention(None));
    }
    humantime::parse_duration(s).map(|d| Retention(Some(d))).map_err(|e| e.to_string())
}

fn summary(r: &GcRecord) -> String {
    format!(
        "{} · shards marked {}/{} ({} chunks referenced) · nodes swept {}/{} · fragments examined {}, unreferenced {}, \
         deleted {}, kept (touched recently) {} · {} freed",
        r.phase,
        r.shards_marked,
        r.shards_total,
        r.chunks_referenced,
        r.nodes_swept,
        r.nodes_total,
        r.fragments_examined,
        r.fragments_unreferenced,
        r.fragments_deleted,
        r.fragments_kept_recent,
        indicatif::HumanBytes(r.bytes_freed),
    )
}

pub async fn run(meta: MetaClient, command: GcCommand, json: bool) -> anyhow::Result<()> {
    // GC asks block nodes exactly, so it needs no Bloom mirrors.
    let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
    let dp = DataPath::new(view, DataPathConfig::default())?;
    match command {
        GcCommand::Status => {
            let record = gc::status(&dp).await?;
            match (record, json) {
                (None, true) => println!("null"),
                (None, false) => println!("no garbage-collection pass has run yet"),
                (Some(r), true) => println!("{}", serde_json::to_string(&r)?),
                (Some(r), false) => {
                    let state = match r.finished_at_ms {
                        Some(end) => format!("finished in {:.1} s", (end - r.started_at_ms) as f64 / 1000.0),
                        None => format!(
                            "running or interrupted (last progress {} ms ago)",
                            tessera_router::datapath::now_ms() - r.updated_at_ms
                        ),
                    };
                    println!("last pass by {}: {state}", r.by);
                    println!("{}", summary(&r));
                    println!(
                        "sessions expired {}, deleted entries purged {}, change-log events trimmed {}, \
                         chunks dereferenced since the pass before {}",
                        r.sessions_expired, r.trash_entries_purged, r.change_events_trimmed, r.chunks_dereferenced
                    );
                    for e in &r.errors {
                        println!("error: {e}");
                    }
                }
            }
            Ok(())
        }
        GcCommand::Run(args) => {
            let options = GcOptions {
                grace: args.grace,
                max_deletes_per_sec: args.max_deletes_per_sec,
                resume: !args.no_resume,
                by: "tessera admin".into(),
                page: args.page,
                trash_retention: args.trash_retention.0,
                change_log_retention: args.change_log_retention.0,
            };
            let terminal = std::io::stderr().is_terminal();
            let mut last_line = Instant::now();
            let record = gc::run(&dp, &options, |r| {
                if terminal || last_line.elapsed() >= Duration::from_secs(2) {
                    last_line = Instant::now();
                    eprintln!("{}", summary(r));
                }
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string(&record)?);
            } else {
                println!("gc done: {}", summary(&record));
                if !record.nodes_unreachable.is_empty() {
                    println!("not swept (unreachable): {}", record.nodes_unreachable.join(", "));
                }
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
