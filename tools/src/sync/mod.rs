//! `tessera sync DIR --device NAME`: keeps a local folder and a remote folder
//! identical, in both directions.
//!
//! * `state` — what was last synced, per path (redb in `DIR/.tessera-sync/`).
//! * `local` / `remote` — the two sides.
//! * `plan` — what to do with one path; `pass` / `apply` — one pass over all
//!   changed paths.
//!
//! With `--once` it runs one pass and exits (non-zero if the cluster could not
//! be reached or a path could not be synced). Otherwise it runs a pass at start,
//! whenever the folder changes (file-system events), whenever the change feed
//! reports a remote change (a long-poll kept open on the router), and every
//! `--scan-interval` seconds in case an event was missed; a status line says
//! what it is doing. While the cluster is unreachable, local edits wait on disk
//! and are uploaded when it is back.

mod apply;
pub mod local;
mod pass;
mod plan;
pub mod remote;
pub mod state;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use tokio::sync::{mpsc, watch};

pub use pass::{run as run_pass, PassError, PassReport, SyncedFolder};

#[derive(Args, Clone)]
pub struct SyncArgs {
    /// The local folder to keep in sync (created if missing).
    pub dir: PathBuf,
    /// This device's name: its own changes are not downloaded again, and its
    /// conflict copies carry the name.
    #[arg(long)]
    pub device: String,
    /// The remote folder to sync with (with the global --owner, one shared with you).
    #[arg(long, default_value = "/")]
    pub remote: String,
    /// One pass, then exit (non-zero if anything could not be synced).
    #[arg(long)]
    pub once: bool,
    /// Full local scans this often in the long-running mode, besides file-system events.
    #[arg(long, default_value_t = 30)]
    pub scan_interval: u64,
}

/// Opens `dir` for syncing with the cluster at TESSERA_ENDPOINT.
pub async fn open(args: &SyncArgs, owner: Option<&str>) -> anyhow::Result<SyncedFolder> {
    if args.device.is_empty() || args.device.contains('/') {
        bail!("--device must be a non-empty name without '/'");
    }
    let remote_root = normalize_remote(&args.remote)?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
    let root = args.dir.canonicalize().with_context(|| format!("cannot open {}", args.dir.display()))?;
    let binding = state::Binding { remote_root: remote_root.clone(), owner: owner.unwrap_or_default().to_owned() };
    let db = state::StateDb::open(&root.join(local::STATE_DIR), &binding)?;
    let client = crate::remote::connect().await?;
    Ok(SyncedFolder { root, remote: remote::Remote { client, root: remote_root, device: args.device.clone() }, db })
}

fn normalize_remote(path: &str) -> anyhow::Result<String> {
    let trimmed = path.trim_end_matches('/');
    if !path.starts_with('/') {
        bail!("--remote must be an absolute remote path such as /Photos");
    }
    Ok(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
}

pub fn summary(r: &PassReport) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (r.uploaded, "uploaded"),
        (r.downloaded, "downloaded"),
        (r.deleted_remote, "deleted remotely"),
        (r.deleted_local, "deleted locally"),
        (r.moved_remote, "moved remotely"),
        (r.moved_local, "moved locally"),
        (r.folders_created, "folders created"),
        (r.conflicts, "conflicts kept as copies"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if r.chunks_total > 0 {
        parts.push(format!("{} of {} chunks sent", r.chunks_sent, r.chunks_total));
    }
    if !r.failed.is_empty() {
        parts.push(format!("{} not synced yet", r.failed.len()));
    }
    if parts.is_empty() {
        "up to date".to_owned()
    } else {
        parts.join(", ")
    }
}

/// `tessera sync --once`.
pub async fn once(json: bool, folder: &SyncedFolder) -> anyhow::Result<()> {
    let report = match pass::run(folder).await {
        Ok(r) => r,
        Err(PassError::Unreachable(e)) => bail!("cluster unavailable: {e}; local changes are kept and sent next time"),
        Err(PassError::Local(e)) => return Err(e),
    };
    if json {
        println!("{}", serde_json::to_value(&report)?);
    } else {
        println!("{}", summary(&report));
        for f in &report.failed {
            eprintln!("not synced: {f}");
        }
    }
    if !report.failed.is_empty() {
        bail!("{} path(s) could not be synced; they are retried on the next pass", report.failed.len());
    }
    Ok(())
}

/// Why the long-running loop wakes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Local,
    Remote,
}

