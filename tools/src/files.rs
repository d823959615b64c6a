//! File commands: put, get, ls, stat, mkdir, mv, rm, versions, restore.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tessera_proto::api as pb;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::remote::{connect, explain};
use crate::OnConflict;

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Size of a local file to upload; a clear error for a missing file or a directory.
pub(crate) fn local_file_len(local: &Path) -> anyhow::Result<u64> {
    let meta = std::fs::metadata(local).with_context(|| format!("cannot read {}", local.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory; give a file", local.display());
    }
    Ok(meta.len())
}

pub(crate) fn print(json: bool, value: serde_json::Value, text: String) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub async fn put(
    json: bool,
    local: &Path,
    remote: &str,
    base_version: Option<u64>,
    device: &str,
    on_conflict: OnConflict,
) -> anyhow::Result<()> {
    let len = local_file_len(local)?;
    let file = tokio::fs::File::open(local).await.with_context(|| format!("cannot open {}", local.display()))?;
    let client = connect().await?;
    let bar = progress(len, "upload");
    let bar2 = bar.clone();
    // A local read error must abort the upload, not end it early (which
    // would commit a truncated version): the stream stalls, and the call is
    // dropped (cancelled) below when the error arrives.
    let (err_tx, err_rx) = tokio::sync::oneshot::channel::<std::io::Error>();
    let err_tx = std::sync::Mutex::new(Some(err_tx));
    let body = ReaderStream::with_capacity(file, 1 << 20).then(move |r| {
        let sent = match r {
            Ok(b) => {
                bar2.inc(b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                if let Some(tx) = err_tx.lock().ok().and_then(|mut g| g.take()) {
                    let _ = tx.send(e);
                }
                Err(())
            }
        };
        async move {
            match sent {
                Ok(b) => b,
                Err(()) => std::future::pending().await,
            }
        }
    });
    let header = pb::PutHeader {
        path: remote.to_owned(),
        base_version,
        device_id: device.to_owned(),
        on_conflict: wire_policy(on_conflict),
    };
    let r = tokio::select! {
        r = client.put(header, body) => r.map_err(explain)?,
        Ok(e) = err_rx => bail!("reading {} failed, upload cancelled: {e}", local.display()),
    };
    bar.finish_and_clear();
    if r.size != len {
        bail!("{} changed while it was uploaded ({} bytes sent, {} expected)", local.display(), r.size, len);
    }
    print(
        json,
        json!({
            "path": r.path, "version": r.version, "size": r.size, "sha256": r.content_sha256,
            "chunks_total": r.chunks_total, "chunks_uploaded": r.chunks_uploaded,
            "chunks_deduped": r.chunks_deduped, "bytes_transferred": r.bytes_transferred,
            "conflict": r.conflict, "conflict_path": r.conflict_path,
        }),
        format!(
            "{} version {} ({} bytes, {} of {} chunks sent, {} bytes transferred){}",
            r.path,
            r.version,
            r.size,
            r.chunks_uploaded,
            r.chunks_total,
            r.bytes_transferred,
            if r.conflict { format!("; conflict, kept as {}", r.conflict_path) } else { String::new() }
        ),
    );
    Ok(())
}

pub(crate) fn wire_policy(p: OnConflict) -> i32 {
    (match p {
        OnConflict::Copy => pb::ConflictPolicy::Copy,
        OnConflict::Lww => pb::ConflictPolicy::LastWriterWins,
        OnConflict::Reject => pb::ConflictPolicy::Reject,
    }) as i32
}

pub async fn get(json: bool, remote: &str, local: &Path, version: Option<u64>) -> anyhow::Result<()> {
    if local.is_dir() {
        bail!("{} is a directory; give a file path", local.display());
    }
    let client = connect().await?;
    let (entry, data) = client
        .get(pb::GetRequest { path: remote.to_owned(), version, range_start: None, range_end: None })
        .await
        .map_err(explain)?;
    // Write beside the target and rename at the end: an interrupted download
    // never leaves a half-written file under the final name.
    let dir = local.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tessera-part", local.file_name().and_then(|n| n.to_str()).unwrap_or("download")));
    let mut out = tokio::fs::File::create(&tmp).await.with_context(|| format!("cannot write {}", tmp.display()))?;
    let bar = progress(entry.size, "download");
    let mut written = 0u64;
    let mut data = Box::pin(data);
    let result = async {
        while let Some(piece) = data.next().await {
            let piece = piece.map_err(explain)?;
            out.write_all(&piece).await?;
            written += piece.len() as u64;
            bar.inc(piece.len() as u64);
        }
        out.sync_all().await?;
        if written != entry.size {
            bail!("download ended after {written} of {} bytes", entry.size);
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, local).await.with_context(|| format!("cannot write {}", local.display()))?;
    print(
        json,
        json!({"path": entry.path, "version": entry.version, "size": entry.size, "sha256": entry.content_sha256}),
        format!("{} version {} → {} ({} bytes)", entry.path, entry.version, local.display(), entry.size),
    );
    Ok(())
}

fn entry_json(e: &pb::Entry) -> serde_json::Value {
    json!({
        "path": e.path, "folder": e.is_folder, "id": e.id, "version": e.version,
        "size": e.size, "sha256": e.content_sha256, "modified_at_ms": e.modified_at_ms,
    })
}

fn entry_line(e: &pb::Entry) -> String {
    if e.is_folder {
        format!("{:>12}  {}/", "-", e.path)
    } else {
        format!("{:>12}  {}  (v{})", e.size, e.path, e.version)
    }
}

pub async fn ls(json: bool, path: &str) -> anyhow::Result<()> {
    let client = connect().await?;
    let mut start_after = String::new();
    let mut all = Vec::new();
    loop {
        let page = client
            .raw()
            .list(pb::ListRequest { path: path.to_owned(), start_after: start_after.clone(), limit: 1000 })
            .await
            .map_err(explain)?
            .into_inner();
        all.extend(page.entries);
        if page.next_start_after.is_empty() {
            break;
        }
        start_after = page.next_start_after;
    }
    if json {
        println!("{}", serde_json::Value::Array(all.iter().map(entry_json).collect()));
    } else {
        for e in &all {
            println!("{}", entry_line(e));
        }
    }
    Ok(())
}

pub async fn stat(json: bool, path: &str) -> anyhow::Result<()> {
    let e = connect().await?.raw().stat(pb::StatRequest { path: path.to_owned() }).await.map_err(explain)?.into_inner();
    print(json, entry_json(&e), entry_line(&e));
    Ok(())
}

pub async fn mkdir(json: bool, path: &str) -> anyhow::Result<()> {
    let e = connect()
        .await?
        .raw()
        .mkdir(pb::MkdirRequest { path: path.to_owned(), device_id: "cli".into() })
        .await
        .map_err(explain)?
        .into_inner();
    print(json, entry_json(&e), format!("created {}", e.path));
    Ok(())
}

pub async fn mv(json: bool, from: &str, to: &str) -> anyhow::Result<()> {
    connect()
        .await?
        .raw()
        .r#move(pb::MoveRequest { from: from.to_owned(), to: to.to_owned(), device_id: "cli".into() })
        .await
        .map_err(explain)?;
    print(json, json!({"from": from, "to": to}), format!("moved {from} → {to}"));
    Ok(())
}

pub async fn rm(json: bool, path: &str, purge: bool) -> anyhow::Result<()> {
    connect()
        .await?
        .raw()
        .delete(pb::DeleteRequest { path: path.to_owned(), device_id: "cli".into(), purge })
        .await
        .map_err(explain)?;
    let text = if purge {
        format!("deleted {path} with every version")
    } else {
        format!("deleted {path} (restorable from its versions)")
    };
    print(json, json!({"deleted": path, "purged": purge}), text);
    Ok(())
}

pub async fn versions(json: bool, path: &str, detached_id: Option<u64>) -> anyhow::Result<()> {
    let r = connect()
        .await?
        .raw()
        .versions(pb::VersionsRequest { path: path.to_owned(), detached_id })
        .await
        .map_err(explain)?
        .into_inner();
    if json {
        let list: Vec<_> = r
            .versions
            .iter()
            .map(|v| json!({"version": v.version, "size": v.size, "sha256": v.content_sha256, "device": v.device_id, "created_by": v.created_by, "created_at_ms": v.created_at_ms}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        for v in &r.versions {
            println!(
                "v{:<5} {:>12} bytes  {}  by {} from {}",
                v.version,
                v.size,
                &v.content_sha256[..12.min(v.content_sha256.len())],
                v.created_by,
                v.device_id
            );
        }
    }
    Ok(())
}

/// `tessera detached`: every detached file, one per line (a JSON array with --json).
pub async fn detached(json: bool) -> anyhow::Result<()> {
    let mut raw = connect().await?.raw();
    let mut all = Vec::new();
    let mut start_after_id = 0;
    loop {
        let page = raw
            .list_detached(pb::ListDetachedRequest { start_after_id, limit: 1000 })
            .await
            .map_err(explain)?
            .into_inner();
        all.extend(page.files);
        if page.next_start_after_id == 0 {
            break;
        }
        start_after_id = page.next_start_after_id;
    }
    if json {
        println!("{}", serde_json::Value::Array(all.iter().map(entry_json).collect()));
    } else {
        for e in &all {
            println!("{:>8}  {:>12}  {}  (v{}; tessera reattach {} PATH)", e.id, e.size, e.path, e.version, e.id);
        }
    }
    Ok(())
}

pub async fn reattach(json: bool, id: u64, path: &str) -> anyhow::Result<()> {
    let e = connect()
        .await?
        .raw()
        .reattach(pb::ReattachRequest { id, path: path.to_owned(), device_id: "cli".into() })
        .await
        .map_err(explain)?
        .into_inner();
    print(json, entry_json(&e), format!("detached file {id} is back at {}", e.path));
    Ok(())
}

pub async fn restore(json: bool, path: &str, version: u64) -> anyhow::Result<()> {
    let r = connect()
        .await?
        .raw()
        .restore(pb::RestoreRequest { path: path.to_owned(), version, device_id: "cli".into() })
        .await
        .map_err(explain)?
        .into_inner();
    print(
        json,
        json!({"path": r.path, "version": r.version, "size": r.size, "sha256": r.content_sha256}),
        format!("{} restored from version {version} as version {}", r.path, r.version),
    );
    Ok(())
}

fn print_changes(json: bool, r: &pb::ChangesResponse, footer: bool) {
    if json {
        let events: Vec<_> = r
            .events
            .iter()
            .map(|e| {
                json!({"cursor": e.cursor, "kind": e.kind, "path": e.path, "new_path": e.new_path,
                       "version": e.version, "device": e.device_id, "at_ms": e.at_ms, "peer": e.peer})
            })
            .collect();
        println!(
            "{}",
            json!({"events": events, "next_cursor": r.next_cursor, "has_more": r.has_more, "head_cursor": r.head_cursor})
        );
    } else {
        for e in &r.events {
            let to = if e.new_path.is_empty() { String::new() } else { format!(" -> {}", e.new_path) };
            println!("{:>8} {:<8} {}{to} (device {})", e.cursor, e.kind, e.path, e.device_id);
        }
        if footer {
            println!("next cursor {}{}", r.next_cursor, if r.has_more { " (more)" } else { "" });
        }
    }
}

/// `tessera changes`: one page of the caller's change feed, or with `follow`
/// every change as it commits (one JSON object per page with `--json`).
pub async fn changes(
    json: bool,
    after: u64,
    limit: u32,
    wait_secs: u32,
    device: &str,
    follow: bool,
) -> anyhow::Result<()> {
    let req = pb::ChangesRequest {
        after_cursor: after,
        limit,
        wait_ms: wait_secs.saturating_mul(1000),
        device_id: device.to_owned(),
        head_only: false,
    };
    let mut raw = connect().await?.raw();
    if !follow {
        let r = raw.changes(req).await.map_err(explain)?.into_inner();
        print_changes(json, &r, true);
        return Ok(());
    }
    let mut feed = raw.watch_changes(req).await.map_err(explain)?.into_inner();
    while let Some(page) = feed.message().await.map_err(explain)? {
        print_changes(json, &page, false);
        use std::io::Write;
        std::io::stdout().flush()?;
    }
    Ok(())
}
