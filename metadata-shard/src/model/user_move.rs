//! Moving a user between shard groups, a shard's side of it: the fence that
//! stops a user's writes here while its records are copied out (or all its
//! requests, on a group that does not own it), the export of a user's
//! records in pages, and their import and removal with the chunk reference
//! counts that go with them. The protocol and why it is safe are in
//! `docs/architecture.md` ("Moving a user"); the cluster group's side is
//! `cluster::user_moves`.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, get_decoded, get_u64};
use super::command::{ShardCommand, Tx};
use super::keys::{self, RangeOwner};
use super::kv::{KvRead, KvWrite, Overlay};
use super::links::Link;
use super::multipart::{MultipartUpload, PartRecord};
use super::query::ShardQuery;
use super::sessions::UploadSession;
use super::types::ChunkRef;
use super::versions::VersionRecord;
use super::ModelError;

/// A user's move marker on a shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserFence {
    /// The user lives here and a move is copying its records out while the
    /// user keeps working: every key written for it is logged (`Y` keys), so
    /// the mover can replay those once the user is fenced.
    Tracking { move_id: String },
    /// The user lives here and a move is finishing its copy: its writes
    /// are refused with a retryable error, its reads are served.
    Outgoing { move_id: String },
    /// A move is copying the user's records in; the user does not live here
    /// yet, so every request for it is refused (retryable).
    Incoming { move_id: String },
    /// The user moved to group `to`; nothing of it is left here. Requests are
    /// refused with the group to ask instead, so a router with an old map
    /// never reads an empty account or writes where nobody will look.
    Gone { to: u64, move_id: String },
}

/// One page of a user's records, in the order a move copies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserExportPage {
    pub records: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<ExportCursor>,
    /// The shard's next file id: the importer raises its own to at least this,
    /// so file ids it hands out later never collide with the user's.
    pub next_entry_id: u64,
}

/// A position in [`keys::user_key_ranges`]: the range and the last key returned in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCursor {
    pub range: usize,
    pub after: Vec<u8>,
}

pub fn fence_of(kv: &dyn KvRead, user: &str) -> Result<Option<UserFence>, ModelError> {
    get_decoded(kv, &keys::fence(user), "user fence")
}

fn moving(user: &str) -> ModelError {
    ModelError::UserMoving(format!("user {user} is being moved to another shard group; retry shortly"))
}

/// Refuses a write for `user` unless the user lives here and is not moving.
pub fn check_write(kv: &dyn KvRead, user: &str) -> Result<(), ModelError> {
    match fence_of(kv, user)? {
        None | Some(UserFence::Tracking { .. }) => Ok(()),
        Some(UserFence::Outgoing { .. } | UserFence::Incoming { .. }) => Err(moving(user)),
        Some(UserFence::Gone { to, .. }) => Err(ModelError::UserMoved { user: user.to_owned(), to }),
    }
}

/// Refuses a read for `user` unless the user lives here (moving out is fine:
/// nothing changes while the fence holds).
pub fn check_read(kv: &dyn KvRead, user: &str) -> Result<(), ModelError> {
    match fence_of(kv, user)? {
        None | Some(UserFence::Tracking { .. } | UserFence::Outgoing { .. }) => Ok(()),
        Some(UserFence::Incoming { .. }) => Err(moving(user)),
        Some(UserFence::Gone { to, .. }) => Err(ModelError::UserMoved { user: user.to_owned(), to }),
    }
}

