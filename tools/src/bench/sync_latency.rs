//! `tessera bench sync`: how long a small file saved on one device takes to
//! appear on another. Two long-running sync clients (the real ones, in this
//! process) follow two temp folders bound to a fresh remote folder; each sample
//! writes a file in the first folder and times until the second holds the same
//! bytes. Reports the delay distribution.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use tokio::sync::watch;

use crate::sync;

#[derive(Args, Debug)]
pub struct SyncLatencyArgs {
    /// How many files to time.
    #[arg(long, default_value_t = 30)]
    samples: u32,
    /// Size of each file: 4KiB, 1MiB, or a byte count.
    #[arg(long, default_value = "4KiB")]
    size: String,
    /// Give up on a sample after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

pub async fn run(json: bool, args: &SyncLatencyArgs) -> anyhow::Result<()> {
    if args.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let size = super::parse_size(&args.size)?;
    let tag = format!("{:016x}", rand::random::<u64>());
    let work: PathBuf = std::env::temp_dir().join(format!("tessera-bench-sync-{tag}"));
    let remote = format!("/bench-sync-{tag}");
    let mut folders = Vec::new();
    for device in ["a", "b"] {
        let args = sync::SyncArgs {
            dir: work.join(device),
            device: format!("bench-{device}-{tag}"),
            remote: remote.clone(),
            once: false,
            scan_interval: 3600,
        };
        let folder = sync::open(&args, None).await?;
        // A first pass binds both folders to the remote one before timing starts.
        sync::run_pass(&folder).await.map_err(anyhow::Error::from).context("first pass")?;
        folders.push(folder);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let (dir_a, dir_b) = (folders[0].root.clone(), folders[1].root.clone());
    let mut loops = Vec::new();
    for folder in folders {
        let stop = stop_rx.clone();
        loops.push(tokio::spawn(sync::run_loop(folder, Duration::from_secs(3600), stop, |_| {})));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // both loops watching
    let mut delays = Vec::new();
    for i in 0..args.samples {
        let data = super::content(size, u64::from(i) + 1);
        let name = format!("sample-{i}.bin");
        let started = Instant::now();
        tokio::fs::write(dir_a.join(&name), &data).await?;
        let target = dir_b.join(&name);
        loop {
            if tokio::fs::read(&target).await.is_ok_and(|got| got == data) {
                break;
            }
            if started.elapsed() > Duration::from_secs(args.timeout) {
                bail!("sample {i} did not arrive within {} s", args.timeout);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push(started.elapsed());
    }
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    // Leave nothing behind: the remote folder goes for good, the temp folders too.
    let client = crate::remote::connect().await?;
    let req = tessera_proto::api::DeleteRequest { path: remote.clone(), device_id: "bench".into(), purge: true };
    let _ = client.raw().delete(req).await;
    let _ = std::fs::remove_dir_all(&work);

    let mut sorted = delays.clone();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = sorted.iter().map(|d| ms(*d)).sum::<f64>() / sorted.len() as f64;
    let (p50, p90, p99, max) = (
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.9)),
        ms(percentile(&sorted, 0.99)),
        ms(sorted[sorted.len() - 1]),
    );
    if json {
        println!(
            "{}",
            json!({"samples": sorted.len(), "size": size, "mean_ms": mean, "p50_ms": p50, "p90_ms": p90,
                   "p99_ms": p99, "max_ms": max, "min_ms": ms(sorted[0])})
        );
    } else {
        println!(
            "sync latency, {} files of {size} bytes: mean {mean:.1} ms, p50 {p50:.1} ms, p90 {p90:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            sorted.len()
        );
    }
    Ok(())
}
