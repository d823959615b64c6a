//! The remote side of a synced folder: the cluster's tree under the synced
//! root, read and changed through the native API, with paths relative to the
//! root ("a/b.txt" is "/ROOT/a/b.txt" remotely).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use futures::StreamExt;
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;
use tokio::io::AsyncWriteExt;
use tonic::{Code, Status};

use super::local;
use crate::remote::explain;
use crate::resumable::{scan, upload_scanned, ScannedFile, SessionUpload};

/// Test failpoint: a download exits (as if killed) once this many bytes are on disk.
const FAILPOINT_EXIT_AFTER_BYTES: &str = "TESSERA_FAILPOINT_SYNC_EXIT_AFTER_BYTES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteItem {
    Folder,
    File { version: u64, size: u64, sha256: [u8; 32] },
}

pub struct Remote {
    pub client: TesseraClient,
    /// "/" or "/a/b" (no trailing slash).
    pub root: String,
    pub device: String,
}

/// A finished download: the verified temp file and what it holds.
pub struct Downloaded {
    pub temp: PathBuf,
    pub file: ScannedFile,
    pub resumed_at: u64,
}

fn sha_from_hex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(v) = hex::decode(s) {
        if v.len() == 32 {
            out.copy_from_slice(&v);
        }
    }
    out
}

/// Whether a failure means the cluster cannot be reached (the pass stops and is
/// tried again later) rather than something wrong with one path.
pub fn unreachable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
}

fn full_path(root: &str, rel: &str) -> String {
    match (root, rel) {
        (root, "") => root.to_owned(),
        ("/", rel) => format!("/{rel}"),
        (root, rel) => format!("{root}/{rel}"),
    }
}

/// The relative path of a remote path, if it is under the root (and not the root).
fn rel_path<'a>(root: &str, full: &'a str) -> Option<&'a str> {
    let rest = if root == "/" { Some(full) } else { full.strip_prefix(root) };
    rest?.strip_prefix('/').filter(|r| !r.is_empty())
}

impl Remote {
    pub fn full(&self, rel: &str) -> String {
        full_path(&self.root, rel)
    }