/// The user whose records a command writes (`None`: shard-wide commands, and
/// the move commands, which check the fence themselves).
pub fn command_user(cmd: &ShardCommand) -> Option<&str> {
    use ShardCommand as C;
    Some(match cmd {
        C::CreateFolder { user_id, .. }
        | C::Move { user_id, .. }
        | C::Delete { user_id, .. }
        | C::PurgeDeleted { user_id, .. }
        | C::ReattachFile { user_id, .. }
        | C::PurgeDetached { user_id, .. }
        | C::RestoreVersion { user_id, .. }
        | C::MarkChunksStored { user_id, .. }
        | C::CommitSession { user_id, .. }
        | C::AbortSession { user_id, .. }
        | C::SetQuota { user_id, .. }
        | C::CreateBucket { user_id, .. }
        | C::SetBucketVersioning { user_id, .. }
        | C::CreateMultipart { user_id, .. }
        | C::PutPart { user_id, .. }
        | C::DeleteVersion { user_id, .. }
        | C::AbortMultipart { user_id, .. } => user_id,
        C::CommitVersion(c) => &c.user_id,
        C::OpenSession(o) => &o.user_id,
        C::CompleteMultipart(c) => &c.user_id,
        C::Share { owner, .. }
        | C::Unshare { owner, .. }
        | C::CreateLink { owner, .. }
        | C::RevokeLink { owner, .. } => owner,
        C::AddSharedWithMe { grantee, .. } | C::RemoveSharedWithMe { grantee, .. } => grantee,
        C::ExpireSessions { .. }
        | C::PurgeExpiredTrash { .. }
        | C::TrimZeroRefLog { .. }
        | C::TrimChangeLog { .. }
        | C::MoveChunkTiers { .. }
        | C::TrackUser { .. }
        | C::FenceUser { .. }
        | C::UnfenceUser { .. }
        | C::BeginImport { .. }
        | C::ImportRecords { .. }
        | C::ActivateUser { .. }
        | C::DropUser { .. }
        | C::AbortImport { .. } => return None,
    })
}

/// The user whose records a query reads (`None`: shard-wide queries, link
/// resolution, which checks the link's owner, and the export, which checks
/// its fence itself).
pub fn query_user(q: &ShardQuery) -> Option<&str> {
    use ShardQuery as Q;
    Some(match q {
        Q::Stat { user_id, .. }
        | Q::ListFolder { user_id, .. }
        | Q::ListObjects { user_id, .. }
        | Q::ListDetached { user_id, .. }
        | Q::ListVersions { user_id, .. }
        | Q::GetVersion { user_id, .. }
        | Q::Usage { user_id, .. }
        | Q::DedupStats { user_id, .. }
        | Q::Session { user_id, .. }
        | Q::MissingChunks { user_id, .. }
        | Q::ListSharedWithMe { user_id, .. }
        | Q::ChangeHead { user_id, .. }
        | Q::ReadChanges { user_id, .. }
        | Q::BucketConfig { user_id, .. }
        | Q::Multipart { user_id, .. }
        | Q::ListParts { user_id, .. }
        | Q::ListMultipart { user_id, .. } => user_id,
        Q::ListShares { owner, .. }
        | Q::CheckAccess { owner, .. }
        | Q::ListLinks { owner, .. }
        | Q::ReadSharedChanges { owner, .. } => owner,
        Q::RefCounts { .. }
        | Q::ZeroRefsAfter { .. }
        | Q::ListChunks { .. }
        | Q::ResolveLink { .. }
        | Q::ChunkTiers { .. }
        | Q::ListChunkTiers { .. }
        | Q::ExportUser { .. }
        | Q::UserFence { .. }
        | Q::ExportWritten { .. }
        | Q::Footprint => return None,
    })
}

/// Whether the record at `key` in a range of kind `owner` belongs to `user`.
fn owned_by(kv: &dyn KvRead, user: &str, owner: RangeOwner, key: &[u8], value: &[u8]) -> Result<bool, ModelError> {
    Ok(match owner {
        RangeOwner::User => true,
        RangeOwner::Session => decode::<UploadSession>(value, "upload session")?.user_id == user,
        RangeOwner::Link => decode::<Link>(value, "link")?.owner == user,
        RangeOwner::Multipart => decode::<MultipartUpload>(value, "multipart upload")?.user_id == user,
        RangeOwner::SessionExpiry => match keys::session_of_expiry(key) {
            Some(id) => get_decoded::<UploadSession>(kv, &keys::session(&id), "upload session")?
                .is_some_and(|s| s.user_id == user),
            None => false,
        },
        RangeOwner::MultipartPart => match keys::upload_of_part(key) {
            Some(id) => get_decoded::<MultipartUpload>(kv, &keys::multipart(&id), "multipart upload")?
                .is_some_and(|u| u.user_id == user),
            None => false,
        },
    })
}

