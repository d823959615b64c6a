//! Raft commands: the only way shard state changes. [`apply`] is deterministic — it
//! reads no clock and no randomness (times, tokens and ids travel inside the command),
//! iterates only ordered maps, and encodes values deterministically — so every replica
//! that applies the same commands in the same order holds byte-identical state.

use serde::{Deserialize, Serialize};

use super::buckets::{self, BucketConfig, BucketVersioning};
use super::changelog::Origin;
use super::chunk_tiers::{self, ChunkTierMove, ChunkTierOutcome};
use super::chunks::{self, RefDelta};
use super::kv::{KvWrite, Overlay};
use super::links::{self, Link, LinkPermission, NewLink};
use super::multipart::{self, CompleteMultipart, MultipartUpload, PartRecord};
use super::namespace::{self, Entry};
use super::sessions::{self, CommitSession, OpenSession, UploadSession};
use super::shares::{self, Permission, Share, SharedWithMe};
use super::tree_ops::{self, DeleteOutcome, MoveOutcome, PurgeOutcome};
use super::types::{Hash32, LinkToken, ObjectMeta, SessionId, ShardConfig, UploadId};
use super::usage::{self, Usage, UsageDelta};
use super::user_move;
use super::versions::{self, CommitOutcome, CommitVersion, ConflictPolicy};
use super::ModelError;

