//! One sync pass: find what changed on either side since the last pass, then
//! settle every such path (`apply`).
//!
//! Remote changes come from the change feed after the saved cursor (the
//! device's own events are left out by the router); the first pass of a folder
//! lists the whole remote tree instead and starts following at the feed's
//! head, and so does a pass whose cursor is older than the log keeps (GC trims
//! it after a retention). Local changes come from a scan compared with the state database
//! (size and mtime; content hashes decide). Paths a pass could not settle are
//! kept and tried again by the next one; the cursor moves only when a pass ran
//! to its end, so no remote change is ever skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use serde::Serialize;
use tessera_proto::api as pb;
use tonic::Status;

use super::local::{self, LocalItem};
use super::plan::Side;
use super::remote::{cursor_too_old, unreachable, Remote, RemoteItem};
use super::state::{Changes, StateDb, Synced};
use crate::resumable::ScannedFile;

/// A synced folder: where it is, what it is synced with, and its state.
pub struct SyncedFolder {
    pub root: PathBuf,
    pub remote: Remote,
    pub db: StateDb,
}

/// What one pass did (printed by `--once`, summed up in the status line).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PassReport {
    pub events: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub deleted_local: u64,
    pub deleted_remote: u64,
    pub folders_created: u64,
    pub moved_local: u64,
    pub moved_remote: u64,
    pub conflicts: u64,
    pub chunks_total: u64,
    pub chunks_sent: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub resumed_downloads: u64,
    pub cursor: u64,
    /// The saved cursor was older than the change log keeps: the whole tree was compared.
    pub full_resync: bool,
    pub failed: Vec<String>,
}

impl PassReport {
    pub fn changed_anything(&self) -> bool {
        self.uploaded
            + self.downloaded
            + self.deleted_local
            + self.deleted_remote
            + self.folders_created
            + self.moved_local
            + self.moved_remote
            + self.conflicts
            > 0
    }
}

/// A pass that could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("cluster unreachable: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Local(#[from] anyhow::Error),
}

impl From<Status> for PassError {
    fn from(s: Status) -> Self {
        if unreachable(&s) {
            PassError::Unreachable(s.message().lines().next().unwrap_or("").to_owned())
        } else {
            PassError::Local(crate::remote::explain(s))
        }
    }
}

impl From<std::io::Error> for PassError {
    fn from(e: std::io::Error) -> Self {
        PassError::Local(e.into())
    }
}

/// How often a pass compares the whole remote tree rather than only what the
/// change feed names: a safety net that repairs any drift (say, a state
/// database restored from a backup).
const FULL_COMPARE_EVERY_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    local::mtime_ns(std::time::SystemTime::now()) / 1_000_000
}

/// Records are written in batches: losing the last few to a crash is harmless
/// (the next pass finds both sides alike and records them again).
const RECORD_BATCH: usize = 128;

pub(super) struct Pass<'a> {
    pub folder: &'a SyncedFolder,
    pub base: BTreeMap<String, Synced>,
    /// Remote state of paths read this pass (None: nothing there).
    pub remote_known: HashMap<String, Option<RemoteItem>>,
    /// Whether `remote_known` holds the whole remote tree.
    pub complete_listing: bool,
    /// When this pass listed the whole remote tree, if it did.
    complete_listing_at: Option<i64>,
    /// Local files hashed this pass, with the size and mtime they were hashed at.
    pub hashed: HashMap<String, (LocalItem, ScannedFile)>,
    pub report: PassReport,
    pub pending: BTreeSet<String>,
    unsaved: Changes,
}

impl<'a> Pass<'a> {
    pub fn record(&mut self, rel: &str, synced: Synced) -> anyhow::Result<()> {
        self.unsaved.removed.remove(rel);
        self.unsaved.put.insert(rel.to_owned(), synced.clone());
        self.base.insert(rel.to_owned(), synced);
        self.flush_if_full()
    }

    pub fn forget(&mut self, rel: &str) -> anyhow::Result<()> {
        self.unsaved.put.remove(rel);
        self.unsaved.removed.insert(rel.to_owned());
        self.base.remove(rel);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> anyhow::Result<()> {
        if self.unsaved.put.len() + self.unsaved.removed.len() >= RECORD_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.folder.db.record(std::mem::take(&mut self.unsaved))
    }

    /// Base entries strictly under `rel`.
    pub fn base_under(&self, rel: &str) -> Vec<String> {
        let prefix = format!("{rel}/");
        self.base.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).map(|(k, _)| k.clone()).collect()
    }

    /// The remote side of `rel` read now (after this pass changed it).
    pub async fn fresh_remote_item(&mut self, rel: &str) -> Result<Option<RemoteItem>, Status> {
        let item = self.folder.remote.stat(rel).await?;
        self.remote_known.insert(rel.to_owned(), item);
        Ok(item)
    }

