//! File versions: commit (with conflict handling), restore, pruning, listing.
//!
//! Versions of a file are numbered 1, 2, 3, ... per file id and never reused; the kept
//! ones are always the contiguous range `oldest_version..=version` of its `FileState`
//! (pruning only ever drops the oldest), so counting and paging need no scan.
//!
//! A commit whose content equals the file's current content (same SHA-256 and the same
//! [`ObjectMeta`]) creates no version, whatever its base: it is a no-op that returns the
//! current version. This makes
//! the "stale base but identical content" case conflict-free and retries idempotent.
//!
//! A commit creates missing parent folders ("mkdir -p", as S3 puts need), and a commit
//! to a missing path with a base version simply creates the file (nothing to lose).

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::codec::{decode, encode, get_decoded};
use super::command::Tx;
use super::kv::KvRead;
use super::namespace::{self, Entry, EntryKind, FileState};
use super::paths::{self, validate_non_root};
use super::types::{validate_user_id, ChunkRef, Hash32, ObjectMeta};
use super::{keys, ModelError};

/// How many conflict-copy names (" 2", " 3", ...) a commit tries before giving up.
const MAX_CONFLICT_COPY_ATTEMPTS: u32 = 100;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConflictPolicy {
    /// Write the new content as "<stem> (<DEVICE>'s conflicting copy <DATE>)<.ext>".
    #[default]
    ConflictCopy,
    /// Make the new content current anyway; the overwritten version stays in history.
    LastWriterWins,
    /// Fail with `ModelError::Conflict` (conditional writes, e.g. S3 If-Match).
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u64,
    pub size: u64,
    pub content_sha256: Hash32,
    pub chunks: Vec<ChunkRef>,
    pub created_by: String,
    pub device_id: String,
    pub created_at_ms: i64,
    pub meta: ObjectMeta,
}

/// A version without its chunk list, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub version: u64,
    pub size: u64,
    pub content_sha256: Hash32,
    pub chunk_count: u64,
    pub created_by: String,
    pub device_id: String,
    pub created_at_ms: i64,
    pub etag: String,
}

