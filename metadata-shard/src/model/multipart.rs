//! S3 multipart uploads: an upload names a future version of a path; its parts arrive
//! in any order (a part number may be sent again and replaces the earlier part), each
//! already chunked and stored by the router; completing is one metadata commit of the
//! chosen parts' chunks in part order — no data is rewritten.
//!
//! Every stored part holds references on its chunks (like an upload session), so GC
//! never frees what a pending upload will commit. Replacing a part releases the old
//! part's references; completing hands the chosen parts' references to the new version
//! and releases the unchosen parts'; aborting releases them all.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, get_decoded};
use super::command::Tx;
use super::kv::KvRead;
use super::paths::validate_non_root;
use super::types::{validate_user_id, ChunkRef, Hash32, ObjectMeta, UploadId};
use super::versions::{self, CommitOutcome, CommitVersion, ConflictPolicy};
use super::{keys, ModelError};

/// S3's limits on part numbers.
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartUpload {
    pub upload_id: UploadId,
    pub user_id: String,
    pub path: String,
    /// Headers given when the upload was created; the etag is set on completion.
    pub meta: ObjectMeta,
    pub initiated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub part_number: u32,
    pub size: u64,
    pub md5: [u8; 16],
    pub sha256: Hash32,
    pub chunks: Vec<ChunkRef>,
    pub uploaded_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartPage {
    /// By part number.
    pub parts: Vec<PartRecord>,
    /// Set when more parts follow: pass as `after` for the next page.
    pub next_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPage {
    /// By path, then upload id.
    pub uploads: Vec<MultipartUpload>,
    /// Set when more uploads follow: pass as `after` for the next page.
    pub next_after: Option<(String, UploadId)>,
}

/// One part chosen for the object, with the SHA-256 the router saw when it listed the
/// parts: a part replaced in between makes the completion fail instead of committing
/// content nobody checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChosenPart {
    pub part_number: u32,
    pub sha256: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteMultipart {
    pub upload_id: UploadId,
    pub user_id: String,
    /// Ascending part numbers.
    pub parts: Vec<ChosenPart>,
    /// Computed by the router from the parts (S3's "MD5 of MD5s-N").
    pub etag: String,
    /// SHA-256 of the chosen parts' SHA-256s.
    pub content_sha256: Hash32,
    pub created_by: String,
    pub device_id: String,
    pub policy: ConflictPolicy,
    pub now_ms: i64,
}

pub(crate) fn create(
    tx: &mut Tx<'_>,
    upload_id: UploadId,
    user: &str,
    path: &str,
    meta: &ObjectMeta,
    now_ms: i64,
) -> Result<MultipartUpload, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    let key = keys::multipart(&upload_id);
    if tx.kv.get(&key)?.is_some() {
        return Err(ModelError::AlreadyExists("multipart upload".into()));
    }
    let upload = MultipartUpload {
        upload_id,
        user_id: user.to_string(),
        path: path.to_string(),
        meta: meta.clone(),
        initiated_at_ms: now_ms,
    };
    tx.kv.put(&key, &encode(&upload)?);
    tx.kv.put(&keys::multipart_by_path(user, path, &upload_id), &[]);
    Ok(upload)
}

/// The upload, if it belongs to `user` (another user's is reported as absent).
pub fn get_upload(kv: &dyn KvRead, upload_id: &UploadId, user: &str) -> Result<MultipartUpload, ModelError> {
    get_decoded::<MultipartUpload>(kv, &keys::multipart(upload_id), "multipart upload")?
        .filter(|u| u.user_id == user)
        .ok_or_else(|| ModelError::NotFound("multipart upload".into()))
}

pub(crate) fn put_part(tx: &mut Tx<'_>, upload_id: &UploadId, user: &str, part: &PartRecord) -> Result<(), ModelError> {
    get_upload(tx.kv, upload_id, user)?;
    if part.part_number == 0 || part.part_number > MAX_PART_NUMBER {
        return Err(ModelError::InvalidArgument(format!("part number {} is outside 1..=10000", part.part_number)));
    }
    let total = part.chunks.iter().try_fold(0u64, |t, c| t.checked_add(c.size));
    if total != Some(part.size) {
        return Err(ModelError::InvalidArgument(format!("part size {} does not match its chunks", part.size)));
    }
    let key = keys::multipart_part(upload_id, part.part_number);
    if let Some(old) = get_decoded::<PartRecord>(tx.kv, &key, "multipart part")? {
        tx.refs.release(&old.chunks);
    }
    tx.refs.add(&part.chunks);
    tx.kv.put(&key, &encode(part)?);
    Ok(())
}

/// Parts numbered above `after`, at most `limit`.
pub fn list_parts(
    kv: &dyn KvRead,
    upload_id: &UploadId,
    user: &str,
    after: u32,
    limit: usize,
) -> Result<PartPage, ModelError> {
    get_upload(kv, upload_id, user)?;
    if limit == 0 {
        return Err(ModelError::InvalidArgument("limit must be positive".into()));
    }
    let (start, end) = keys::multipart_parts_after(upload_id, after);
    let rows = kv.scan(&start, &end, limit.saturating_add(1))?;
    let mut parts =
        rows.iter().map(|(_, v)| decode::<PartRecord>(v, "multipart part")).collect::<Result<Vec<_>, _>>()?;
    let truncated = parts.len() > limit;
    parts.truncate(limit);
    let next_after = if truncated { parts.last().map(|p| p.part_number) } else { None };
    Ok(PartPage { parts, next_after })
}

fn all_parts(kv: &dyn KvRead, upload_id: &UploadId) -> Result<Vec<PartRecord>, ModelError> {
    let (start, end) = keys::multipart_parts_after(upload_id, 0);
    kv.scan(&start, &end, usize::MAX)?.iter().map(|(_, v)| decode(v, "multipart part")).collect()
}

fn remove(tx: &mut Tx<'_>, upload: &MultipartUpload, parts: &[PartRecord]) {
    for part in parts {
        tx.kv.delete(&keys::multipart_part(&upload.upload_id, part.part_number));
    }
    tx.kv.delete(&keys::multipart(&upload.upload_id));
    tx.kv.delete(&keys::multipart_by_path(&upload.user_id, &upload.path, &upload.upload_id));
}

/// Commits the chosen parts as the next version of the upload's path and ends the upload.
pub(crate) fn complete(tx: &mut Tx<'_>, cmd: &CompleteMultipart) -> Result<CommitOutcome, ModelError> {
    let upload = get_upload(tx.kv, &cmd.upload_id, &cmd.user_id)?;
    if cmd.parts.is_empty() {
        return Err(ModelError::InvalidArgument("a multipart upload needs at least one part".into()));
    }
    if cmd.parts.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(ModelError::InvalidArgument("parts must be listed in ascending order".into()));
    }
    let parts = all_parts(tx.kv, &cmd.upload_id)?;
    let mut chunks = Vec::new();
    let mut part_sizes = Vec::with_capacity(cmd.parts.len());
    for chosen in &cmd.parts {
        let part = parts
            .iter()
            .find(|p| p.part_number == chosen.part_number)
            .filter(|p| p.sha256 == chosen.sha256)
            .ok_or_else(|| ModelError::NotFound(format!("part {} (or it was replaced)", chosen.part_number)))?;
        chunks.extend_from_slice(&part.chunks);
        part_sizes.push(part.size);
    }
    let held: Vec<ChunkRef> = parts.iter().flat_map(|p| p.chunks.iter().copied()).collect();
    let mut meta = upload.meta.clone();
    meta.etag = cmd.etag.clone();
    meta.part_sizes = part_sizes;
    let commit = CommitVersion {
        user_id: upload.user_id.clone(),
        path: upload.path.clone(),
        size: chunks.iter().map(|c| c.size).sum(),
        content_sha256: cmd.content_sha256,
        chunks,
        device_id: cmd.device_id.clone(),
        created_by: cmd.created_by.clone(),
        base_version: None,
        policy: cmd.policy,
        now_ms: cmd.now_ms,
        meta,
    };
    let outcome = versions::commit(tx, &commit, Some(&held))?;
    remove(tx, &upload, &parts);
    Ok(outcome)
}

