//! `tessera put --resumable`: chunk and hash the file locally (the router's
//! FastCDC parameters), open an upload session named after the path, the
//! content and the device, send only the chunks the session reports missing,
//! and commit. Interrupted anywhere, the same command resumes: the session
//! lives in the cluster, and chunks already sent are not sent again.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use indicatif::ProgressBar;
use serde_json::json;
use sha2::{Digest, Sha256};
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;
use tessera_router::codec::chunker::chunk_reader;
use tessera_router::codec::hash::ContentHasher;
use tessera_router::codec::ChunkerParams;

use crate::files::{local_file_len, print, progress, wire_policy};
use crate::remote::{connect, explain};
use crate::OnConflict;

/// Test failpoint: exit (as if killed) after sending this many chunks.
const FAILPOINT_EXIT_AFTER_CHUNKS: &str = "TESSERA_FAILPOINT_EXIT_AFTER_CHUNKS";

/// One content-defined chunk of a local file.
pub(crate) struct LocalChunk {
    pub offset: u64,
    pub size: u64,
    pub hash: [u8; 32],
}

/// A local file cut into chunks with the router's FastCDC parameters.
pub(crate) struct ScannedFile {
    pub chunks: Vec<LocalChunk>,
    pub sha256: [u8; 32],
    pub size: u64,
}

pub(crate) fn scan(path: &Path) -> anyhow::Result<ScannedFile> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut chunks = Vec::new();
    let mut whole = ContentHasher::default();
    let mut size = 0;
    chunk_reader(file, ChunkerParams::default(), |c| {
        whole.update(&c.data);
        size += c.data.len() as u64;
        chunks.push(LocalChunk { offset: c.offset, size: c.data.len() as u64, hash: c.hash.0 });
        Ok(())
    })
    .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(ScannedFile { chunks, sha256: whole.finish(), size })
}

fn read_at(path: &Path, offset: u64, size: u64) -> anyhow::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; size as usize];
    f.read_exact(&mut buf).with_context(|| format!("{} changed during the upload", path.display()))?;
    Ok(buf)
}

/// The `PutChunk` stream of one chunk of a session: its header, then the data
/// in 1 MiB messages.
pub fn put_chunk_messages(session_id: &Bytes, hash: &[u8; 32], data: Bytes) -> Vec<pb::PutChunkRequest> {
    let header = pb::PutChunkRequest {
        part: Some(pb::put_chunk_request::Part::Header(pb::PutChunkHeader {
            session_id: session_id.clone(),
            hash: Bytes::copy_from_slice(hash),
        })),
    };
    std::iter::once(header)
        .chain((0..data.len()).step_by(1 << 20).map(|at| pb::PutChunkRequest {
            part: Some(pb::put_chunk_request::Part::Data(data.slice(at..(at + (1 << 20)).min(data.len())))),
        }))
        .collect()
}

/// The session of one upload: named after the path, the content and the device,
/// so running the same upload again reopens it.
fn session_id(remote: &str, sha256: &[u8; 32], device: &str) -> Bytes {
    let mut id_hash = Sha256::new();
    id_hash.update(b"tessera-upload\0");
    id_hash.update(remote.as_bytes());
    id_hash.update([0]);
    id_hash.update(sha256);
    id_hash.update(device.as_bytes());
    Bytes::copy_from_slice(&id_hash.finalize()[..16])
}

/// What one session upload did.
pub(crate) struct SessionUpload {
    pub response: pb::PutResponse,
    pub chunks_sent: u64,
    pub bytes_sent: u64,
}

/// Uploads `file` (already scanned from `local`) to `remote` through a session:
/// only the chunks the cluster lacks are sent. Fails if the file changed since
/// it was scanned (a chunk no longer reads back whole, or its hash is refused).
pub(crate) async fn upload_scanned(
    client: &TesseraClient,
    local: &Path,
    file: &ScannedFile,
    remote: &str,
    base_version: Option<u64>,
    device: &str,
    on_conflict: i32,
    bar: &ProgressBar,
) -> anyhow::Result<SessionUpload> {
    let session_id = session_id(remote, &file.sha256, device);
    let mut raw = client.raw();
    let status = raw
        .open_session(pb::OpenSessionRequest {
            session_id: session_id.clone(),
            path: remote.to_owned(),
            chunks: file
                .chunks
                .iter()
                .map(|c| pb::SessionChunk { hash: Bytes::copy_from_slice(&c.hash), size: c.size })
                .collect(),
            base_version,
            device_id: device.to_owned(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let missing: std::collections::HashSet<Vec<u8>> = status.missing.iter().map(|h| h.to_vec()).collect();
    let to_send: Vec<&LocalChunk> = {
        let mut seen = std::collections::HashSet::new();
        file.chunks.iter().filter(|c| missing.contains(&c.hash[..]) && seen.insert(c.hash)).collect()
    };
    let stop_after: Option<usize> = std::env::var(FAILPOINT_EXIT_AFTER_CHUNKS).ok().and_then(|v| v.parse().ok());
    bar.set_length(to_send.iter().map(|c| c.size).sum());
    let (mut chunks_sent, mut bytes_sent) = (0u64, 0u64);
    for c in &to_send {
        if stop_after == Some(chunks_sent as usize) {
            std::process::exit(75);
        }
        let path = local.to_path_buf();
        let (offset, size) = (c.offset, c.size);
        let data = tokio::task::spawn_blocking(move || read_at(&path, offset, size)).await??;
        let pieces = put_chunk_messages(&session_id, &c.hash, Bytes::from(data));
        raw.put_chunk(futures::stream::iter(pieces)).await.map_err(explain)?;
        chunks_sent += 1;
        bytes_sent += c.size;
        bar.inc(c.size);
    }
    let response = raw
        .commit_session(pb::CommitSessionRequest {
            session_id,
            content_sha256: Bytes::copy_from_slice(&file.sha256),
            on_conflict,
        })
        .await
        .map_err(explain)?
        .into_inner();
    Ok(SessionUpload { response, chunks_sent, bytes_sent })
}

pub async fn put(
    json: bool,
    local: &Path,
    remote: &str,
    base_version: Option<u64>,
    device: &str,
    on_conflict: OnConflict,
) -> anyhow::Result<()> {
    local_file_len(local)?;
    let path = local.to_path_buf();
    let file = tokio::task::spawn_blocking(move || scan(&path)).await??;
    let client = connect().await?;
    let bar = progress(0, "upload");
    let up =
        upload_scanned(&client, local, &file, remote, base_version, device, wire_policy(on_conflict), &bar).await?;
    bar.finish_and_clear();
    let (r, sent, sent_bytes, total) = (up.response, up.chunks_sent, up.bytes_sent, file.chunks.len() as u64);
    print(
        json,
        json!({
            "path": r.path, "version": r.version, "size": r.size, "sha256": r.content_sha256,
            "chunks_total": total, "chunks_uploaded": sent,
            "chunks_deduped": total - sent, "bytes_transferred": sent_bytes,
            "conflict": r.conflict, "conflict_path": r.conflict_path, "resumable": true,
        }),
        format!(
            "{} version {} ({} bytes, {sent} of {total} chunks sent, {sent_bytes} bytes transferred)",
            r.path, r.version, r.size
        ),
    );
    Ok(())
}
