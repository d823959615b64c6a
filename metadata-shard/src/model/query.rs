//! Read-only queries, served from any replica's state (the service layer decides when a
//! linearizable read index is needed). Each is also callable as a typed function.

use serde::{Deserialize, Serialize};

use super::access::{self, AccessDecision, Action};
use super::buckets::{self, BucketConfig};
use super::changelog::{self, ChangePage};
use super::chunk_tiers::{self, ChunkTier};
use super::chunks::{self, ChunkRefPage, ZeroRefPage};
use super::kv::KvRead;
use super::links::{self, Link};
use super::listing::{self, FolderPage, ObjectPage};
use super::multipart::{self, MultipartUpload, PartPage, UploadPage};
use super::namespace::{self, DetachedPage, Entry};
use super::sessions::{self, UploadSession};
use super::shared_feed::{self, SharedChangePage};
use super::shares::{self, Share, SharedWithMePage};
use super::types::{Hash32, LinkToken, SessionId, UploadId};
use super::user_move::{self, ExportCursor, UserExportPage, UserFence, WrittenPage};
use super::versions::{self, FileRef, VersionPage, VersionRecord};
use super::ModelError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardQuery {
    Stat {
        user_id: String,
        path: String,
        include_deleted: bool,
    },
    ListFolder {
        user_id: String,
        path: String,
        start_after: Option<String>,
        limit: usize,
        include_deleted: bool,
    },
    ListObjects {
        user_id: String,
        prefix: String,
        delimiter: Option<char>,
        start_after: Option<String>,
        limit: usize,
        /// Deleted files too (listing object versions and delete markers).
        include_deleted: bool,
    },
    ListDetached {
        user_id: String,
        start_after: Option<u64>,
        limit: usize,
    },
    ListVersions {
        user_id: String,
        file: FileRef,
        before: Option<u64>,
        limit: usize,
    },
    GetVersion {
        user_id: String,
        file: FileRef,
        version: u64,
    },
    RefCounts {
        hashes: Vec<Hash32>,
    },
    ZeroRefsAfter {
        after_cursor: u64,
        limit: usize,
    },
    /// A user's logical bytes stored and quota.
    Usage {
        user_id: String,
    },
    /// Logical bytes against distinct chunk bytes of a user's kept versions (walks
    /// every version: for operators).
    DedupStats {
        user_id: String,
    },
    /// Referenced chunks in hash order, after `after` (repair and rebalance walk these).
    ListChunks {
        after: Option<Hash32>,
        limit: usize,
    },
    Session {
        session_id: SessionId,
        user_id: String,
    },
    /// Distinct chunk hashes of the session not yet marked stored, in chunk-list order.
    MissingChunks {
        session_id: SessionId,
        user_id: String,
    },
    ListShares {
        owner: String,
        path: String,
    },
    ListSharedWithMe {
        user_id: String,
        start_after: Option<(String, String)>,
        limit: usize,
    },
    CheckAccess {
        owner: String,
        path: String,
        user_id: String,
        action: Action,
        now_ms: i64,
    },
    ResolveLink {
        token: LinkToken,
        now_ms: i64,
    },
    ListLinks {
        owner: String,
        path: String,
    },
    /// The user's newest change-log cursor (0 when nothing happened yet).
    ChangeHead {
        user_id: String,
    },
    ReadChanges {
        user_id: String,
        after_cursor: u64,
        limit: usize,
        exclude_device: Option<String>,
    },
    /// `owner`'s change log as `grantee` may see it (`model::shared_feed`): only events
    /// under paths shared with the grantee at `now_ms`; PermissionDenied when none is.
    ReadSharedChanges {
        owner: String,
        grantee: String,
        after_cursor: u64,
        limit: usize,
        exclude_device: Option<String>,
        now_ms: i64,
    },
    BucketConfig {
        user_id: String,
        path: String,
    },
    Multipart {
        upload_id: UploadId,
        user_id: String,
    },
    ListParts {
        upload_id: UploadId,
        user_id: String,
        after: u32,
        limit: usize,
    },
    ListMultipart {
        user_id: String,
        prefix: String,
        after: Option<(String, UploadId)>,
        limit: usize,
    },
    /// Location records of chunks (`None`: never moved, in the first tier), in the
    /// order asked; at most 1000 hashes. Answers `ChunkTiers`.
    ChunkTiers {
        hashes: Vec<Hash32>,
    },
    /// Location records with a hash above `after`, in hash order; `limit` is clamped
    /// to 1..=1000. Answers `ChunkTierPage`.
    ListChunkTiers {
        after: Option<Hash32>,
        limit: u32,
    },
    /// A page of a user's records for a move (the user must be fenced here).
    /// Answers `UserExport`.
    ExportUser {
        user_id: String,
        cursor: Option<ExportCursor>,
        limit: usize,
    },
    /// The user's move marker on this group, if any. Answers `Fence`.
    UserFence {
        user_id: String,
    },
    /// The keys written for a user being moved out, from log entry `after`
    /// on, with their values now. Answers `Written`.
    ExportWritten {
        user_id: String,
        after: Option<u64>,
        limit: usize,
    },
    /// Keys and bytes this shard stores (a full scan: for operator status
    /// pages, not request paths). Answers `Footprint`.
    Footprint,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryResponse {
    Entry(Entry),
    Folder(FolderPage),
    Objects(ObjectPage),
    Detached(DetachedPage),
    Versions(VersionPage),
    Version(VersionRecord),
    RefCounts(Vec<(Hash32, u64)>),
    ZeroRefs(ZeroRefPage),
    Chunks(ChunkRefPage),
    Usage(super::usage::Usage),
    DedupStats(super::usage::DedupStats),
    Session(UploadSession),
    MissingChunks(Vec<Hash32>),
    Shares(Vec<Share>),
    SharedWithMe(SharedWithMePage),
    Access(AccessDecision),
    Link(Link),
    Links(Vec<Link>),
    Changes(ChangePage),
    SharedChanges(SharedChangePage),
    Cursor(u64),
    BucketConfig(BucketConfig),
    Multipart(MultipartUpload),
    Parts(PartPage),
    MultipartUploads(UploadPage),
    ChunkTiers(Vec<Option<ChunkTier>>),
    ChunkTierPage {
        entries: Vec<(Hash32, ChunkTier)>,
        has_more: bool,
    },
    UserExport(UserExportPage),
    Fence(Option<UserFence>),
    /// `user_records`: how many of the keys are records of some user.
    Footprint {
        keys: u64,
        bytes: u64,
        user_records: u64,
    },
    Written(WrittenPage),
}

pub fn query<K: KvRead + ?Sized>(kv: &K, q: &ShardQuery) -> Result<QueryResponse, ModelError> {
    let kv: &dyn KvRead = &kv;
    use QueryResponse as R;
    use ShardQuery as Q;
    if let Some(user) = user_move::query_user(q) {
        user_move::check_read(kv, user)?;
    }
    Ok(match q {
        Q::Stat { user_id, path, include_deleted } => R::Entry(namespace::stat(kv, user_id, path, *include_deleted)?),
        Q::ListFolder { user_id, path, start_after, limit, include_deleted } => {
            R::Folder(listing::list_folder(kv, user_id, path, start_after.as_deref(), *limit, *include_deleted)?)
        }
        Q::ListObjects { user_id, prefix, delimiter, start_after, limit, include_deleted } => {
            let scope = listing::ObjectScope { prefix, delimiter: *delimiter, include_deleted: *include_deleted };
            R::Objects(listing::list_objects(kv, user_id, &scope, start_after.as_deref(), *limit)?)
        }
        Q::ListDetached { user_id, start_after, limit } => {
            R::Detached(namespace::list_detached(kv, user_id, *start_after, *limit)?)
        }
        Q::ListVersions { user_id, file, before, limit } => {
            R::Versions(versions::list_versions(kv, user_id, file, *before, *limit)?)
        }
        Q::GetVersion { user_id, file, version } => R::Version(versions::get_version(kv, user_id, file, *version)?),
        Q::RefCounts { hashes } => R::RefCounts(chunks::refcounts(kv, hashes)?),
        Q::ZeroRefsAfter { after_cursor, limit } => R::ZeroRefs(chunks::zero_refs_after(kv, *after_cursor, *limit)?),
        Q::Usage { user_id } => R::Usage(super::usage::usage(kv, user_id)?),
        Q::DedupStats { user_id } => R::DedupStats(super::usage::dedup_stats(kv, user_id)?),
        Q::ListChunks { after, limit } => R::Chunks(chunks::chunk_refs_after(kv, after.as_ref(), (*limit).max(1))?),
        Q::Session { session_id, user_id } => R::Session(sessions::get_session(kv, session_id, user_id)?),
        Q::MissingChunks { session_id, user_id } => {
            R::MissingChunks(sessions::get_session(kv, session_id, user_id)?.missing())
        }
        Q::ListShares { owner, path } => R::Shares(shares::list_shares(kv, owner, path)?),
        Q::ListSharedWithMe { user_id, start_after, limit } => {
            let after = start_after.as_ref().map(|(o, p)| (o.as_str(), p.as_str()));
            R::SharedWithMe(shares::list_shared_with_me(kv, user_id, after, *limit)?)
        }
        Q::CheckAccess { owner, path, user_id, action, now_ms } => {
            R::Access(access::check_access(kv, owner, path, user_id, *action, *now_ms)?)
        }
        Q::ResolveLink { token, now_ms } => {
            let link = links::resolve_link(kv, token, *now_ms)?;
            // A copy being imported, or left behind by a move, is not the owner's link.
            if user_move::check_read(kv, &link.owner).is_err() {
                return Err(ModelError::NotFound("link".into()));
            }
            R::Link(link)
        }
        Q::ListLinks { owner, path } => R::Links(links::list_links(kv, owner, path)?),
        Q::ChangeHead { user_id } => R::Cursor(changelog::head_cursor(kv, user_id)?),
        Q::ReadChanges { user_id, after_cursor, limit, exclude_device } => {
            R::Changes(changelog::read_changes(kv, user_id, *after_cursor, *limit, exclude_device.as_deref())?)
        }
        Q::ReadSharedChanges { owner, grantee, after_cursor, limit, exclude_device, now_ms } => {
            R::SharedChanges(shared_feed::read_shared_changes(
                kv,
                owner,
                grantee,
                *after_cursor,
                *limit,
                exclude_device.as_deref(),
                *now_ms,
            )?)
        }
        Q::BucketConfig { user_id, path } => R::BucketConfig(buckets::bucket_config(kv, user_id, path)?),
        Q::Multipart { upload_id, user_id } => R::Multipart(multipart::get_upload(kv, upload_id, user_id)?),
        Q::ListParts { upload_id, user_id, after, limit } => {
            R::Parts(multipart::list_parts(kv, upload_id, user_id, *after, *limit)?)
        }
        Q::ListMultipart { user_id, prefix, after, limit } => {
            let after = after.as_ref().map(|(p, id)| (p.as_str(), id));
            R::MultipartUploads(multipart::list_uploads(kv, user_id, prefix, after, *limit)?)
        }
        Q::ChunkTiers { hashes } => R::ChunkTiers(chunk_tiers::chunk_tiers(kv, hashes)?),
        Q::ListChunkTiers { after, limit } => {
            let (entries, has_more) = chunk_tiers::list_chunk_tiers(kv, after.as_ref(), *limit)?;
            R::ChunkTierPage { entries, has_more }
        }
        Q::ExportUser { user_id, cursor, limit } => {
            R::UserExport(user_move::export(kv, user_id, cursor.as_ref(), *limit)?)
        }
        Q::UserFence { user_id } => R::Fence(user_move::fence_of(kv, user_id)?),
        Q::ExportWritten { user_id, after, limit } => {
            R::Written(user_move::export_written(kv, user_id, *after, *limit)?)
        }
        Q::Footprint => {
            let (keys, bytes, user_records) = footprint(kv)?;
            R::Footprint { keys, bytes, user_records }
        }
    })
}

/// Every key of the shard, the bytes of keys and values, and the keys that are user records.
fn footprint(kv: &dyn KvRead) -> Result<(u64, u64, u64), ModelError> {
    const PAGE: usize = 4096;
    let end = [0xffu8; 8];
    let (mut keys, mut bytes, mut user_records) = (0u64, 0u64, 0u64);
    let mut from = Vec::new();
    loop {
        let page = kv.scan(&from, &end, PAGE)?;
        for (k, v) in &page {
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
            user_records += u64::from(super::keys::is_user_record(k));
        }
        match page.last() {
            Some((k, _)) if page.len() == PAGE => from = super::keys::key_successor(k),
            _ => return Ok((keys, bytes, user_records)),
        }
    }
}