    pub async fn remote_item(&mut self, rel: &str) -> Result<Option<RemoteItem>, Status> {
        if let Some(known) = self.remote_known.get(rel) {
            return Ok(*known);
        }
        if self.complete_listing {
            return Ok(None);
        }
        let item = self.folder.remote.stat(rel).await?;
        self.remote_known.insert(rel.to_owned(), item);
        Ok(item)
    }
}

pub fn base_side(b: Option<&Synced>) -> Side {
    match b {
        None => Side::Absent,
        Some(s) if s.folder => Side::Folder,
        Some(s) => Side::File { sha256: sha_of(&s.sha256), version: s.version },
    }
}

pub fn remote_side(r: Option<RemoteItem>) -> Side {
    match r {
        None => Side::Absent,
        Some(RemoteItem::Folder) => Side::Folder,
        Some(RemoteItem::File { version, sha256, .. }) => Side::File { sha256, version },
    }
}

pub fn sha_of(hex_sha: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(v) = hex::decode(hex_sha) {
        if v.len() == 32 {
            out.copy_from_slice(&v);
        }
    }
    out
}

/// Whether the local item still looks like what was synced (no hashing needed).
pub fn looks_synced(b: &Synced, item: LocalItem) -> bool {
    match item {
        LocalItem::Folder => b.folder,
        LocalItem::File { size, mtime_ns } => !b.folder && !b.racy && b.size == size && b.mtime_ns == mtime_ns,
    }
}

/// Runs one pass over `folder`.
pub async fn run(folder: &SyncedFolder) -> Result<PassReport, PassError> {
    let mut pass = Pass {
        folder,
        base: folder.db.entries()?,
        remote_known: HashMap::new(),
        complete_listing: false,
        complete_listing_at: None,
        hashed: HashMap::new(),
        report: PassReport::default(),
        pending: BTreeSet::new(),
        unsaved: Changes::default(),
    };
    let result = pass.run().await;
    // Whatever happened, keep what was done.
    pass.flush()?;
    let cursor = result?;
    let listed_at = pass.complete_listing_at;
    folder.db.finish_pass(cursor, &pass.pending, listed_at)?;
    pass.report.cursor = cursor;
    Ok(pass.report)
}

