//! The namespace: entries (files and folders) keyed by (user, path), entry ids, stat,
//! folder creation with "mkdir -p" semantics, and tombstone handling.
//!
//! Invariants kept by every command:
//! - every entry's parent folder has an entry (live or deleted); the root is implicit;
//! - a live entry's ancestors are live, so a deleted folder holds only deleted entries;
//! - shares and links exist only on live paths.
//!
//! Placing a live entry where a *deleted* one lies (a tombstone): a deleted folder is
//! revived by folder creation (its deleted contents stay deleted), a deleted file is
//! revived by a commit (same file id, next version number). Any other combination
//! *displaces* the tombstones at and below the path: deleted folders are dropped (they
//! carry no data) and deleted files are *detached* — moved, with their version history,
//! to a per-user list of detached files (`ListDetached`), from which they can be
//! reattached at a free path or purged. No version is ever lost by a displacement.

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::codec::{decode, encode, encode_u64, get_decoded, get_u64};
use super::command::Tx;
use super::kv::{KvRead, KvWrite};
use super::paths::{self, validate_non_root, validate_path};
use super::types::{validate_user_id, Hash32};
use super::{keys, versions, ModelError};

/// Content state of a file entry: its current version and the oldest one still kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub version: u64,
    pub oldest_version: u64,
    pub size: u64,
    pub content_sha256: Hash32,
    /// The current version's `ObjectMeta::etag` (listings show it without a version read).
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    Folder,
    File(FileState),
}

/// A file or folder. `id` is stable for the entry's life: moves, deletes and revivals
/// keep it (folders get ids too, so sync clients can follow folder moves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub id: u64,
    pub kind: EntryKind,
    pub deleted: bool,
    pub created_at_ms: i64,
    pub modified_at_ms: i64,
}

impl Entry {
    pub fn is_folder(&self) -> bool {
        matches!(self.kind, EntryKind::Folder)
    }

    pub fn file(&self) -> Option<&FileState> {
        match &self.kind {
            EntryKind::File(state) => Some(state),
            EntryKind::Folder => None,
        }
    }

    /// The root folder is implicit: it always exists and is never stored.
    pub fn root() -> Self {
        Entry {
            path: paths::ROOT.to_string(),
            id: 0,
            kind: EntryKind::Folder,
            deleted: false,
            created_at_ms: 0,
            modified_at_ms: 0,
        }
    }

    fn live_folder(&self) -> bool {
        self.is_folder() && !self.deleted
    }
}

pub(crate) fn load(kv: &dyn KvRead, user: &str, path: &str) -> Result<Option<Entry>, ModelError> {
    if paths::is_root(path) {
        return Ok(Some(Entry::root()));
    }
    get_decoded(kv, &keys::entry(user, path), "entry")
}

/// The entry at `path` if it exists and is not deleted.
pub(crate) fn load_live(kv: &dyn KvRead, user: &str, path: &str) -> Result<Entry, ModelError> {
    match load(kv, user, path)? {
        Some(entry) if !entry.deleted => Ok(entry),
        _ => Err(ModelError::NotFound(path.to_string())),
    }
}

pub(crate) fn store(kv: &mut dyn KvWrite, user: &str, entry: &Entry) -> Result<(), ModelError> {
    kv.put(&keys::entry(user, &entry.path), &encode(entry)?);
    Ok(())
}

pub(crate) fn decode_entry(value: &[u8]) -> Result<Entry, ModelError> {
    decode(value, "entry")
}

/// Next id from the shard-wide counter (ids start at 1; 0 is the root).
pub(crate) fn allocate_id(kv: &mut dyn KvWrite) -> Result<u64, ModelError> {
    let key = keys::meta(keys::NEXT_ENTRY_ID);
    let id = get_u64(kv, &key, "entry id counter")?
        .checked_add(1)
        .ok_or_else(|| ModelError::Corrupt("entry id overflow".into()))?;
    kv.put(&key, &encode_u64(id));
    Ok(id)
}