    pub fn rel<'a>(&self, full: &'a str) -> Option<&'a str> {
        rel_path(&self.root, full)
    }

    fn item(e: &pb::Entry) -> RemoteItem {
        if e.is_folder {
            RemoteItem::Folder
        } else {
            RemoteItem::File { version: e.version, size: e.size, sha256: sha_from_hex(&e.content_sha256) }
        }
    }

    pub async fn stat(&self, rel: &str) -> Result<Option<RemoteItem>, Status> {
        match self.client.raw().stat(pb::StatRequest { path: self.full(rel) }).await {
            Ok(r) => Ok(Some(Self::item(&r.into_inner()))),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s),
        }
    }

    /// Every entry under `rel` (recursively), keyed by relative path.
    pub async fn list_tree(&self, rel: &str) -> Result<BTreeMap<String, RemoteItem>, Status> {
        let mut out = BTreeMap::new();
        let mut folders = vec![self.full(rel)];
        while let Some(folder) = folders.pop() {
            let mut start_after = String::new();
            loop {
                let page = match self
                    .client
                    .raw()
                    .list(pb::ListRequest { path: folder.clone(), start_after: start_after.clone(), limit: 1000 })
                    .await
                {
                    Ok(p) => p.into_inner(),
                    Err(s) if s.code() == Code::NotFound => break,
                    Err(s) => return Err(s),
                };
                for e in &page.entries {
                    if e.deleted {
                        continue;
                    }
                    if let Some(r) = self.rel(&e.path) {
                        out.insert(r.to_owned(), Self::item(e));
                    }
                    if e.is_folder {
                        folders.push(e.path.clone());
                    }
                }
                if page.next_start_after.is_empty() {
                    break;
                }
                start_after = page.next_start_after;
            }
        }
        Ok(out)
    }

    pub async fn is_empty_folder(&self, rel: &str) -> Result<bool, Status> {
        let page = self
            .client
            .raw()
            .list(pb::ListRequest { path: self.full(rel), start_after: String::new(), limit: 1 })
            .await;
        match page {
            Ok(p) => Ok(p.into_inner().entries.iter().all(|e| e.deleted)),
            Err(s) if s.code() == Code::NotFound => Ok(true),
            Err(s) => Err(s),
        }
    }

    /// One page of the change feed after `after` (own device's events left out).
    pub async fn changes(&self, after: u64, limit: u32, wait_ms: u32) -> Result<pb::ChangesResponse, Status> {
        let req = pb::ChangesRequest {
            after_cursor: after,
            limit,
            wait_ms,
            device_id: self.device.clone(),
            head_only: false,
        };
        Ok(self.client.raw().changes(req).await?.into_inner())
    }

    /// The feed's head: where a client that lists the whole tree now starts following.
    pub async fn head(&self) -> Result<u64, Status> {
        let req = pb::ChangesRequest { device_id: self.device.clone(), head_only: true, ..Default::default() };
        Ok(self.client.raw().changes(req).await?.into_inner().head_cursor)
    }

    pub async fn mkdir(&self, rel: &str) -> Result<(), Status> {
        let req = pb::MkdirRequest { path: self.full(rel), device_id: self.device.clone() };
        match self.client.raw().mkdir(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(()),
            Err(s) => Err(s),
        }
    }

    pub async fn delete(&self, rel: &str) -> Result<(), Status> {
        let req = pb::DeleteRequest { path: self.full(rel), device_id: self.device.clone(), purge: false };
        match self.client.raw().delete(req).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Status> {
        let req = pb::MoveRequest { from: self.full(from), to: self.full(to), device_id: self.device.clone() };
        self.client.raw().r#move(req).await.map(|_| ())
    }

    /// Uploads a scanned local file through a resumable session (only the chunks
    /// the cluster lacks travel); conflicts become conflict copies.
    pub async fn upload(
        &self,
        rel: &str,
        path: &Path,
        file: &ScannedFile,
        base_version: u64,
    ) -> anyhow::Result<SessionUpload> {
        let bar = indicatif::ProgressBar::hidden();
        let policy = pb::ConflictPolicy::Copy as i32;
        upload_scanned(&self.client, path, file, &self.full(rel), Some(base_version), &self.device, policy, &bar).await
    }

    /// Downloads `version` of `rel` into a temp file beside `target`, resuming a
    /// partial one left by an interrupted pass, and checks the content hash.
    pub async fn download(
        &self,
        rel: &str,
        version: u64,
        size: u64,
        sha256: &[u8; 32],
        target: &Path,
    ) -> anyhow::Result<Downloaded> {
        let temp = local::temp_beside(target, &format!("{}-{version}", &hex::encode(sha256)[..24]));
        if let Some(dir) = temp.parent() {
            tokio::fs::create_dir_all(dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let have = match tokio::fs::metadata(&temp).await {
            Ok(m) if m.len() <= size => m.len(),
            _ => 0,
        };
        let mut out = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(have == 0)
            .append(have > 0)
            .open(&temp)
            .await
            .with_context(|| format!("cannot write {}", temp.display()))?;
        let stop_after: Option<u64> = std::env::var(FAILPOINT_EXIT_AFTER_BYTES).ok().and_then(|v| v.parse().ok());
        if have < size {
            let req = pb::GetRequest {
                path: self.full(rel),
                version: Some(version),
                range_start: Some(have),
                range_end: Some(size),
            };
            let (_, data) = self.client.get(req).await.map_err(explain)?;
            let mut data = Box::pin(data);
            let mut written = have;
            while let Some(piece) = data.next().await {
                let piece = piece.map_err(explain)?;
                out.write_all(&piece).await?;
                written += piece.len() as u64;
                if stop_after.is_some_and(|n| written >= n) {
                    out.sync_all().await?;
                    std::process::exit(75);
                }
            }
        }
        out.sync_all().await?;
        drop(out);
        let check = temp.clone();
        let file = tokio::task::spawn_blocking(move || scan(&check)).await??;
        if file.sha256 != *sha256 || file.size != size {
            let _ = tokio::fs::remove_file(&temp).await;
            bail!("the download of {} did not match its content hash; it will be fetched again", self.full(rel));
        }
        Ok(Downloaded { temp, file, resumed_at: have })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_map_to_the_root_and_back() {
        for (root, rel, full) in [("/", "a/b", "/a/b"), ("/Team/docs", "a", "/Team/docs/a"), ("/Team", "", "/Team")] {
            assert_eq!(full_path(root, rel), full);
            if !rel.is_empty() {
                assert_eq!(rel_path(root, full), Some(rel));
            }
        }
        assert_eq!(rel_path("/Team", "/Teamwork/a"), None);
        assert_eq!(rel_path("/Team", "/Team"), None);
        assert_eq!(rel_path("/", "/"), None);
    }
}

/// Whether a change-feed read failed because its cursor is older than the log
/// keeps (the events after it were trimmed): the client must resync in full.
pub fn cursor_too_old(s: &Status) -> bool {
    s.code() == Code::OutOfRange
}
