//! `tessera bench`: load generators for the native API ([`native`]) and for any S3
//! endpoint ([`s3`]), so Tessera can be measured side by side with other S3 stores.
//! Runs are bounded by a count or a duration, target only the endpoint given, and
//! report ops/s, MiB/s, latency percentiles, errors and the client's own CPU time (so
//! a reader can tell when the client is the bottleneck).

pub mod native;
pub mod s3;
mod sigv4;
pub mod sync_latency;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use serde_json::json;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Workload {
    /// New content on every operation.
    Put,
    /// Reads of objects written first.
    Get,
    /// The same content uploaded again and again (dedup hits).
    Dedup,
    /// 70% gets of objects written first, 30% puts of new content.
    Mixed,
    /// Multipart uploads (S3), resumable upload sessions (native), in parts of
    /// `--part-size`.
    Multipart,
    /// Listings of one page of up to 1000 keys from a prefix of 1000 small objects.
    List,
    /// Native only: modify 1% of a file and upload it again through a session
    /// (only the changed chunks travel).
    DeltaSync,
}

impl Workload {
    /// Whether operation `seq` of a mixed run is a put (3 in 10).
    pub fn mixed_is_put(seq: u64) -> bool {
        seq % 10 < 3
    }
}

/// What every load generator takes.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
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
    /// Part size of the multipart workload (S3 needs at least 5 MiB but for the last).
    #[arg(long, default_value = "8MiB")]
    part_size: String,
    /// Writes go to this many names in turn, so puts past the first N make new
    /// versions of existing files (default: a new name for every put).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    files: Option<u64>,
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

/// Deterministic pseudo-random content: distinct per seed, so puts are not deduplicated.
pub fn content(size: u64, seed: u64) -> Bytes {
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

/// `data` with 1% of its bytes (one contiguous run at a position drawn from
/// `seed`) replaced by new content: the edit of a delta-sync operation.
pub fn edit_one_percent(data: &mut [u8], seed: u64) {
    let len = (data.len() / 100).max(1).min(data.len());
    let at = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % (data.len() - len + 1) as u64) as usize;
    data[at..at + len].copy_from_slice(&content(len as u64, seed ^ 0xD17A));
}

/// One operation of a run: which workload, its sequence number, its worker, and
/// the name a write goes to (the sequence number, or it modulo `--files`).
#[derive(Clone, Copy, Debug)]
pub struct Op {
    pub workload: Workload,
    pub seq: u64,
    pub worker: usize,
    pub name: u64,
}

/// A parsed run: the object size and the bounds.
pub struct Load {
    pub workload: Workload,
    pub size: u64,
    pub part_size: u64,
    pub concurrency: usize,
    limit: u64,
    duration: Option<Duration>,
    /// Bytes the operations actually sent, when a workload tracks it (delta sync).
    pub sent: Arc<AtomicU64>,
    files: Option<u64>,
}

impl Load {
    pub fn new(args: &LoadArgs) -> anyhow::Result<Self> {
        let limit = args.count.unwrap_or(if args.duration.is_some() { u64::MAX } else { 200 });
        Ok(Self {
            workload: args.workload,
            size: parse_size(&args.size)?,
            part_size: parse_size(&args.part_size)?.max(1),
            concurrency: args.concurrency.max(1),
            limit,
            duration: args.duration.map(Duration::from_secs),
            sent: Arc::new(AtomicU64::new(0)),
            files: args.files,
        })
    }

    /// Runs `op` from `concurrency` workers until the count or the duration is used up,
    /// then prints the report.
    pub async fn run<F, Fut>(&self, json: bool, api: &str, op: F) -> anyhow::Result<()>
    where
        F: Fn(Op) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let next = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let cpu0 = cpu_seconds();
        let started = Instant::now();
        // The clock starts here, after any objects a workload needs were written.
        let deadline = self.duration.map(|d| started + d);
        let workers = (0..self.concurrency).map(|worker| {
            let (next, errors, first_error, op) = (next.clone(), errors.clone(), first_error.clone(), op.clone());
            let (limit, workload, files) = (self.limit, self.workload, self.files);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                        return latencies;
                    }
                    let t = Instant::now();
                    let name = files.map_or(seq, |n| seq % n);
                    match op(Op { workload, seq, worker, name }).await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("{e:#}"));
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
        // A listing moves no object data; its size argument means nothing.
        let size = if self.workload == Workload::List { 0 } else { self.size };
        let mib = ops * size as f64 / (1 << 20) as f64;
        let errors = errors.load(Ordering::Relaxed);
        let first_error = first_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let report = json!({
            "api": api,
            "workload": self.workload.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default(), "size_bytes": size,
            "concurrency": self.concurrency, "ops": latencies.len(), "errors": errors, "seconds": elapsed,
            "ops_per_sec": ops / elapsed, "mib_per_sec": mib / elapsed,
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
                           "max": latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)},
            "client_cpu_seconds": cpu,
            "bytes_sent": self.sent.load(Ordering::Relaxed),
            "first_error": first_error,
        });
        if json {
            println!("{report}");
        } else {
            println!(
                "{api} {:?} {} B ×{}: {:.1} ops/s, {:.1} MiB/s, p50 {:.1} ms, p99 {:.1} ms, {errors} errors, client CPU {:.2} s",
                self.workload,
                size,
                self.concurrency,
                ops / elapsed,
                mib / elapsed,
                pct(0.5),
                pct(0.99),
                cpu
            );
            let sent = self.sent.load(Ordering::Relaxed);
            if sent > 0 {
                println!(
                    "bytes sent: {sent} ({:.2}% of the bytes uploaded)",
                    100.0 * sent as f64 / (ops * self.size as f64).max(1.0)
                );
            }
            if let Some(e) = first_error {
                println!("first error: {e}");
            }
        }
        Ok(())
    }
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

    #[test]
    fn a_delta_edit_changes_one_percent_in_one_place() {
        let before = content(1 << 20, 1).to_vec();
        let mut after = before.clone();
        edit_one_percent(&mut after, 99);
        let changed: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
        let (first, last) = (changed[0], *changed.last().unwrap());
        assert!(last - first < (1 << 20) / 100, "one contiguous run");
        assert!(changed.len() > (1 << 20) / 100 - 100, "about 1% of the bytes: {}", changed.len());
    }

    #[test]
    fn mixed_runs_are_three_puts_in_ten() {
        assert_eq!((0..1000).filter(|&s| Workload::mixed_is_put(s)).count(), 300);
    }
}