/// Visits the entries in `[start, end)` in key order, in batches; the visitor may write
/// anywhere (the scan resumes after the last key it was given).
pub(crate) fn visit_entries(
    kv: &mut dyn KvWrite,
    (start, end): (Vec<u8>, Vec<u8>),
    mut visit: impl FnMut(&mut dyn KvWrite, Entry) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    const BATCH: usize = 256;
    let mut cursor = start;
    loop {
        let batch = kv.scan(&cursor, &end, BATCH)?;
        let Some((last_key, _)) = batch.last() else {
            return Ok(());
        };
        cursor = keys::key_successor(last_key);
        let full = batch.len() == BATCH;
        for (_, value) in batch {
            visit(kv, decode_entry(&value)?)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Range of the entries strictly below `folder`.
pub(crate) fn descendants_range(user: &str, folder: &str) -> (Vec<u8>, Vec<u8>) {
    keys::entry_prefix_range(user, &paths::descendant_prefix(folder))
}

pub fn stat(kv: &dyn KvRead, user: &str, path: &str, include_deleted: bool) -> Result<Entry, ModelError> {
    validate_user_id(user)?;
    validate_path(path)?;
    match load(kv, user, path)? {
        Some(entry) if include_deleted || !entry.deleted => Ok(entry),
        _ => Err(ModelError::NotFound(path.to_string())),
    }
}

/// Creates the folder `path` and any missing parents ("mkdir -p"). An existing live
/// folder is not an error (the call is idempotent, which suits retried Raft proposals);
/// a live file at `path` is `AlreadyExists`, one on the way is `NotAFolder`.
/// Returns the folder and how many folders were created or revived.
pub(crate) fn create_folder(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    origin: Origin<'_>,
) -> Result<(Entry, u32), ModelError> {
    validate_user_id(user)?;
    validate_path(path)?;
    if paths::is_root(path) {
        return Ok((Entry::root(), 0));
    }
    if let Some(existing) = load(tx.kv, user, path)? {
        if !existing.deleted && !existing.is_folder() {
            return Err(ModelError::AlreadyExists(path.to_string()));
        }
    }
    let mut created = ensure_parents(tx, user, path, origin)?;
    let (entry, made) = make_folder(tx, user, path, origin)?;
    created += u32::from(made);
    Ok((entry, created))
}

/// Makes every proper ancestor of `path` a live folder, creating or reviving as needed.
pub(crate) fn ensure_parents(tx: &mut Tx<'_>, user: &str, path: &str, origin: Origin<'_>) -> Result<u32, ModelError> {
    let mut created = 0;
    for ancestor in paths::ancestors(path) {
        created += u32::from(make_folder(tx, user, ancestor, origin)?.1);
    }
    Ok(created)
}

/// One level of "mkdir": the parent must already be a live folder.
fn make_folder(tx: &mut Tx<'_>, user: &str, path: &str, origin: Origin<'_>) -> Result<(Entry, bool), ModelError> {
    match load(tx.kv, user, path)? {
        Some(entry) if entry.live_folder() => return Ok((entry, false)),
        Some(entry) if !entry.deleted => return Err(ModelError::NotAFolder(path.to_string())),
        Some(mut entry) if entry.is_folder() => {
            entry.deleted = false;
            entry.modified_at_ms = origin.now_ms;
            store(tx.kv, user, &entry)?;
            changelog::append(tx.kv, user, origin, NewEvent::new(ChangeKind::Create, path))?;
            return Ok((entry, true));
        }
        Some(_) => displace(tx, user, path)?,
        None => {}
    }
    let entry = Entry {
        path: path.to_string(),
        id: allocate_id(tx.kv)?,
        kind: EntryKind::Folder,
        deleted: false,
        created_at_ms: origin.now_ms,
        modified_at_ms: origin.now_ms,
    };
    store(tx.kv, user, &entry)?;
    changelog::append(tx.kv, user, origin, NewEvent::new(ChangeKind::Create, path))?;
    Ok((entry, true))
}

/// Removes the tombstones at and below `path` to make room for a new live entry:
/// deleted folders are dropped, deleted files are detached (history kept).
pub(crate) fn displace(tx: &mut Tx<'_>, user: &str, path: &str) -> Result<(), ModelError> {
    if let Some(entry) = load(tx.kv, user, path)? {
        detach_or_drop(tx.kv, user, entry)?;
    }
    visit_entries(tx.kv, descendants_range(user, path), |kv, entry| detach_or_drop(kv, user, entry))
}

fn detach_or_drop(kv: &mut dyn KvWrite, user: &str, entry: Entry) -> Result<(), ModelError> {
    if !entry.deleted {
        return Err(ModelError::Corrupt(format!("live entry {} below a deleted one", entry.path)));
    }
    kv.delete(&keys::entry(user, &entry.path));
    if entry.file().is_some() {
        kv.put(&keys::detached(user, entry.id), &encode(&entry)?);
    }
    Ok(())
}

/// A page of detached files (deleted files displaced from their path), by file id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachedPage {
    /// Each entry keeps the path it was detached from.
    pub files: Vec<Entry>,
    pub next_start_after: Option<u64>,
}

pub fn list_detached(
    kv: &dyn KvRead,
    user: &str,
    start_after: Option<u64>,
    limit: usize,
) -> Result<DetachedPage, ModelError> {
    validate_user_id(user)?;
    let (scope_start, end) = keys::detached_scope(user);
    let start = match start_after {
        Some(id) => keys::key_successor(&keys::detached(user, id)),
        None => scope_start,
    };
    let mut rows = kv.scan(&start, &end, limit.saturating_add(1))?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let files = rows.iter().map(|(_, v)| decode_entry(v)).collect::<Result<Vec<_>, _>>()?;
    let next_start_after = if truncated { files.last().map(|e| e.id) } else { None };
    Ok(DetachedPage { files, next_start_after })
}

pub(crate) fn load_detached(kv: &dyn KvRead, user: &str, file_id: u64) -> Result<Entry, ModelError> {
    get_decoded(kv, &keys::detached(user, file_id), "detached file")?
        .ok_or_else(|| ModelError::NotFound(format!("detached file {file_id}")))
}

/// Puts a detached file back, live, at `path` (a free path or one holding tombstones).
pub(crate) fn reattach(
    tx: &mut Tx<'_>,
    user: &str,
    file_id: u64,
    path: &str,
    origin: Origin<'_>,
) -> Result<Entry, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    let mut entry = load_detached(tx.kv, user, file_id)?;
    if load(tx.kv, user, path)?.is_some_and(|e| !e.deleted) {
        return Err(ModelError::AlreadyExists(path.to_string()));
    }
    ensure_parents(tx, user, path, origin)?;
    displace(tx, user, path)?;
    tx.kv.delete(&keys::detached(user, file_id));
    entry.path = path.to_string();
    entry.deleted = false;
    entry.modified_at_ms = origin.now_ms;
    store(tx.kv, user, &entry)?;
    let mut event = NewEvent::new(ChangeKind::Create, path);
    event.version = entry.file().map(|f| f.version);
    changelog::append(tx.kv, user, origin, event)?;
    Ok(entry)
}

/// Permanently removes a detached file and its versions (dropping their chunk refs).
pub(crate) fn purge_detached(tx: &mut Tx<'_>, user: &str, file_id: u64) -> Result<u64, ModelError> {
    validate_user_id(user)?;
    let entry = load_detached(tx.kv, user, file_id)?;
    tx.kv.delete(&keys::detached(user, file_id));
    versions::purge_all(tx, user, entry.id)
}