pub(crate) fn abort(tx: &mut Tx<'_>, upload_id: &UploadId, user: &str) -> Result<(), ModelError> {
    let upload = get_upload(tx.kv, upload_id, user)?;
    let parts = all_parts(tx.kv, upload_id)?;
    for part in &parts {
        tx.refs.release(&part.chunks);
    }
    remove(tx, &upload, &parts);
    Ok(())
}

/// The user's pending uploads whose path starts with `prefix`, after `after`.
pub fn list_uploads(
    kv: &dyn KvRead,
    user: &str,
    prefix: &str,
    after: Option<(&str, &UploadId)>,
    limit: usize,
) -> Result<UploadPage, ModelError> {
    validate_user_id(user)?;
    if limit == 0 {
        return Err(ModelError::InvalidArgument("limit must be positive".into()));
    }
    let (mut cursor, end) = keys::multipart_by_path_prefix(user, prefix);
    if let Some((path, id)) = after {
        cursor = cursor.max(keys::key_successor(&keys::multipart_by_path(user, path, id)));
    }
    let scope_len = keys::multipart_by_path_scope(user).len();
    let rows = kv.scan(&cursor, &end, limit.saturating_add(1))?;
    let mut uploads = Vec::with_capacity(rows.len());
    for (key, _) in &rows {
        let id: UploadId = key
            .get(key.len().saturating_sub(16)..)
            .and_then(|b| b.try_into().ok())
            .filter(|_| key.len() >= scope_len + 17)
            .ok_or_else(|| ModelError::Corrupt("multipart index key".into()))?;
        uploads.push(get_upload(kv, &id, user)?);
    }
    let truncated = uploads.len() > limit;
    uploads.truncate(limit);
    let next_after = if truncated { uploads.last().map(|u| (u.path.clone(), u.upload_id)) } else { None };
    Ok(UploadPage { uploads, next_after })
}
