//! Resumable upload sessions: the intended chunk list of a pending version and which of
//! its chunks have arrived. An open session holds chunk references (counted like a
//! version's, per occurrence) so GC never frees a chunk an upload is about to commit;
//! abort and expiry release them, commit hands them over to the new version.
//!
//! Sessions are bookkeeping, not user-visible changes: they append no change events
//! (their commit does, like any commit).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::access::{self, Action};
use super::codec::{decode, encode, get_decoded};
use super::command::Tx;
use super::kv::KvRead;
use super::paths::validate_non_root;
use super::shares::is_expired;
use super::types::{validate_user_id, ChunkRef, Hash32, SessionId};
use super::versions::{self, CommitOutcome, CommitVersion, ConflictPolicy};
use super::{keys, ModelError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSession {
    pub session_id: SessionId,
    pub user_id: String,
    pub path: String,
    pub chunks: Vec<ChunkRef>,
    /// Hashes (of `chunks`) reported stored on the block nodes.
    pub stored: BTreeSet<Hash32>,
    pub base_version: Option<u64>,
    pub device_id: String,
    pub opened_at_ms: i64,
    pub expires_at_ms: i64,
}

impl UploadSession {
    /// Distinct hashes not yet stored, in chunk-list order.
    pub fn missing(&self) -> Vec<Hash32> {
        let mut seen = BTreeSet::new();
        self.chunks.iter().map(|c| c.hash).filter(|h| !self.stored.contains(h) && seen.insert(*h)).collect()
    }

    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| c.size).fold(0, u64::saturating_add)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub session_id: SessionId,
    pub user_id: String,
    pub path: String,
    pub chunks: Vec<ChunkRef>,
    pub base_version: Option<u64>,
    pub device_id: String,
    pub expires_at_ms: i64,
    pub now_ms: i64,
}

pub(crate) fn open(tx: &mut Tx<'_>, cmd: &OpenSession) -> Result<UploadSession, ModelError> {
    validate_user_id(&cmd.user_id)?;
    validate_non_root(&cmd.path)?;
    if cmd.expires_at_ms <= cmd.now_ms {
        return Err(ModelError::InvalidArgument("session expiry is not in the future".into()));
    }
    if cmd.chunks.iter().try_fold(0u64, |total, c| total.checked_add(c.size)).is_none() {
        return Err(ModelError::InvalidArgument("chunk sizes overflow".into()));
    }
    let key = keys::session(&cmd.session_id);
    if tx.kv.get(&key)?.is_some() {
        return Err(ModelError::AlreadyExists("upload session".into()));
    }
    let session = UploadSession {
        session_id: cmd.session_id,
        user_id: cmd.user_id.clone(),
        path: cmd.path.clone(),
        chunks: cmd.chunks.clone(),
        stored: BTreeSet::new(),
        base_version: cmd.base_version,
        device_id: cmd.device_id.clone(),
        opened_at_ms: cmd.now_ms,
        expires_at_ms: cmd.expires_at_ms,
    };
    tx.kv.put(&key, &encode(&session)?);
    tx.kv.put(&keys::session_expiry(session.expires_at_ms, &session.session_id), &[]);
    tx.refs.add(&session.chunks);
    Ok(session)
}

/// The session, if it belongs to `user` (another user's session is reported as absent).
pub fn get_session(kv: &dyn KvRead, session_id: &SessionId, user: &str) -> Result<UploadSession, ModelError> {
    let session: UploadSession = get_decoded(kv, &keys::session(session_id), "upload session")?
        .filter(|s: &UploadSession| s.user_id == user)
        .ok_or_else(|| ModelError::NotFound("upload session".into()))?;
    Ok(session)
}

fn get_open_session(
    kv: &dyn KvRead,
    session_id: &SessionId,
    user: &str,
    now_ms: i64,
) -> Result<UploadSession, ModelError> {
    let session = get_session(kv, session_id, user)?;
    if is_expired(Some(session.expires_at_ms), now_ms) {
        return Err(ModelError::Expired("upload session".into()));
    }
    Ok(session)
}

