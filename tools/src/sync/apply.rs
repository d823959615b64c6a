//! Settling the paths a pass found changed: local moves sent as moves, then
//! every path decided (`plan::decide`) and carried out, parents before children;
//! deletions last, children before parents, each decided again at that moment.
//!
//! Before anything replaces or removes a local file, the file is checked to be
//! still as it was when the decision was made; an edit made meanwhile is never
//! overwritten (the path is retried by the next pass).

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, Context};
use tonic::Status;

use super::local::{self, LocalItem};
use super::pass::{base_side, looks_synced, remote_side, Pass, PassError};
use super::plan::{decide, Decision, Side};
use super::remote::{unreachable, RemoteItem};
use super::state::Synced;
use crate::resumable::{scan, ScannedFile};

/// An mtime this close to the time it was recorded may hide a same-size edit
/// made in the same clock tick; such files are hashed again by the next scan.
const RACY_NS: i64 = 2_000_000_000;

fn now_ns() -> i64 {
    local::mtime_ns(std::time::SystemTime::now())
}

fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

fn synced_file(version: u64, item: LocalItem, file: &ScannedFile) -> Synced {
    let mtime_ns = match item {
        LocalItem::File { mtime_ns, .. } => mtime_ns,
        LocalItem::Folder => 0,
    };
    Synced {
        folder: false,
        version,
        size: file.size,
        mtime_ns,
        sha256: hex::encode(file.sha256),
        chunks: file.chunks.iter().map(|c| hex::encode(c.hash)).collect(),
        racy: now_ns() - mtime_ns < RACY_NS,
    }
}

fn synced_folder() -> Synced {
    Synced { folder: true, version: 0, size: 0, mtime_ns: 0, sha256: String::new(), chunks: Vec::new(), racy: false }
}

/// A failure that stops the whole pass (the cluster is gone) rather than one path.
fn stops_pass(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Status>().is_some_and(unreachable) || e.to_string().starts_with("cluster unavailable")
}