impl From<&VersionRecord> for VersionSummary {
    fn from(r: &VersionRecord) -> Self {
        VersionSummary {
            version: r.version,
            size: r.size,
            content_sha256: r.content_sha256,
            chunk_count: r.chunks.len() as u64,
            created_by: r.created_by.clone(),
            device_id: r.device_id.clone(),
            created_at_ms: r.created_at_ms,
            etag: r.meta.etag.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitVersion {
    pub user_id: String,
    pub path: String,
    pub size: u64,
    pub content_sha256: Hash32,
    pub chunks: Vec<ChunkRef>,
    pub device_id: String,
    pub created_by: String,
    /// None: create or overwrite unconditionally.
    pub base_version: Option<u64>,
    pub policy: ConflictPolicy,
    pub now_ms: i64,
    pub meta: ObjectMeta,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOutcome {
    /// Where the content is now current (the conflict copy's path on a conflict copy).
    pub path: String,
    pub file_id: u64,
    pub version: u64,
    /// The base was stale (resolved by conflict copy or last-writer-wins).
    pub conflict: bool,
    pub conflict_path: Option<String>,
    /// False when the content was already current and nothing was written.
    pub new_version: bool,
}

/// Which file a version query is about: one at a path (live or deleted) or a detached one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileRef {
    Path(String),
    Detached(u64),
}

/// The content of a version to write; `version` and the origin are filled in on write.
struct NewContent<'c> {
    size: u64,
    content_sha256: Hash32,
    chunks: &'c [ChunkRef],
    created_by: &'c str,
    meta: &'c ObjectMeta,
}

/// Commits a version. `held_by_session` is the chunk list whose references an upload
/// session already holds: they are released here, and the version adds its own, so a
/// session commit transfers its references with no net change.
pub(crate) fn commit(
    tx: &mut Tx<'_>,
    cmd: &CommitVersion,
    held_by_session: Option<&[ChunkRef]>,
) -> Result<CommitOutcome, ModelError> {
    validate_user_id(&cmd.user_id)?;
    validate_non_root(&cmd.path)?;
    if cmd.created_by != cmd.user_id {
        // A grantee's write: an unshare or expiry between the router's check and this
        // command wins.
        super::access::require(
            tx.kv,
            &cmd.user_id,
            &cmd.path,
            &cmd.created_by,
            super::access::Action::Write,
            cmd.now_ms,
        )?;
    }
    let total: u128 = cmd.chunks.iter().map(|c| u128::from(c.size)).sum();
    if total != u128::from(cmd.size) {
        return Err(ModelError::InvalidArgument(format!("size {} but chunks add up to {total}", cmd.size)));
    }
    if let Some(held) = held_by_session {
        tx.refs.release(held);
    }
    let user = cmd.user_id.as_str();
    let origin = Origin { device_id: &cmd.device_id, now_ms: cmd.now_ms };
    let content = NewContent {
        size: cmd.size,
        content_sha256: cmd.content_sha256,
        chunks: &cmd.chunks,
        created_by: &cmd.created_by,
        meta: &cmd.meta,
    };
    let existing = namespace::load(tx.kv, user, &cmd.path)?;
    match existing {
        Some(entry) if !entry.deleted => {
            let Some(state) = entry.file().cloned() else {
                return Err(ModelError::NotAFile(cmd.path.clone()));
            };
            if state.content_sha256 == cmd.content_sha256
                && get_version_of(tx.kv, user, entry.id, state.version)?.meta == cmd.meta
            {
                return Ok(unchanged(&entry, &state));
            }
            let stale = cmd.base_version.is_some_and(|base| base != state.version);
            if !stale {
                return write_version(tx, user, entry, &content, origin).map(|(e, v)| outcome(&e, v, false));
            }
            match cmd.policy {
                ConflictPolicy::Reject => Err(ModelError::Conflict { current_version: state.version }),
                ConflictPolicy::LastWriterWins => {
                    write_version(tx, user, entry, &content, origin).map(|(e, v)| outcome(&e, v, true))
                }
                ConflictPolicy::ConflictCopy => write_conflict_copy(tx, user, &cmd.path, &content, origin),
            }
        }
        // A deleted file is revived whatever the base: its history stays intact.
        existing => {
            namespace::ensure_parents(tx, user, &cmd.path, origin)?;
            let (entry, version) = write_at(tx, user, &cmd.path, existing, &content, origin)?;
            Ok(outcome(&entry, version, false))
        }
    }
}

fn unchanged(entry: &Entry, state: &FileState) -> CommitOutcome {
    CommitOutcome {
        path: entry.path.clone(),
        file_id: entry.id,
        version: state.version,
        conflict: false,
        conflict_path: None,
        new_version: false,
    }
}

fn outcome(entry: &Entry, version: u64, conflict: bool) -> CommitOutcome {
    CommitOutcome {
        path: entry.path.clone(),
        file_id: entry.id,
        version,
        conflict,
        conflict_path: None,
        new_version: true,
    }
}

fn write_conflict_copy(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    content: &NewContent<'_>,
    origin: Origin<'_>,
) -> Result<CommitOutcome, ModelError> {
    for attempt in 1..=MAX_CONFLICT_COPY_ATTEMPTS {
        let copy_path = paths::conflict_copy_path(path, origin.device_id, origin.now_ms, attempt);
        paths::validate_non_root(&copy_path)?;
        let existing = namespace::load(tx.kv, user, &copy_path)?;
        if existing.as_ref().is_some_and(|e| !e.deleted) {
            continue;
        }
        let (entry, version) = write_at(tx, user, &copy_path, existing, content, origin)?;
        let mut result = outcome(&entry, version, true);
        result.conflict_path = Some(copy_path);
        return Ok(result);
    }
    Err(ModelError::AlreadyExists(format!("conflict copies of {path}")))
}

/// Writes `content` at a path whose parent is a live folder and which holds no live
/// entry (or the live file being overwritten): revives a deleted file, displaces other
/// tombstones, or creates a new file.
fn write_at(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    existing: Option<Entry>,
    content: &NewContent<'_>,
    origin: Origin<'_>,
) -> Result<(Entry, u64), ModelError> {
    let entry = match existing {
        Some(entry) if entry.file().is_some() => entry,
        other => {
            if other.is_some() {
                namespace::displace(tx, user, path)?;
            }
            Entry {
                path: path.to_string(),
                id: namespace::allocate_id(tx.kv)?,
                kind: EntryKind::File(FileState {
                    version: 0,
                    oldest_version: 1,
                    size: 0,
                    content_sha256: [0; 32],
                    etag: String::new(),
                }),
                deleted: true, // "not live yet": write_version reports it as a Create
                created_at_ms: origin.now_ms,
                modified_at_ms: origin.now_ms,
            }
        }
    };
    write_version(tx, user, entry, content, origin)
}

/// Appends the next version to a file entry, makes it current (reviving a deleted file),
/// prunes beyond `max_versions`, and logs Create (new or revived) or Modify.
fn write_version(
    tx: &mut Tx<'_>,
    user: &str,
    mut entry: Entry,
    content: &NewContent<'_>,
    origin: Origin<'_>,
) -> Result<(Entry, u64), ModelError> {
    let EntryKind::File(mut state) = entry.kind.clone() else {
        return Err(ModelError::NotAFile(entry.path.clone()));
    };
    let version = state.version.checked_add(1).ok_or_else(|| ModelError::Corrupt("version overflow".into()))?;
    let record = VersionRecord {
        version,
        size: content.size,
        content_sha256: content.content_sha256,
        chunks: content.chunks.to_vec(),
        created_by: content.created_by.to_string(),
        device_id: origin.device_id.to_string(),
        created_at_ms: origin.now_ms,
        meta: content.meta.clone(),
    };
    tx.kv.put(&keys::version(user, entry.id, version), &encode(&record)?);
    tx.refs.add(content.chunks);
    tx.usage.add(user, content.size);
    state.version = version;
    state.size = content.size;
    state.content_sha256 = content.content_sha256;
    state.etag = content.meta.etag.clone();
    while version - state.oldest_version + 1 > tx.cfg.max_versions() {
        let key = keys::version(user, entry.id, state.oldest_version);
        if let Some(old) = get_decoded::<VersionRecord>(tx.kv, &key, "version")? {
            tx.refs.release(&old.chunks);
            tx.usage.release(user, old.size);
            tx.kv.delete(&key);
        }
        state.oldest_version += 1;
    }
    let kind = if entry.deleted { ChangeKind::Create } else { ChangeKind::Modify };
    entry.kind = EntryKind::File(state);
    entry.deleted = false;
    entry.modified_at_ms = origin.now_ms;
    namespace::store(tx.kv, user, &entry)?;
    changelog::append(tx.kv, user, origin, NewEvent::new(kind, &entry.path).version(version))?;
    Ok((entry, version))
}

/// Makes an old version current again as a new version pointing at the same chunks
/// (no data copied). Restoring a deleted file revives it (and its parent folders). A
/// grantee (`created_by` not the owner) must be allowed to write `path` at the time.
pub(crate) fn restore(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    version: u64,
    created_by: &str,
    origin: Origin<'_>,
) -> Result<CommitOutcome, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    if created_by != user {
        super::access::require(tx.kv, user, path, created_by, super::access::Action::Write, origin.now_ms)?;
    }
    let entry = namespace::load(tx.kv, user, path)?.ok_or_else(|| ModelError::NotFound(path.to_string()))?;
    let Some(state) = entry.file().cloned() else {
        return Err(ModelError::NotAFile(path.to_string()));
    };
    let old = get_version_of(tx.kv, user, entry.id, version)?;
    if !entry.deleted
        && old.content_sha256 == state.content_sha256
        && get_version_of(tx.kv, user, entry.id, state.version)?.meta == old.meta
    {
        return Ok(unchanged(&entry, &state));
    }
    if entry.deleted {
        namespace::ensure_parents(tx, user, path, origin)?;
    }
    let content = NewContent {
        size: old.size,
        content_sha256: old.content_sha256,
        chunks: &old.chunks,
        created_by,
        meta: &old.meta,
    };
    let (entry, version) = write_version(tx, user, entry, &content, origin)?;
    Ok(outcome(&entry, version, false))
}

/// Deletes one version of a file for good (S3's DELETE with a versionId), releasing its
/// chunk references. An older version simply goes (the kept range may then have holes;
/// the oldest bound moves past them). The current version can go only when it is the
/// last one, and then the file goes with it — with no current content left there is
/// nothing to show, and making an older version current would need a new version number.
/// Returns whether the file itself was removed.
pub(crate) fn delete_version(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    version: u64,
    origin: Origin<'_>,
) -> Result<bool, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    let mut entry = namespace::load(tx.kv, user, path)?.ok_or_else(|| ModelError::NotFound(path.to_string()))?;
    let Some(mut state) = entry.file().cloned() else {
        return Err(ModelError::NotAFile(path.to_string()));
    };
    let key = keys::version(user, entry.id, version);
    let record = get_version_of(tx.kv, user, entry.id, version)?;
    if version == state.version {
        let (start, end) = keys::version_range(user, entry.id, 0, version);
        if !tx.kv.scan(&start, &end, 1)?.is_empty() {
            return Err(ModelError::InvalidArgument(
                "the current version can be deleted only when no older version is kept".into(),
            ));
        }
        if !entry.deleted {
            super::tree_ops::delete(tx, user, path, origin)?;
        }
        super::tree_ops::purge_deleted(tx, user, path)?;
        return Ok(true);
    }
    tx.refs.release(&record.chunks);
    tx.usage.release(user, record.size);
    tx.kv.delete(&key);
    if version == state.oldest_version {
        let (start, end) = keys::version_range(user, entry.id, version + 1, state.version + 1);
        let next = tx.kv.scan(&start, &end, 1)?;
        let (_, value) = next.first().ok_or_else(|| ModelError::Corrupt("current version record missing".into()))?;
        state.oldest_version = decode::<VersionRecord>(value, "version")?.version;
        entry.kind = EntryKind::File(state);
        namespace::store(tx.kv, user, &entry)?;
    }
    Ok(false)
}