/// Records chunks as stored; every hash must belong to the session. Returns how many
/// distinct chunks are still missing.
pub(crate) fn mark_stored(
    tx: &mut Tx<'_>,
    session_id: &SessionId,
    user: &str,
    hashes: &[Hash32],
    now_ms: i64,
) -> Result<usize, ModelError> {
    let mut session = get_open_session(tx.kv, session_id, user, now_ms)?;
    let known: BTreeSet<Hash32> = session.chunks.iter().map(|c| c.hash).collect();
    if let Some(stranger) = hashes.iter().find(|h| !known.contains(*h)) {
        return Err(ModelError::InvalidArgument(format!("chunk {} is not part of the session", hex::encode(stranger))));
    }
    session.stored.extend(hashes.iter().copied());
    tx.kv.put(&keys::session(session_id), &encode(&session)?);
    Ok(session.missing().len())
}

fn remove(tx: &mut Tx<'_>, session: &UploadSession) {
    tx.kv.delete(&keys::session(&session.session_id));
    tx.kv.delete(&keys::session_expiry(session.expires_at_ms, &session.session_id));
}

pub(crate) struct CommitSession<'c> {
    pub session_id: SessionId,
    pub user_id: &'c str,
    pub content_sha256: Hash32,
    pub created_by: &'c str,
    pub policy: ConflictPolicy,
    pub now_ms: i64,
}

/// Commits the session's chunk list as a version (path, base and device from the
/// session); fails while any chunk is missing, and when `created_by` is not the owner
/// and may not write the session's path (any more). The session's references pass to the
/// version (or are released if the content was already current).
pub(crate) fn commit(tx: &mut Tx<'_>, req: CommitSession<'_>) -> Result<CommitOutcome, ModelError> {
    let session = get_open_session(tx.kv, &req.session_id, req.user_id, req.now_ms)?;
    if req.created_by != session.user_id {
        // A grantee's upload: still allowed to write there now?
        access::require(tx.kv, &session.user_id, &session.path, req.created_by, Action::Write, req.now_ms)?;
    }
    let missing = session.missing().len();
    if missing > 0 {
        return Err(ModelError::ChunksMissing { missing });
    }
    let cmd = CommitVersion {
        user_id: session.user_id.clone(),
        path: session.path.clone(),
        size: session.size(),
        content_sha256: req.content_sha256,
        chunks: session.chunks.clone(),
        device_id: session.device_id.clone(),
        created_by: req.created_by.to_string(),
        base_version: session.base_version,
        policy: req.policy,
        now_ms: req.now_ms,
        meta: Default::default(),
    };
    let outcome = versions::commit(tx, &cmd, Some(&session.chunks))?;
    remove(tx, &session);
    Ok(outcome)
}

pub(crate) fn abort(tx: &mut Tx<'_>, session_id: &SessionId, user: &str) -> Result<(), ModelError> {
    let session = get_session(tx.kv, session_id, user)?;
    tx.refs.release(&session.chunks);
    remove(tx, &session);
    Ok(())
}

/// Removes up to `batch` sessions with `expires_at_ms <= now_ms`, oldest expiry first,
/// releasing their references. Returns (removed, more expired sessions left).
pub(crate) fn expire(tx: &mut Tx<'_>, now_ms: i64, batch: usize) -> Result<(u64, bool), ModelError> {
    let (start, end) = keys::sessions_expired_by(now_ms);
    let rows = tx.kv.scan(&start, &end, batch.saturating_add(1))?;
    let more = rows.len() > batch;
    let mut removed = 0;
    for (index_key, _) in rows.into_iter().take(batch) {
        let id: SessionId = index_key
            .get(index_key.len().saturating_sub(16)..)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ModelError::Corrupt("session expiry key".into()))?;
        match tx.kv.get(&keys::session(&id))? {
            Some(bytes) => {
                let session: UploadSession = decode(&bytes, "upload session")?;
                tx.refs.release(&session.chunks);
                remove(tx, &session);
            }
            None => tx.kv.delete(&index_key), // stale index entry
        }
        removed += 1;
    }
    Ok((removed, more))
}