/// The chunk references a record holds (counted in the shard's reference counts).
fn held_chunks(key: &[u8], owner: RangeOwner, value: &[u8]) -> Result<Vec<ChunkRef>, ModelError> {
    Ok(match owner {
        RangeOwner::User if keys::is_version(key) => decode::<VersionRecord>(value, "version")?.chunks,
        RangeOwner::Session => decode::<UploadSession>(value, "upload session")?.chunks,
        RangeOwner::MultipartPart => decode::<PartRecord>(value, "multipart part")?.chunks,
        _ => Vec::new(),
    })
}

/// A record with the kind of range it was found in.
type OwnedRecord = (Vec<u8>, Vec<u8>, RangeOwner);

/// Up to `limit` of the user's records from `cursor` on, with each record's range kind.
fn collect(
    kv: &dyn KvRead,
    user: &str,
    cursor: Option<&ExportCursor>,
    limit: usize,
) -> Result<(Vec<OwnedRecord>, Option<ExportCursor>), ModelError> {
    const SCAN: usize = 512;
    let ranges = keys::user_key_ranges(user);
    let mut out = Vec::new();
    let (first_range, mut from) = match cursor {
        Some(c) => (c.range, Some(keys::key_successor(&c.after))),
        None => (0, None),
    };
    for (index, (start, end, owner)) in ranges.iter().enumerate().skip(first_range) {
        let mut next = from.take().filter(|f| f > start).unwrap_or_else(|| start.clone());
        loop {
            let page = kv.scan(&next, end, SCAN)?;
            let full = page.len() == SCAN;
            for (key, value) in page {
                next = keys::key_successor(&key);
                if owned_by(kv, user, *owner, &key, &value)? {
                    out.push((key.clone(), value, *owner));
                    if out.len() >= limit {
                        return Ok((out, Some(ExportCursor { range: index, after: key })));
                    }
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok((out, None))
}

/// A page of the user's records; the user must be fenced for the move here
/// (so the pages form one consistent copy).
pub fn export(
    kv: &dyn KvRead,
    user: &str,
    cursor: Option<&ExportCursor>,
    limit: usize,
) -> Result<UserExportPage, ModelError> {
    if !matches!(fence_of(kv, user)?, Some(UserFence::Tracking { .. } | UserFence::Outgoing { .. })) {
        return Err(ModelError::InvalidArgument(format!("user {user} is not being moved out of here")));
    }
    let (records, next) = collect(kv, user, cursor, limit.clamp(1, 10_000))?;
    Ok(UserExportPage {
        records: records.into_iter().map(|(k, v, _)| (k, v)).collect(),
        next,
        next_entry_id: get_u64(kv, &keys::meta(keys::NEXT_ENTRY_ID), "next entry id")?,
    })
}

fn wrong_state(user: &str, fence: &Option<UserFence>, step: &str) -> ModelError {
    ModelError::InvalidArgument(format!("cannot {step} user {user} here: its move marker is {fence:?}"))
}

fn put_fence(tx: &mut Tx<'_>, user: &str, fence: &UserFence) -> Result<(), ModelError> {
    tx.kv.put(&keys::fence(user), &encode(fence)?);
    Ok(())
}

/// Deletes every record of the user here and releases the chunks they held.
/// Records one `DropUser` or `AbortImport` command removes: the copy a move
/// leaves behind goes in many small Raft entries, not one that grows with the
/// user. The first command of a drop only leaves the `Gone` marker, so the
/// hand-over that writes wait for stays short.
pub const DROP_PAGE_RECORDS: usize = 4096;

/// Removes up to `limit` of the user's records here (releasing their chunk
/// references); how many it removed (0: none were left).
fn remove_records(tx: &mut Tx<'_>, user: &str, limit: usize) -> Result<u64, ModelError> {
    let (records, _) = collect(&*tx.kv, user, None, limit)?;
    for (key, value, owner) in &records {
        tx.refs.release(&held_chunks(key, *owner, value)?);
        tx.kv.delete(key);
    }
    Ok(records.len() as u64)
}

/// Users whose writes are logged here, with each one's next log sequence.
type Tracked = std::collections::BTreeMap<String, u64>;

fn tracked(kv: &dyn KvRead) -> Result<Tracked, ModelError> {
    Ok(get_decoded(kv, &keys::meta(keys::TRACKED_USERS), "tracked users")?.unwrap_or_default())
}

fn put_tracked(kv: &mut dyn KvWrite, set: &Tracked) -> Result<(), ModelError> {
    let key = keys::meta(keys::TRACKED_USERS);
    if set.is_empty() {
        kv.delete(&key);
    } else {
        kv.put(&key, &encode(set)?);
    }
    Ok(())
}

/// Ends the logging of `user`'s writes and drops its log.
fn stop_tracking(tx: &mut Tx<'_>, user: &str) -> Result<(), ModelError> {
    untrack(tx, user)?;
    while drop_written_log(tx, user, 1024)? > 0 {}
    Ok(())
}

/// Ends the logging of `user`'s writes (the log itself stays).
fn untrack(tx: &mut Tx<'_>, user: &str) -> Result<(), ModelError> {
    let mut set = tracked(&*tx.kv)?;
    if set.remove(user).is_some() {
        put_tracked(tx.kv, &set)?;
    }
    Ok(())
}

/// Deletes up to `limit` entries of `user`'s written-key log; how many it deleted.
fn drop_written_log(tx: &mut Tx<'_>, user: &str, limit: usize) -> Result<u64, ModelError> {
    let (start, end) = keys::dirty_scope(user);
    let page = tx.kv.scan(&start, &end, limit)?;
    for (key, _) in &page {
        tx.kv.delete(key);
    }
    Ok(page.len() as u64)
}

/// Logs every key a command wrote that may be a record of a tracked user
/// (called once per applied command, with its buffered writes). Keys of the
/// shared ranges (sessions, links, uploads) are logged for every tracked
/// user; the replay sorts out whose they are.
pub(crate) fn log_tracked_writes<R: KvRead + ?Sized>(kv: &mut Overlay<'_, R>) -> Result<(), ModelError> {
    let mut set = tracked(&*kv)?;
    if set.is_empty() {
        return Ok(());
    }
    let written = kv.written_keys();
    for (user, next) in set.iter_mut() {
        let ranges = keys::user_key_ranges(user);
        for key in written.iter().filter(|k| ranges.iter().any(|(start, end, _)| *k >= start && *k < end)) {
            kv.put(&keys::dirty(user, *next), key);
            *next += 1;
        }
    }
    put_tracked(kv, &set)
}

/// Source, first step: log the user's writes from now on, while they go on.
pub(crate) fn track(tx: &mut Tx<'_>, user: &str, move_id: &str) -> Result<(), ModelError> {
    match fence_of(&*tx.kv, user)? {
        None => {
            let mut set = tracked(&*tx.kv)?;
            set.insert(user.to_owned(), 0);
            put_tracked(tx.kv, &set)?;
            put_fence(tx, user, &UserFence::Tracking { move_id: move_id.to_owned() })
        }
        Some(UserFence::Tracking { move_id: m }) if m == move_id => Ok(()),
        other => Err(wrong_state(user, &other, "track")),
    }
}

/// Source, once the bulk copy is done: stop the user's writes here. The log
/// keeps going (shard-wide maintenance can still touch the user's records).
pub(crate) fn fence(tx: &mut Tx<'_>, user: &str, move_id: &str) -> Result<(), ModelError> {
    match fence_of(&*tx.kv, user)? {
        Some(UserFence::Tracking { move_id: m }) if m == move_id => {
            put_fence(tx, user, &UserFence::Outgoing { move_id: move_id.to_owned() })
        }
        Some(UserFence::Outgoing { move_id: m }) if m == move_id => Ok(()),
        other => Err(wrong_state(user, &other, "fence")),
    }
}

/// Source, on rollback: the user writes here again, unlogged.
pub(crate) fn unfence(tx: &mut Tx<'_>, user: &str, move_id: &str) -> Result<(), ModelError> {
    match fence_of(&*tx.kv, user)? {
        None => Ok(()),
        Some(UserFence::Tracking { move_id: m } | UserFence::Outgoing { move_id: m }) if m == move_id => {
            tx.kv.delete(&keys::fence(user));
            stop_tracking(tx, user)
        }
        other => Err(wrong_state(user, &other, "unfence")),
    }
}

/// Target, first step: clears what an earlier, abandoned import left and
/// marks the user incoming. Refused where the user lives. Called again with
/// the same move id, it only raises the next file id.
pub(crate) fn begin_import(tx: &mut Tx<'_>, user: &str, move_id: &str, next_entry_id: u64) -> Result<u64, ModelError> {
    let fence = fence_of(&*tx.kv, user)?;
    let cleared = match &fence {
        Some(UserFence::Incoming { move_id: m }) if m == move_id => 0,
        Some(UserFence::Incoming { .. } | UserFence::Gone { .. }) => remove_records(tx, user, usize::MAX)?,
        None => {
            if !collect(&*tx.kv, user, None, 1)?.0.is_empty() {
                return Err(ModelError::InvalidArgument(format!(
                    "user {user} has records on this group; it cannot be moved here"
                )));
            }
            0
        }
        Some(UserFence::Tracking { .. } | UserFence::Outgoing { .. }) => {
            return Err(wrong_state(user, &fence, "import"))
        }
    };
    put_fence(tx, user, &UserFence::Incoming { move_id: move_id.to_owned() })?;
    let counter = keys::meta(keys::NEXT_ENTRY_ID);
    if get_u64(&*tx.kv, &counter, "next entry id")? < next_entry_id {
        tx.kv.put(&counter, &next_entry_id.to_be_bytes());
    }
    Ok(cleared)
}

/// The range kind of `key` among `ranges`.
fn owner_of(ranges: &[(Vec<u8>, Vec<u8>, RangeOwner)], key: &[u8]) -> Option<RangeOwner> {
    ranges.iter().find(|(start, end, _)| key >= start.as_slice() && key < end.as_slice()).map(|(_, _, o)| *o)
}

/// Target: stores a page of the user's records (`None`: the record is gone),
/// releasing the chunk references of the values they replace and taking
/// those of the new ones.
pub(crate) fn import(
    tx: &mut Tx<'_>,
    user: &str,
    move_id: &str,
    records: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), ModelError> {
    match fence_of(&*tx.kv, user)? {
        Some(UserFence::Incoming { move_id: m }) if m == move_id => {}
        other => return Err(wrong_state(user, &other, "import records of")),
    }
    let ranges = keys::user_key_ranges(user);
    let foreign = |key: &[u8]| ModelError::InvalidArgument(format!("key {key:02x?} is not a record of user {user}"));
    for (key, value) in records {
        let owner = owner_of(&ranges, key).ok_or_else(|| foreign(key))?;
        if let Some(old) = tx.kv.get(key)? {
            if !owned_by(&*tx.kv, user, owner, key, &old)? {
                // The written-key log covers the shared ranges whole: a key
                // that is not the user's on either side is none of this move's.
                if value.is_none() {
                    continue;
                }
                return Err(foreign(key));
            }
            tx.refs.release(&held_chunks(key, owner, &old)?);
            tx.kv.delete(key);
        }
        let Some(value) = value else { continue };
        tx.kv.put(key, value);
        if !owned_by(&*tx.kv, user, owner, key, value)? {
            // An index record copied before the record it points to (which
            // was written during the copy, so the replay brings both in order).
            if matches!(owner, RangeOwner::SessionExpiry | RangeOwner::MultipartPart)
                && !parent_present(&*tx.kv, owner, key)?
            {
                tx.kv.delete(key);
                continue;
            }
            return Err(foreign(key));
        }
        tx.refs.add(&held_chunks(key, owner, value)?);
    }
    Ok(())
}

/// Whether the record an index key points to is here.
fn parent_present(kv: &dyn KvRead, owner: RangeOwner, key: &[u8]) -> Result<bool, ModelError> {
    Ok(match owner {
        RangeOwner::SessionExpiry => match keys::session_of_expiry(key) {
            Some(id) => kv.get(&keys::session(&id))?.is_some(),
            None => false,
        },
        RangeOwner::MultipartPart => match keys::upload_of_part(key) {
            Some(id) => kv.get(&keys::multipart(&id))?.is_some(),
            None => false,
        },
        _ => true,
    })
}

/// The keys written for the user since the move began tracking it (from log
/// entry `after` on), each with its value now if it is the user's record
/// (`None`: deleted, or not the user's). Ordered so that records come before
/// the index records pointing at them.
pub fn export_written(
    kv: &dyn KvRead,
    user: &str,
    after: Option<u64>,
    limit: usize,
) -> Result<WrittenPage, ModelError> {
    if !matches!(fence_of(kv, user)?, Some(UserFence::Tracking { .. } | UserFence::Outgoing { .. })) {
        return Err(ModelError::InvalidArgument(format!("user {user} is not being moved out of here")));
    }
    let (start, end) = keys::dirty_scope(user);
    let from = match after {
        Some(seq) => keys::key_successor(&keys::dirty(user, seq)),
        None => start,
    };
    let page = kv.scan(&from, &end, limit.clamp(1, 10_000))?;
    let ranges = keys::user_key_ranges(user);
    let mut seen = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    for (_, key) in &page {
        if !seen.insert(key.clone()) {
            continue;
        }
        let Some(owner) = owner_of(&ranges, key) else { continue };
        let value = match kv.get(key)? {
            Some(v) if owned_by(kv, user, owner, key, &v)? => Some(v),
            _ => None,
        };
        records.push((key.clone(), value));
    }
    sort_for_import(user, &mut records);
    Ok(WrittenPage {
        records,
        last: page.last().and_then(|(k, _)| keys::dirty_seq(k)),
        next_entry_id: get_u64(kv, &keys::meta(keys::NEXT_ENTRY_ID), "next entry id")?,
    })
}

/// Puts records in copy order (the order of [`keys::user_key_ranges`]).
pub fn sort_for_import(user: &str, records: &mut [(Vec<u8>, Option<Vec<u8>>)]) {
    let ranges = keys::user_key_ranges(user);
    let rank = |key: &[u8]| ranges.iter().position(|(s, e, _)| key >= s.as_slice() && key < e.as_slice());
    records.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
}

/// A page of [`export_written`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenPage {
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The last log entry this page covers; `None` when there was nothing after `after`.
    pub last: Option<u64>,
    pub next_entry_id: u64,
}

/// Target, after the cluster group committed the move: the user lives here now.
pub(crate) fn activate(tx: &mut Tx<'_>, user: &str, move_id: &str) -> Result<(), ModelError> {
    match fence_of(&*tx.kv, user)? {
        None => Ok(()),
        Some(UserFence::Incoming { move_id: m }) if m == move_id => {
            tx.kv.delete(&keys::fence(user));
            Ok(())
        }
        other => Err(wrong_state(user, &other, "activate")),
    }
}

/// Source, after the cluster group committed the move: the first call leaves
/// a `Gone` marker (readers and writers are sent to `to`) and stops the
/// logging of the user's writes; each later one drops a page of the written-key
/// log, then of the user's records, until a page removes nothing.
pub(crate) fn drop_user(tx: &mut Tx<'_>, user: &str, move_id: &str, to: u64) -> Result<u64, ModelError> {
    match fence_of(&*tx.kv, user)? {
        Some(UserFence::Gone { move_id: m, .. }) if m == move_id => {}
        Some(UserFence::Outgoing { move_id: m }) if m == move_id => {
            // The written-key log of a busy user can be long: it goes with the
            // pages below, not in the hand-over.
            untrack(tx, user)?;
            put_fence(tx, user, &UserFence::Gone { to, move_id: move_id.to_owned() })?;
            return Ok(0);
        }
        other => return Err(wrong_state(user, &other, "drop")),
    }
    match drop_written_log(tx, user, DROP_PAGE_RECORDS)? {
        0 => remove_records(tx, user, DROP_PAGE_RECORDS),
        logged => Ok(logged),
    }
}

/// Target, on rollback: the first call leaves a `Gone` marker pointing back
/// at `from`; each later one drops a page of the partial copy, until a page
/// removes nothing.
pub(crate) fn abort_import(tx: &mut Tx<'_>, user: &str, move_id: &str, from: u64) -> Result<u64, ModelError> {
    match fence_of(&*tx.kv, user)? {
        Some(UserFence::Incoming { move_id: m }) if m == move_id => {
            put_fence(tx, user, &UserFence::Gone { to: from, move_id: move_id.to_owned() })?;
            return Ok(0);
        }
        Some(UserFence::Gone { move_id: m, .. }) if m == move_id => {}
        Some(UserFence::Gone { .. }) | None => return Ok(0),
        other => return Err(wrong_state(user, &other, "abort the import of")),
    }
    remove_records(tx, user, DROP_PAGE_RECORDS)
}