impl Pass<'_> {
    async fn run(&mut self) -> Result<u64, PassError> {
        let mut dirty: BTreeSet<String> = self.folder.db.pending()?;
        // Paths whose remote subtree is read whole (folders created, moved in or
        // retried).
        let mut to_list: BTreeSet<String> = dirty.clone();
        let relist_due = now_ms() - self.folder.db.listed_at_ms()? > FULL_COMPARE_EVERY_MS;
        let cursor = match self.folder.db.cursor()? {
            None => self.list_from_head(&mut dirty).await?,
            Some(after) => match self.follow(after, &mut dirty, &mut to_list).await? {
                Some((after, relist_all)) => {
                    if relist_all || relist_due {
                        self.list_everything(&mut dirty).await?;
                    } else {
                        self.list_subtrees(&to_list, &mut dirty).await?;
                    }
                    after
                }
                None => {
                    // The events after our cursor were trimmed: compare the whole
                    // tree (content hashes decide, so unchanged files stay put).
                    tracing::warn!(cursor = after, "change-feed cursor too old; resyncing the whole folder");
                    self.report.full_resync = true;
                    self.list_from_head(&mut dirty).await?
                }
            },
        };
        let root = self.folder.root.clone();
        let scanned = tokio::task::spawn_blocking(move || local::scan(&root)).await.map_err(anyhow::Error::from)??;
        for (rel, item) in &scanned {
            if !self.base.get(rel).is_some_and(|b| looks_synced(b, *item)) {
                dirty.insert(rel.clone());
            }
        }
        dirty.extend(self.base.keys().filter(|k| !scanned.contains_key(*k)).cloned());
        self.fetch_remote_states(&dirty).await?;
        self.settle(dirty).await?;
        Ok(cursor)
    }

    /// Reads the feed after `after` to its end, noting what changed; the new
    /// cursor and whether the whole tree must be listed, or `None` when the
    /// cursor is older than the log keeps.
    async fn follow(
        &mut self,
        mut after: u64,
        dirty: &mut BTreeSet<String>,
        to_list: &mut BTreeSet<String>,
    ) -> Result<Option<(u64, bool)>, PassError> {
        let mut relist_all = false;
        loop {
            let page = match self.folder.remote.changes(after, 1000, 0).await {
                Ok(page) => page,
                Err(s) if cursor_too_old(&s) => return Ok(None),
                Err(s) => return Err(s.into()),
            };
            for event in &page.events {
                relist_all |= self.note_event(event, dirty, to_list).await?;
            }
            after = page.next_cursor;
            if !page.has_more {
                return Ok(Some((after, relist_all)));
            }
        }
    }

    /// Takes the feed's head, then lists the whole remote tree: every change
    /// after the head comes in the next pass, none before it is missed.
    async fn list_from_head(&mut self, dirty: &mut BTreeSet<String>) -> Result<u64, PassError> {
        let head = self.folder.remote.head().await?;
        self.ensure_remote_root().await?;
        self.list_everything(dirty).await?;
        Ok(head)
    }

    async fn ensure_remote_root(&mut self) -> Result<(), PassError> {
        let remote = &self.folder.remote;
        if remote.root != "/" && remote.stat("").await?.is_none() {
            let req = pb::MkdirRequest { path: remote.root.clone(), device_id: remote.device.clone() };
            remote.client.raw().mkdir(req).await?;
        }
        Ok(())
    }

    async fn list_everything(&mut self, dirty: &mut BTreeSet<String>) -> Result<(), PassError> {
        let tree = self.folder.remote.list_tree("").await?;
        self.remote_known = tree.iter().map(|(k, v)| (k.clone(), Some(*v))).collect();
        self.complete_listing = true;
        self.complete_listing_at = Some(now_ms());
        dirty.extend(tree.into_keys());
        dirty.extend(self.base.keys().cloned());
        Ok(())
    }

    /// Reads the remote subtrees of `paths` that are folders.
    async fn list_subtrees(&mut self, paths: &BTreeSet<String>, dirty: &mut BTreeSet<String>) -> Result<(), PassError> {
        for rel in paths {
            if let Some(RemoteItem::Folder) = self.remote_item(rel).await? {
                let tree = self.folder.remote.list_tree(rel).await?;
                for (k, v) in tree {
                    dirty.insert(k.clone());
                    self.remote_known.insert(k, Some(v));
                }
            }
        }
        Ok(())
    }

    /// Marks what one remote event touched; returns true when the event moved or
    /// deleted the synced root or a folder above it (everything must be re-read).
    async fn note_event(
        &mut self,
        event: &pb::ChangeEvent,
        dirty: &mut BTreeSet<String>,
        to_list: &mut BTreeSet<String>,
    ) -> anyhow::Result<bool> {
        self.report.events += 1;
        let remote = &self.folder.remote;
        if event.kind == "share" {
            return Ok(false);
        }
        let above_root = |p: &str| !p.is_empty() && (remote.root == p || remote.root.starts_with(&format!("{p}/")));
        if above_root(&event.path) || above_root(&event.new_path) {
            return Ok(true);
        }
        let from = remote.rel(&event.path).map(str::to_owned);
        let to = remote.rel(&event.new_path).map(str::to_owned);
        if event.kind == "move" {
            if let (Some(from), Some(to)) = (&from, &to) {
                self.move_locally(from, to).await?;
            }
        }
        for rel in [from, to].into_iter().flatten() {
            dirty.extend(self.base_under(&rel));
            dirty.insert(rel.clone());
            to_list.insert(rel);
        }
        Ok(false)
    }

    /// A remote move applied as a local rename, when the local side is exactly
    /// as last synced and the destination is free; otherwise the move is settled
    /// path by path (download and delete).
    async fn move_locally(&mut self, from: &str, to: &str) -> anyhow::Result<()> {
        let root = self.folder.root.clone();
        let root = &root;
        let Some(folder) = self.base.get(from).map(|b| b.folder) else { return Ok(()) };
        let moved: Vec<String> = std::iter::once(from.to_owned()).chain(self.base_under(from)).collect();
        for rel in &moved {
            if !self.unchanged_locally(rel).await? {
                return Ok(());
            }
        }
        if folder && local::scan(&local::local_path(root, from))?.len() != moved.len() - 1 {
            return Ok(()); // the folder holds local additions: settle path by path
        }
        if local::stat(root, to)?.is_some() || self.base.contains_key(to) || !self.base_under(to).is_empty() {
            return Ok(());
        }
        let target = local::local_path(root, to);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        local::rename_durably(&local::local_path(root, from), &target)?;
        for rel in moved {
            let synced = self.base[&rel].clone();
            self.forget(&rel)?;
            self.record(&format!("{to}{}", &rel[from.len()..]), synced)?;
        }
        self.report.moved_local += 1;
        Ok(())
    }

    async fn fetch_remote_states(&mut self, dirty: &BTreeSet<String>) -> Result<(), PassError> {
        use futures::StreamExt;
        if self.complete_listing {
            return Ok(());
        }
        let unknown: Vec<String> = dirty.iter().filter(|p| !self.remote_known.contains_key(*p)).cloned().collect();
        let remote = &self.folder.remote;
        let mut stats = futures::stream::iter(unknown)
            .map(|rel| async move {
                let item = remote.stat(&rel).await;
                (rel, item)
            })
            .buffer_unordered(16);
        let mut found = Vec::new();
        while let Some((rel, item)) = stats.next().await {
            found.push((rel, item?));
        }
        drop(stats);
        self.remote_known.extend(found);
        Ok(())
    }
}