/// The state a command works on: buffered writes plus the chunk reference changes it
/// accumulates (applied, net, when the command has succeeded).
pub(crate) struct Tx<'a> {
    pub kv: &'a mut dyn KvWrite,
    pub refs: RefDelta,
    pub usage: UsageDelta,
    pub cfg: &'a ShardConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardCommand {
    CreateFolder {
        user_id: String,
        path: String,
        device_id: String,
        now_ms: i64,
    },
    Move {
        user_id: String,
        from: String,
        to: String,
        device_id: String,
        now_ms: i64,
    },
    Delete {
        user_id: String,
        path: String,
        device_id: String,
        now_ms: i64,
    },
    PurgeDeleted {
        user_id: String,
        path: String,
    },
    ReattachFile {
        user_id: String,
        file_id: u64,
        path: String,
        device_id: String,
        now_ms: i64,
    },
    PurgeDetached {
        user_id: String,
        file_id: u64,
    },
    CommitVersion(CommitVersion),
    RestoreVersion {
        user_id: String,
        path: String,
        version: u64,
        created_by: String,
        device_id: String,
        now_ms: i64,
    },
    OpenSession(OpenSession),
    MarkChunksStored {
        session_id: SessionId,
        user_id: String,
        hashes: Vec<Hash32>,
        now_ms: i64,
    },
    CommitSession {
        session_id: SessionId,
        user_id: String,
        content_sha256: Hash32,
        created_by: String,
        policy: ConflictPolicy,
        now_ms: i64,
    },
    AbortSession {
        session_id: SessionId,
        user_id: String,
    },
    ExpireSessions {
        now_ms: i64,
    },
    Share {
        owner: String,
        path: String,
        grantee: String,
        permission: Permission,
        expires_at_ms: Option<i64>,
        device_id: String,
        now_ms: i64,
    },
    Unshare {
        owner: String,
        path: String,
        grantee: String,
        device_id: String,
        now_ms: i64,
    },
    /// Applied on the grantee's shard after a `Share` on the owner's.
    AddSharedWithMe {
        grantee: String,
        owner: String,
        path: String,
        permission: Permission,
        expires_at_ms: Option<i64>,
        now_ms: i64,
    },
    RemoveSharedWithMe {
        grantee: String,
        owner: String,
        path: String,
        now_ms: i64,
    },
    CreateLink {
        token: LinkToken,
        owner: String,
        path: String,
        permission: LinkPermission,
        /// From `hash_link_password`, computed by the proposer.
        password_hash: Option<String>,
        expires_at_ms: Option<i64>,
        device_id: String,
        now_ms: i64,
    },
    RevokeLink {
        owner: String,
        token: LinkToken,
        device_id: String,
        now_ms: i64,
    },
    /// Sets (or, with `None`, removes) a user's storage quota in logical bytes.
    SetQuota {
        user_id: String,
        quota_bytes: Option<u64>,
    },
    /// Purges entries deleted before `deleted_before_ms` among up to `limit` entries
    /// after the key `after` (GC's trash retention, a page at a time).
    PurgeExpiredTrash {
        after: Option<Vec<u8>>,
        deleted_before_ms: i64,
        limit: usize,
    },
    /// GC has processed the zero-ref log through this cursor.
    TrimZeroRefLog {
        through_cursor: u64,
    },
    /// Removes change-log events older than `before_ms`, looking at up to
    /// `limit` events from the key `from` (GC's change-log retention, a page at
    /// a time).
    TrimChangeLog {
        from: Option<Vec<u8>>,
        before_ms: i64,
        limit: usize,
    },
    /// A top-level folder that must not exist yet, with default bucket settings.
    CreateBucket {
        user_id: String,
        path: String,
        device_id: String,
        now_ms: i64,
    },
    SetBucketVersioning {
        user_id: String,
        path: String,
        versioning: BucketVersioning,
        device_id: String,
        now_ms: i64,
    },
    CreateMultipart {
        upload_id: UploadId,
        user_id: String,
        path: String,
        meta: ObjectMeta,
        now_ms: i64,
    },
    PutPart {
        upload_id: UploadId,
        user_id: String,
        part: PartRecord,
    },
    CompleteMultipart(CompleteMultipart),
    DeleteVersion {
        user_id: String,
        path: String,
        version: u64,
        device_id: String,
        now_ms: i64,
    },
    AbortMultipart {
        upload_id: UploadId,
        user_id: String,
    },
    /// Commits tiering moves to chunk location records (`model::chunk_tiers`): each a
    /// compare-and-set on the record's generation, applied in order; at most 1000,
    /// none with an empty tier name. Answers `ChunkTierMoves`, one outcome per move.
    MoveChunkTiers {
        moves: Vec<ChunkTierMove>,
    },
    /// A user move (`model::user_move`), source: log the keys written for the
    /// user from now on while its records are copied; writes go on.
    TrackUser {
        user_id: String,
        move_id: String,
    },
    /// Source, once the bulk copy is done: stop the user's writes.
    FenceUser {
        user_id: String,
        move_id: String,
    },
    /// Source, on rollback: accept the user's writes again.
    UnfenceUser {
        user_id: String,
        move_id: String,
    },
    /// Target: clear leftovers of an abandoned import, mark the user incoming,
    /// raise the file-id counter to the source's.
    BeginImport {
        user_id: String,
        move_id: String,
        next_entry_id: u64,
    },
    /// Target: a page of the user's records from the source's export
    /// (`None`: the record is gone), replacing what is here under the same keys.
    ImportRecords {
        user_id: String,
        move_id: String,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// Target, once the cluster group committed the move: serve the user.
    ActivateUser {
        user_id: String,
        move_id: String,
    },
    /// Source, once the cluster group committed the move: drop the user's records.
    DropUser {
        user_id: String,
        move_id: String,
        to: u64,
    },
    /// Target, on rollback: drop the partial copy.
    AbortImport {
        user_id: String,
        move_id: String,
        from: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardResponse {
    /// `created`: folders created or revived, parents included (0 = it existed).
    Folder {
        entry: Entry,
        created: u32,
    },
    Moved(MoveOutcome),
    Deleted(DeleteOutcome),
    Purged(PurgeOutcome),
    Reattached(Entry),
    Committed(CommitOutcome),
    SessionOpened(UploadSession),
    ChunksMarked {
        missing: usize,
    },
    SessionAborted,
    SessionsExpired {
        removed: u64,
        more: bool,
    },
    Shared(Share),
    Unshared(Share),
    SharedWithMeAdded(SharedWithMe),
    SharedWithMeRemoved(SharedWithMe),
    LinkCreated(Link),
    LinkRevoked(Link),
    ZeroRefLogTrimmed {
        removed: u64,
        more: bool,
    },
    TrashPurged(super::trash::TrashPage),
    ChangeLogTrimmed(super::changelog::ChangeLogTrimPage),
    BucketCreated(Entry),
    BucketConfig(BucketConfig),
    MultipartCreated(MultipartUpload),
    PartStored,
    MultipartAborted,
    VersionDeleted {
        file_removed: bool,
    },
    QuotaSet(Usage),
    /// One outcome per move of `MoveChunkTiers`, in the order given.
    ChunkTierMoves(Vec<ChunkTierOutcome>),
    /// A user-move step done; `records`: how many records it removed (drop, abort, or
    /// leftovers cleared by `BeginImport`), else 0.
    UserMoveStep {
        records: u64,
    },
}

/// Applies one command. Atomic: the command runs against an [`Overlay`] of `kv` and its
/// writes reach `kv` (as `put`/`delete` calls in key order) only if it succeeds, so a
/// failed command changes nothing. A `KvWrite` that appends to one RocksDB WriteBatch
/// per command is therefore enough.
pub fn apply<K: KvWrite + ?Sized>(
    kv: &mut K,
    cmd: &ShardCommand,
    cfg: &ShardConfig,
) -> Result<ShardResponse, ModelError> {
    let (response, writes) = {
        let mut overlay = Overlay::new(&*kv);
        if let Some(user) = user_move::command_user(cmd) {
            user_move::check_write(&overlay, user)?;
        }
        let mut tx = Tx { kv: &mut overlay, refs: RefDelta::default(), usage: UsageDelta::default(), cfg };
        let response = dispatch(&mut tx, cmd)?;
        let refs = std::mem::take(&mut tx.refs);
        chunks::apply_ref_delta(tx.kv, refs)?;
        let delta = std::mem::take(&mut tx.usage);
        usage::apply_usage_delta(tx.kv, delta)?;
        user_move::log_tracked_writes(&mut overlay)?;
        (response, overlay.into_writes())
    };
    for (key, value) in writes {
        match value {
            Some(value) => kv.put(&key, &value),
            None => kv.delete(&key),
        }
    }
    Ok(response)
}

fn origin(device_id: &str, now_ms: i64) -> Origin<'_> {
    Origin { device_id, now_ms }
}

fn dispatch(tx: &mut Tx<'_>, cmd: &ShardCommand) -> Result<ShardResponse, ModelError> {
    use ShardCommand as C;
    use ShardResponse as R;
    Ok(match cmd {
        C::CreateFolder { user_id, path, device_id, now_ms } => {
            let (entry, created) = namespace::create_folder(tx, user_id, path, origin(device_id, *now_ms))?;
            R::Folder { entry, created }
        }
        C::Move { user_id, from, to, device_id, now_ms } => {
            R::Moved(tree_ops::move_entry(tx, user_id, from, to, origin(device_id, *now_ms))?)
        }
        C::Delete { user_id, path, device_id, now_ms } => {
            R::Deleted(tree_ops::delete(tx, user_id, path, origin(device_id, *now_ms))?)
        }
        C::PurgeDeleted { user_id, path } => R::Purged(tree_ops::purge_deleted(tx, user_id, path)?),
        C::ReattachFile { user_id, file_id, path, device_id, now_ms } => {
            R::Reattached(namespace::reattach(tx, user_id, *file_id, path, origin(device_id, *now_ms))?)
        }
        C::PurgeDetached { user_id, file_id } => {
            let removed_versions = namespace::purge_detached(tx, user_id, *file_id)?;
            R::Purged(PurgeOutcome { removed_entries: 1, removed_versions })
        }
        C::CommitVersion(commit) => R::Committed(versions::commit(tx, commit, None)?),
        C::RestoreVersion { user_id, path, version, created_by, device_id, now_ms } => {
            R::Committed(versions::restore(tx, user_id, path, *version, created_by, origin(device_id, *now_ms))?)
        }
        C::OpenSession(open) => R::SessionOpened(sessions::open(tx, open)?),
        C::MarkChunksStored { session_id, user_id, hashes, now_ms } => {
            R::ChunksMarked { missing: sessions::mark_stored(tx, session_id, user_id, hashes, *now_ms)? }
        }
        C::CommitSession { session_id, user_id, content_sha256, created_by, policy, now_ms } => {
            let req = CommitSession {
                session_id: *session_id,
                user_id,
                content_sha256: *content_sha256,
                created_by,
                policy: *policy,
                now_ms: *now_ms,
            };
            R::Committed(sessions::commit(tx, req)?)
        }
        C::AbortSession { session_id, user_id } => {
            sessions::abort(tx, session_id, user_id)?;
            R::SessionAborted
        }
        C::ExpireSessions { now_ms } => {
            let batch = tx.cfg.expire_sessions_batch;
            let (removed, more) = sessions::expire(tx, *now_ms, batch)?;
            R::SessionsExpired { removed, more }
        }
        C::Share { owner, path, grantee, permission, expires_at_ms, device_id, now_ms } => {
            R::Shared(shares::share(tx, owner, path, grantee, *permission, *expires_at_ms, origin(device_id, *now_ms))?)
        }
        C::Unshare { owner, path, grantee, device_id, now_ms } => {
            R::Unshared(shares::unshare(tx, owner, path, grantee, origin(device_id, *now_ms))?)
        }
        C::AddSharedWithMe { grantee, owner, path, permission, expires_at_ms, now_ms } => R::SharedWithMeAdded(
            shares::add_shared_with_me(tx, grantee, owner, path, *permission, *expires_at_ms, origin("", *now_ms))?,
        ),
        C::RemoveSharedWithMe { grantee, owner, path, now_ms } => {
            R::SharedWithMeRemoved(shares::remove_shared_with_me(tx, grantee, owner, path, origin("", *now_ms))?)
        }
        C::CreateLink { token, owner, path, permission, password_hash, expires_at_ms, device_id, now_ms } => {
            let new = NewLink {
                token: *token,
                owner,
                path,
                permission: *permission,
                password_hash: password_hash.as_deref(),
                expires_at_ms: *expires_at_ms,
            };
            R::LinkCreated(links::create_link(tx, new, origin(device_id, *now_ms))?)
        }
        C::RevokeLink { owner, token, device_id, now_ms } => {
            R::LinkRevoked(links::revoke_link(tx, owner, token, origin(device_id, *now_ms))?)
        }
        C::SetQuota { user_id, quota_bytes } => {
            super::types::validate_user_id(user_id)?;
            usage::set_quota(tx.kv, user_id, *quota_bytes);
            R::QuotaSet(usage::usage(tx.kv, user_id)?)
        }
        C::PurgeExpiredTrash { after, deleted_before_ms, limit } => R::TrashPurged(super::trash::purge_expired(
            tx,
            after.as_deref(),
            *deleted_before_ms,
            (*limit).clamp(1, 10_000),
        )?),
        C::TrimChangeLog { from, before_ms, limit } => R::ChangeLogTrimmed(super::changelog::trim_older_than(
            tx.kv,
            from.as_deref(),
            *before_ms,
            (*limit).clamp(1, 10_000),
        )?),
        C::TrimZeroRefLog { through_cursor } => {
            let (removed, more) = chunks::trim_zero_ref_log(tx.kv, *through_cursor, tx.cfg.trim_zero_ref_batch)?;
            R::ZeroRefLogTrimmed { removed, more }
        }
        C::CreateBucket { user_id, path, device_id, now_ms } => {
            R::BucketCreated(buckets::create_bucket(tx, user_id, path, origin(device_id, *now_ms))?)
        }
        C::SetBucketVersioning { user_id, path, versioning, device_id, now_ms } => {
            R::BucketConfig(buckets::set_versioning(tx, user_id, path, *versioning, origin(device_id, *now_ms))?)
        }
        C::CreateMultipart { upload_id, user_id, path, meta, now_ms } => {
            R::MultipartCreated(multipart::create(tx, *upload_id, user_id, path, meta, *now_ms)?)
        }
        C::PutPart { upload_id, user_id, part } => {
            multipart::put_part(tx, upload_id, user_id, part)?;
            R::PartStored
        }
        C::CompleteMultipart(complete) => R::Committed(multipart::complete(tx, complete)?),
        C::DeleteVersion { user_id, path, version, device_id, now_ms } => R::VersionDeleted {
            file_removed: versions::delete_version(tx, user_id, path, *version, origin(device_id, *now_ms))?,
        },
        C::AbortMultipart { upload_id, user_id } => {
            multipart::abort(tx, upload_id, user_id)?;
            R::MultipartAborted
        }
        C::MoveChunkTiers { moves } => R::ChunkTierMoves(chunk_tiers::move_chunk_tiers(tx.kv, moves)?),
        C::TrackUser { user_id, move_id } => {
            user_move::track(tx, user_id, move_id)?;
            R::UserMoveStep { records: 0 }
        }
        C::FenceUser { user_id, move_id } => {
            user_move::fence(tx, user_id, move_id)?;
            R::UserMoveStep { records: 0 }
        }
        C::UnfenceUser { user_id, move_id } => {
            user_move::unfence(tx, user_id, move_id)?;
            R::UserMoveStep { records: 0 }
        }
        C::BeginImport { user_id, move_id, next_entry_id } => {
            R::UserMoveStep { records: user_move::begin_import(tx, user_id, move_id, *next_entry_id)? }
        }
        C::ImportRecords { user_id, move_id, records } => {
            user_move::import(tx, user_id, move_id, records)?;
            R::UserMoveStep { records: 0 }
        }
        C::ActivateUser { user_id, move_id } => {
            user_move::activate(tx, user_id, move_id)?;
            R::UserMoveStep { records: 0 }
        }
        C::DropUser { user_id, move_id, to } => {
            R::UserMoveStep { records: user_move::drop_user(tx, user_id, move_id, *to)? }
        }
        C::AbortImport { user_id, move_id, from } => {
            R::UserMoveStep { records: user_move::abort_import(tx, user_id, move_id, *from)? }
        }
    })
}