/// Forwards file-system events under `root` (except the client's own files).
fn watch_local(root: &Path, tx: mpsc::Sender<Wake>) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            let _ = tx.try_send(Wake::Local); // overflowed: rescan
            return;
        };
        let ours =
            event.paths.iter().all(|p| p.components().any(|c| c.as_os_str().to_str().is_some_and(local::ignored)));
        if !ours && !matches!(event.kind, notify::EventKind::Access(_)) {
            let _ = tx.try_send(Wake::Local);
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Keeps a long-poll open on the change feed and wakes the loop when another
/// device's change commits after `cursor`.
async fn watch_remote(remote: remote::Remote, cursor: Arc<AtomicU64>, tx: mpsc::Sender<Wake>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let after = cursor.load(Ordering::Acquire);
        let news = match remote.changes(after, 1, 30_000).await {
            Ok(page) if page.events.is_empty() => {
                backoff = Duration::from_millis(200);
                // Only this device's own events (or nothing) committed: wait on.
                cursor.fetch_max(page.next_cursor, Ordering::AcqRel);
                continue;
            }
            Ok(_) => Ok(()),
            // The events after the cursor were trimmed: the pass resyncs in full
            // and moves the cursor to the head.
            Err(s) if remote::cursor_too_old(&s) => Ok(()),
            Err(s) => Err(s),
        };
        match news {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                if tx.send(Wake::Remote).await.is_err() {
                    return;
                }
                // The pass moves the cursor past the change; wait for it rather than
                // waking the loop again for the same change.
                let since = Instant::now();
                while cursor.load(Ordering::Acquire) == after && since.elapsed() < Duration::from_secs(2) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// What the long-running loop reports after each pass.
pub enum Status<'a> {
    Synced(&'a PassReport),
    Offline(&'a str),
    Failed(&'a str),
}

/// The long-running mode: passes until `stop` turns true.
pub async fn run_loop(
    folder: SyncedFolder,
    scan_interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut on_pass: impl FnMut(Status<'_>),
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(64);
    let _watcher = watch_local(&folder.root, tx.clone())?;
    let cursor = Arc::new(AtomicU64::new(folder.db.cursor()?.unwrap_or(0)));
    let remote_copy = remote::Remote {
        client: folder.remote.client.clone(),
        root: folder.remote.root.clone(),
        device: folder.remote.device.clone(),
    };
    let poller = tokio::spawn(watch_remote(remote_copy, cursor.clone(), tx));
    let mut retry = Duration::from_millis(500);
    let mut next_wait;
    loop {
        match pass::run(&folder).await {
            Ok(report) => {
                cursor.fetch_max(report.cursor, Ordering::AcqRel);
                on_pass(Status::Synced(&report));
                retry = Duration::from_millis(500);
                next_wait = if report.failed.is_empty() { scan_interval } else { retry.max(Duration::from_secs(5)) };
            }
            Err(PassError::Unreachable(e)) => {
                on_pass(Status::Offline(&e));
                next_wait = retry;
                retry = (retry * 2).min(Duration::from_secs(15));
            }
            Err(PassError::Local(e)) => {
                on_pass(Status::Failed(&format!("{e:#}")));
                next_wait = Duration::from_secs(5);
            }
        }
        tokio::select! {
            wake = rx.recv() => {
                if wake == Some(Wake::Local) {
                    // Let a burst of writes finish before reading the files.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(next_wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    poller.abort();
    Ok(())
}

/// `tessera sync` without `--once`: runs until interrupted, with a status line.
pub async fn run(json: bool, args: &SyncArgs, folder: SyncedFolder) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    let tty = std::io::stderr().is_terminal();
    let bar = if tty { indicatif::ProgressBar::new_spinner() } else { indicatif::ProgressBar::hidden() };
    bar.enable_steady_tick(Duration::from_millis(200));
    let dir = args.dir.display().to_string();
    let mut total = PassReport::default();
    run_loop(folder, Duration::from_secs(args.scan_interval.max(1)), stop_rx, |status| {
        let clock = time::OffsetDateTime::now_utc();
        let at = format!("{:02}:{:02}:{:02}", clock.hour(), clock.minute(), clock.second());
        let line = match status {
            Status::Synced(r) => {
                total.uploaded += r.uploaded;
                total.downloaded += r.downloaded;
                total.conflicts += r.conflicts;
                if json && r.changed_anything() {
                    println!("{}", serde_json::to_value(r).unwrap_or_default());
                }
                let state = if r.failed.is_empty() { "synced" } else { "partly synced" };
                format!(
                    "{state} {dir} at {at}: {} (in total {} up, {} down, {} conflicts)",
                    summary(r),
                    total.uploaded,
                    total.downloaded,
                    total.conflicts
                )
            }
            Status::Offline(e) => {
                format!("offline at {at} ({e}); local changes wait and are sent when the cluster is back")
            }
            Status::Failed(e) => format!("sync pass failed at {at}: {e}"),
        };
        if tty {
            bar.set_message(line);
        } else if !json {
            eprintln!("{line}");
        }
    })
    .await?;
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_roots_are_normalized() {
        assert_eq!(normalize_remote("/").unwrap(), "/");
        assert_eq!(normalize_remote("/Team/").unwrap(), "/Team");
        assert!(normalize_remote("Team").is_err());
    }
}
