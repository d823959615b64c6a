//! `tessera bench native`: a load generator for the native API. Bounded by a
//! count or a duration, it targets only the endpoint it is given and reports
//! ops/s, MiB/s, latency percentiles, errors and its own CPU time (so a
//! reader can tell when the client is the bottleneck).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use serde_json::json;
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;

use crate::remote::connect;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Workload {
    /// New content on every operation.
    Put,
    /// Reads of objects written first.
    Get,
    /// The same content uploaded again and again (dedup hits).
    Dedup,
}

#[derive(Args, Debug)]
pub struct NativeArgs {
    #[arg(long, value_enum)]
    workload: Workload,
    /// Object size: 4KiB, 1MiB, 64MiB, 1GiB, or a byte count.
    #[arg(long, default_value = "1MiB")]
    size: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many seconds...
    #[arg(long)]
    duration: Option<u64>,
    /// ...or after this many operations (default 200).
    #[arg(long)]
    count: Option<u64>,
}

pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| anyhow::anyhow!("bad size {s:?}"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => bail!("bad size unit in {s:?} (use KiB, MiB or GiB)"),
    };
    Ok(n * mult)
}

fn cpu_seconds() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => f64::NAN,
    }
}

fn content(size: u64, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = vec![0u8; size as usize];
    for chunk in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    Bytes::from(v)
}

async fn put(client: &TesseraClient, path: String, data: Bytes) -> anyhow::Result<()> {
    let header = pb::PutHeader { path, base_version: None, device_id: "bench".into(), on_conflict: 0 };
    let pieces: Vec<Bytes> =
        (0..data.len()).step_by(1 << 20).map(|at| data.slice(at..(at + (1 << 20)).min(data.len()))).collect();
    client.put(header, futures::stream::iter(pieces)).await?;
    Ok(())
}

async fn get(client: &TesseraClient, path: String) -> anyhow::Result<u64> {
    let (_, data) = client.get(pb::GetRequest { path, version: None, range_start: None, range_end: None }).await?;
    let mut data = Box::pin(data);
    let mut n = 0u64;
    while let Some(piece) = data.next().await {
        n += piece?.len() as u64;
    }
    Ok(n)
}

pub async fn native(json: bool, args: NativeArgs) -> anyhow::Result<()> {
    let size = parse_size(&args.size)?;
    let client = connect().await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let limit = args.count.unwrap_or(if args.duration.is_some() { u64::MAX } else { 200 });
    let deadline = args.duration.map(|d| Instant::now() + Duration::from_secs(d));
    let concurrency = args.concurrency.max(1);
    if args.workload == Workload::Get {
        for i in 0..concurrency {
            put(&client, format!("/bench/{run}/seed-{i}"), content(size, i as u64)).await?;
        }
    }
    let shared = content(size, 42);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let (client, next, errors, run, shared) =
            (client.clone(), next.clone(), errors.clone(), run.clone(), shared.clone());
        let workload = args.workload;
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                    return latencies;
                }
                let t = Instant::now();
                let r = match workload {
                    Workload::Put => put(&client, format!("/bench/{run}/{i}"), content(size, i + 1000)).await,
                    Workload::Dedup => put(&client, format!("/bench/{run}/{i}"), shared.clone()).await,
                    Workload::Get => get(&client, format!("/bench/{run}/seed-{}", w)).await.map(|_| ()),
                };
                match r {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    });
    let mut latencies: Vec<Duration> = Vec::new();
    for w in futures::future::join_all(workers).await {
        latencies.extend(w?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let ops = latencies.len() as f64;
    let mib = ops * size as f64 / (1 << 20) as f64;
    let report = json!({
        "workload": format!("{:?}", args.workload).to_lowercase(), "size_bytes": size, "concurrency": concurrency,
        "ops": latencies.len(), "errors": errors.load(Ordering::Relaxed), "seconds": elapsed,
        "ops_per_sec": ops / elapsed, "mib_per_sec": mib / elapsed,
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)},
        "client_cpu_seconds": cpu,
    });
    if json {
        println!("{report}");
    } else {
        println!(
            "{:?} {} B ×{}: {:.1} ops/s, {:.1} MiB/s, p50 {:.1} ms, p99 {:.1} ms, {} errors, client CPU {:.2} s",
            args.workload,
            size,
            concurrency,
            ops / elapsed,
            mib / elapsed,
            pct(0.5),
            pct(0.99),
            errors.load(Ordering::Relaxed),
            cpu
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("MiB").is_err());
    }
}