/// Deletes every version of a file, releasing their chunk references.
pub(crate) fn purge_all(tx: &mut Tx<'_>, user: &str, file_id: u64) -> Result<u64, ModelError> {
    let (start, end) = keys::version_range(user, file_id, 0, u64::MAX);
    let mut removed = 0;
    loop {
        let batch = tx.kv.scan(&start, &end, 256)?;
        if batch.is_empty() {
            return Ok(removed);
        }
        for (key, value) in batch {
            let record: VersionRecord = decode(&value, "version")?;
            tx.refs.release(&record.chunks);
            tx.usage.release(user, record.size);
            tx.kv.delete(&key);
            removed += 1;
        }
    }
}

fn get_version_of(kv: &dyn KvRead, user: &str, file_id: u64, version: u64) -> Result<VersionRecord, ModelError> {
    get_decoded(kv, &keys::version(user, file_id, version), "version")?
        .ok_or_else(|| ModelError::NotFound(format!("version {version}")))
}

fn resolve(kv: &dyn KvRead, user: &str, file: &FileRef) -> Result<(u64, FileState), ModelError> {
    validate_user_id(user)?;
    let entry = match file {
        FileRef::Path(path) => {
            validate_non_root(path)?;
            namespace::load(kv, user, path)?.ok_or_else(|| ModelError::NotFound(path.clone()))?
        }
        FileRef::Detached(id) => namespace::load_detached(kv, user, *id)?,
    };
    match entry.file() {
        Some(state) => Ok((entry.id, state.clone())),
        None => Err(ModelError::NotAFile(entry.path)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPage {
    /// Newest first.
    pub versions: Vec<VersionSummary>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<u64>,
}

/// Versions older than `before` (all kept versions when None), newest first.
pub fn list_versions(
    kv: &dyn KvRead,
    user: &str,
    file: &FileRef,
    before: Option<u64>,
    limit: usize,
) -> Result<VersionPage, ModelError> {
    let (file_id, state) = resolve(kv, user, file)?;
    let upper = before.unwrap_or(u64::MAX).min(state.version.saturating_add(1));
    let lower = state.oldest_version.max(upper.saturating_sub(limit as u64));
    if lower >= upper {
        return Ok(VersionPage { versions: Vec::new(), next_before: None });
    }
    let (start, end) = keys::version_range(user, file_id, lower, upper);
    let rows = kv.scan(&start, &end, limit)?;
    let mut versions = rows
        .iter()
        .map(|(_, v)| decode::<VersionRecord>(v, "version").map(|r| VersionSummary::from(&r)))
        .collect::<Result<Vec<_>, _>>()?;
    versions.reverse();
    let next_before = (lower > state.oldest_version).then_some(lower);
    Ok(VersionPage { versions, next_before })
}

pub fn get_version(kv: &dyn KvRead, user: &str, file: &FileRef, version: u64) -> Result<VersionRecord, ModelError> {
    let (file_id, _) = resolve(kv, user, file)?;
    get_version_of(kv, user, file_id, version)
}