impl Pass<'_> {
    pub(super) async fn settle(&mut self, dirty: BTreeSet<String>) -> Result<(), PassError> {
        let (done, moved_in) = self.send_local_moves(&dirty).await?;
        if !done.is_empty() {
            // A remote move changed the remote side of whole subtrees: read it afresh.
            self.remote_known.clear();
            self.complete_listing = false;
        }
        let mut dirty = dirty;
        dirty.extend(moved_in);
        let mut deferred = Vec::new();
        for rel in &dirty {
            if done.contains(rel) {
                continue;
            }
            match self.settle_path(rel, false).await {
                Ok(true) => deferred.push(rel.clone()),
                Ok(false) => {}
                Err(e) => self.failed(rel, e)?,
            }
        }
        for rel in deferred.iter().rev() {
            // Decided again: the remote side is read afresh.
            if let Err(e) = self.fresh_remote_item(rel).await.map_err(anyhow::Error::from) {
                self.failed(rel, e)?;
                continue;
            }
            if let Err(e) = self.settle_path(rel, true).await {
                self.failed(rel, e)?;
            }
        }
        Ok(())
    }

    fn failed(&mut self, rel: &str, e: anyhow::Error) -> Result<(), PassError> {
        if stops_pass(&e) {
            return Err(PassError::Unreachable(format!("{e:#}")));
        }
        tracing::warn!(path = rel, error = %format!("{e:#}"), "not synced yet; will retry");
        self.report.failed.push(format!("{rel}: {e:#}"));
        self.pending.insert(rel.to_owned());
        Ok(())
    }

    /// The local side of `rel` now, hashing the file unless it still looks as synced.
    async fn local_side(&mut self, rel: &str) -> anyhow::Result<(Option<LocalItem>, Side)> {
        let item = local::stat(&self.folder.root, rel)?;
        let side = match item {
            None => Side::Absent,
            Some(LocalItem::Folder) => Side::Folder,
            Some(file @ LocalItem::File { .. }) => {
                if let Some(b) = self.base.get(rel).filter(|b| looks_synced(b, file)) {
                    base_side(Some(b))
                } else {
                    let sha256 = self.hash(rel, file).await?.sha256;
                    Side::File { sha256, version: 0 }
                }
            }
        };
        Ok((item, side))
    }

    /// Whether `rel` is locally exactly as last synced (hashing it if its mtime
    /// cannot tell).
    pub(super) async fn unchanged_locally(&mut self, rel: &str) -> anyhow::Result<bool> {
        let Some(b) = self.base.get(rel) else { return Ok(false) };
        let expected = base_side(Some(b));
        Ok(match (self.local_side(rel).await?.1, expected) {
            (Side::File { sha256: now, .. }, Side::File { sha256: then, .. }) => now == then,
            (now, then) => now == then,
        })
    }

    pub(super) async fn hash(&mut self, rel: &str, item: LocalItem) -> anyhow::Result<&ScannedFile> {
        let fresh = self.hashed.get(rel).is_some_and(|(at, _)| *at == item);
        if !fresh {
            let path = local::local_path(&self.folder.root, rel);
            let file = tokio::task::spawn_blocking(move || scan(&path)).await??;
            self.hashed.insert(rel.to_owned(), (item, file));
        }
        Ok(&self.hashed[rel].1)
    }

    /// Settles one path; returns true when it is a deletion to do later.
    async fn settle_path(&mut self, rel: &str, deletions: bool) -> anyhow::Result<bool> {
        let (item, local) = self.local_side(rel).await?;
        let remote_item = self.remote_item(rel).await?;
        let base = base_side(self.base.get(rel));
        let decision = decide(base, local, remote_side(remote_item));
        if decision.is_delete() && !deletions {
            return Ok(true);
        }
        let remote = &self.folder.remote;
        match decision {
            Decision::InSync => {
                // Same content under a new mtime (touched, or written back unchanged).
                if let (Some(file @ LocalItem::File { .. }), Some(b)) = (item, self.base.get(rel)) {
                    if !looks_synced(b, file) {
                        let version = b.version;
                        let synced = synced_file(version, file, self.hash(rel, file).await?);
                        self.record(rel, synced)?;
                    }
                }
            }
            Decision::Record => match (item, remote_item) {
                (Some(file @ LocalItem::File { .. }), Some(RemoteItem::File { version, .. })) => {
                    let synced = synced_file(version, file, self.hash(rel, file).await?);
                    self.record(rel, synced)?;
                }
                (Some(LocalItem::Folder), _) => self.record(rel, synced_folder())?,
                _ => self.forget(rel)?,
            },
            Decision::Upload { base_version } => {
                if remote_item == Some(RemoteItem::Folder) {
                    // The folder that was synced here is gone locally, a file took its place.
                    if !remote.is_empty_folder(rel).await? {
                        return self.set_aside(rel, remote_item).await.map(|_| false);
                    }
                    remote.delete(rel).await?;
                }
                self.upload(rel, item, base_version).await?;
            }
            Decision::UploadConflict { base_version } => self.upload(rel, item, base_version).await?,
            Decision::MkdirRemote => {
                if matches!(remote_item, Some(RemoteItem::File { .. })) {
                    remote.delete(rel).await?; // the synced file, replaced locally by a folder
                }
                remote.mkdir(rel).await?;
                self.report.folders_created += 1;
                self.record(rel, synced_folder())?;
            }
            Decision::DeleteRemote => {
                if self.base.get(rel).is_some_and(|b| b.folder) && !remote.is_empty_folder(rel).await? {
                    // New remote content in a folder deleted here: keep the folder and
                    // read its subtree again next pass.
                    std::fs::create_dir_all(local::local_path(&self.folder.root, rel))?;
                    self.forget(rel)?;
                    self.pending.insert(rel.to_owned());
                } else {
                    remote.delete(rel).await?;
                    self.report.deleted_remote += 1;
                    self.forget(rel)?;
                }
            }
            Decision::Download => self.download(rel, item, remote_item).await?,
            Decision::MkdirLocal => {
                let path = local::local_path(&self.folder.root, rel);
                if let Some(LocalItem::File { .. }) = item {
                    std::fs::remove_file(&path)?; // as synced: the remote replaced it by a folder
                }
                std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
                self.report.folders_created += 1;
                self.record(rel, synced_folder())?;
            }
            Decision::DeleteLocal => {
                let path = local::local_path(&self.folder.root, rel);
                match item {
                    Some(LocalItem::Folder) => {
                        if std::fs::remove_dir(&path).is_ok() {
                            self.report.deleted_local += 1;
                        }
                        // Not empty: it holds local additions, which the next pass uploads.
                    }
                    Some(file @ LocalItem::File { .. }) => {
                        if local::stat(&self.folder.root, rel)? != Some(file) {
                            return Err(anyhow!("{rel} changed while it was being synced"));
                        }
                        std::fs::remove_file(&path)?;
                        self.report.deleted_local += 1;
                    }
                    None => {}
                }
                self.forget(rel)?;
            }
            Decision::SetAsideLocal => self.set_aside(rel, remote_item).await?,
        }
        Ok(false)
    }

    async fn upload(&mut self, rel: &str, item: Option<LocalItem>, base_version: u64) -> anyhow::Result<()> {
        let Some(file_item @ LocalItem::File { .. }) = item else { return Ok(()) };
        self.hash(rel, file_item).await?;
        let path = local::local_path(&self.folder.root, rel);
        let file = &self.hashed[rel].1;
        let up = self.folder.remote.upload(rel, &path, file, base_version).await?;
        self.report.uploaded += 1;
        self.report.chunks_total += file.chunks.len() as u64;
        self.report.chunks_sent += up.chunks_sent;
        self.report.bytes_sent += up.bytes_sent;
        let synced = synced_file(up.response.version, file_item, file);
        let landed = self.folder.remote.rel(&up.response.path).map(str::to_owned);
        match landed {
            Some(copy) if up.response.conflict && copy != rel => {
                // The cluster kept this edit as a conflict copy: the local file takes
                // that name, and the remote version comes down under the old one.
                self.report.conflicts += 1;
                let copy_path = local::local_path(&self.folder.root, &copy);
                if local::stat(&self.folder.root, &copy)?.is_none() {
                    local::rename_durably(&path, &copy_path)?;
                    self.record(&copy, synced)?;
                }
                let remote_item = self.fresh_remote_item(rel).await?;
                let item = local::stat(&self.folder.root, rel)?;
                if remote_item.is_some() {
                    self.download(rel, item, remote_item).await?;
                }
            }
            _ => {
                self.remote_known.insert(
                    rel.to_owned(),
                    Some(RemoteItem::File { version: up.response.version, size: file.size, sha256: file.sha256 }),
                );
                self.record(rel, synced)?;
            }
        }
        Ok(())
    }

    async fn download(
        &mut self,
        rel: &str,
        item: Option<LocalItem>,
        remote_item: Option<RemoteItem>,
    ) -> anyhow::Result<()> {
        let Some(RemoteItem::File { version, size, sha256 }) = remote_item else { return Ok(()) };
        let root = self.folder.root.clone();
        let target = local::local_path(&root, rel);
        if item == Some(LocalItem::Folder) {
            // As synced (or it would be a clash): a remote file replaced the folder.
            if std::fs::remove_dir(&target).is_err() {
                return self.set_aside(rel, remote_item).await;
            }
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let got = self.folder.remote.download(rel, version, size, &sha256, &target).await?;
        // The last look before replacing: a local edit made since the decision wins.
        if local::stat(&root, rel)? != item {
            return Err(anyhow!("{rel} changed locally while it was being downloaded"));
        }
        local::rename_durably(&got.temp, &target)?;
        let now = local::stat(&root, rel)?.ok_or_else(|| anyhow!("{rel} vanished right after download"))?;
        self.report.downloaded += 1;
        self.report.bytes_received += size - got.resumed_at;
        if got.resumed_at > 0 {
            self.report.resumed_downloads += 1;
        }
        self.record(rel, synced_file(version, now, &got.file))?;
        Ok(())
    }

    /// Renames the local item to a conflict name (synced as a new path by the
    /// next pass), then takes the remote item under the name.
    async fn set_aside(&mut self, rel: &str, remote_item: Option<RemoteItem>) -> anyhow::Result<()> {
        let root = self.folder.root.clone();
        let device = self.folder.remote.device.clone();
        let mut attempt = 1;
        let copy = loop {
            let name = local::conflict_name(rel, &device, now_ms(), attempt);
            if local::stat(&root, &name)?.is_none() && self.remote_item(&name).await?.is_none() {
                break name;
            }
            attempt += 1;
            if attempt > 100 {
                return Err(anyhow!("no free conflict name for {rel}"));
            }
        };
        local::rename_durably(&local::local_path(&root, rel), &local::local_path(&root, &copy))?;
        self.report.conflicts += 1;
        self.pending.insert(copy);
        self.forget(rel)?;
        match remote_item {
            Some(RemoteItem::Folder) => {
                std::fs::create_dir_all(local::local_path(&root, rel))?;
                self.record(rel, synced_folder())?;
            }
            Some(RemoteItem::File { .. }) => Box::pin(self.download(rel, None, remote_item)).await?,
            None => {}
        }
        Ok(())
    }

    /// Local renames, sent as remote moves: a folder whose whole synced content
    /// reappears under a new name moves as one; otherwise a file deleted here
    /// whose content appears as a new file moves. Returns the paths settled, and
    /// the remote paths a folder move brought along that this side has not seen
    /// (added remotely under the old name meanwhile).
    async fn send_local_moves(
        &mut self,
        dirty: &BTreeSet<String>,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), PassError> {
        let root = self.folder.root.clone();
        let mut settled = BTreeSet::new();
        let mut moved_in = BTreeSet::new();
        // Gone here, unchanged remotely.
        let mut gone: Vec<String> = Vec::new();
        let mut new: Vec<(String, LocalItem)> = Vec::new();
        for rel in dirty {
            let item = local::stat(&root, rel)?;
            let b = self.base.get(rel).cloned();
            let remote_item = self.remote_item(rel).await?;
            match (item, b) {
                (None, Some(b)) if base_side(Some(&b)) == remote_side(remote_item) => gone.push(rel.clone()),
                (Some(i), None) if remote_item.is_none() => new.push((rel.clone(), i)),
                _ => {}
            }
        }
        // Folders first.
        for (to, _) in new.iter().filter(|(_, i)| *i == LocalItem::Folder) {
            if settled.iter().any(|s: &String| to.starts_with(&format!("{s}/"))) {
                continue;
            }
            let candidates: Vec<&String> =
                gone.iter().filter(|g| self.base.get(*g).is_some_and(|b| b.folder) && !settled.contains(*g)).collect();
            for from in candidates {
                if self.same_folder_content(from, to).await? {
                    if let Err(e) = self.folder.remote.rename(from, to).await {
                        if unreachable(&e) {
                            return Err(e.into());
                        }
                        continue;
                    }
                    let moved: Vec<String> = std::iter::once(from.clone()).chain(self.base_under(from)).collect();
                    for rel in moved {
                        let mut synced = self.base[&rel].clone();
                        let new_rel = format!("{to}{}", &rel[from.len()..]);
                        if let Some(LocalItem::File { mtime_ns, .. }) = local::stat(&root, &new_rel)? {
                            synced.mtime_ns = mtime_ns;
                        }
                        self.forget(&rel)?;
                        self.record(&new_rel, synced)?;
                        settled.insert(rel);
                    }
                    // What is inside is settled like any other path, against the remote
                    // side after the move (a file deleted remotely meanwhile moved along
                    // as deleted).
                    settled.insert(to.clone());
                    self.report.moved_remote += 1;
                    let tree = self.folder.remote.list_tree(to).await?;
                    moved_in.extend(tree.into_keys().filter(|k| !self.base.contains_key(k)));
                    break;
                }
            }
        }
        // Then single files, matched by content.
        let mut by_content: HashMap<String, Vec<String>> = HashMap::new();
        for g in gone.iter().filter(|g| !settled.contains(*g)) {
            if let Some(b) = self.base.get(g).filter(|b| !b.folder) {
                by_content.entry(b.sha256.clone()).or_default().push(g.clone());
            }
        }
        for (to, item) in &new {
            if settled.contains(to) || self.base.contains_key(to) || !matches!(item, LocalItem::File { .. }) {
                continue;
            }
            let sha = match self.hash(to, *item).await {
                Ok(f) => hex::encode(f.sha256),
                Err(_) => continue,
            };
            let Some(from) = by_content.get_mut(&sha).and_then(|v| v.pop()) else { continue };
            if let Some(parent) = to.rsplit_once('/').map(|(p, _)| p) {
                if self.remote_item(parent).await?.is_none() {
                    self.folder.remote.mkdir(parent).await?;
                    self.remote_known.insert(parent.to_owned(), Some(RemoteItem::Folder));
                }
            }
            if let Err(e) = self.folder.remote.rename(&from, to).await {
                if unreachable(&e) {
                    return Err(e.into());
                }
                continue; // settled as a delete and an upload instead
            }
            let mut synced = self.base[&from].clone();
            if let LocalItem::File { mtime_ns, .. } = item {
                synced.mtime_ns = *mtime_ns;
            }
            self.forget(&from)?;
            self.record(to, synced)?;
            settled.insert(from);
            settled.insert(to.clone());
            self.report.moved_remote += 1;
        }
        Ok((settled, moved_in))
    }

    /// Whether local folder `to` holds exactly what was synced under `from`.
    async fn same_folder_content(&mut self, from: &str, to: &str) -> anyhow::Result<bool> {
        let root = self.folder.root.clone();
        let under_to = local::scan(&local::local_path(&root, to))?;
        let under_from = self.base_under(from);
        if under_to.len() != under_from.len() {
            return Ok(false);
        }
        for rel in under_from {
            let b = self.base[&rel].clone();
            let inner = &rel[from.len() + 1..];
            let Some(item) = under_to.get(inner).copied() else { return Ok(false) };
            let same = match item {
                LocalItem::Folder => b.folder,
                LocalItem::File { .. } => {
                    !b.folder && hex::encode(self.hash(&format!("{to}/{inner}"), item).await?.sha256) == b.sha256
                }
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
