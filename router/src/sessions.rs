//! Resumable uploads through upload sessions kept in the user's metadata
//! shard (the owner's, for a grantee uploading into a shared folder): open (idempotent for the same session id), store chunks one by one
//! (each checked against its hash and the session's chunk list), commit.
//! Chunks already in the cluster are marked stored at open, so a client
//! sends only what is really missing (delta sync from a chunk list).

use bytes::Bytes;
use tessera_meta::model::sessions::OpenSession;
use tessera_meta::model::versions::ConflictPolicy;
use tessera_meta::model::{
    ChunkRef, CommitOutcome, QueryResponse, SessionId, ShardCommand, ShardQuery, ShardResponse, UploadSession,
};
use tessera_proto::ChunkHash;

use crate::codec::hash_chunk;
use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::ops;

/// Sessions expire a day after they are opened (a resumed upload reuses it).
const SESSION_TTL_MS: i64 = 24 * 3600 * 1000;

pub async fn get(dp: &DataPath, user_id: &str, id: SessionId) -> Result<UploadSession, RouterError> {
    match ops::query(dp, user_id, ShardQuery::Session { session_id: id, user_id: user_id.into() }).await? {
        QueryResponse::Session(s) => Ok(s),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

async fn mark_stored(dp: &DataPath, user_id: &str, id: SessionId, hashes: Vec<[u8; 32]>) -> Result<(), RouterError> {
    if hashes.is_empty() {
        return Ok(());
    }
    let cmd = ShardCommand::MarkChunksStored { session_id: id, user_id: user_id.into(), hashes, now_ms: now_ms() };
    ops::command(dp, user_id, cmd).await.map(|_| ())
}

/// Opens the session (or finds it, when resuming) and returns it with the
/// chunks the cluster already holds marked stored.
pub async fn open(
    dp: &DataPath,
    user_id: &str,
    id: SessionId,
    path: &str,
    chunks: Vec<ChunkRef>,
    base_version: Option<u64>,
    device_id: &str,
) -> Result<UploadSession, RouterError> {
    let session = match get(dp, user_id, id).await {
        Ok(s) => s,
        Err(RouterError::NotFound(_)) => {
            let now = now_ms();
            let cmd = ShardCommand::OpenSession(OpenSession {
                session_id: id,
                user_id: user_id.into(),
                path: path.into(),
                chunks,
                base_version,
                device_id: device_id.into(),
                expires_at_ms: now + SESSION_TTL_MS,
                now_ms: now,
            });
            match ops::command(dp, user_id, cmd).await? {
                ShardResponse::SessionOpened(s) => s,
                other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
            }
        }
        Err(e) => return Err(e),
    };
    let missing: Vec<ChunkHash> = session.missing().into_iter().map(ChunkHash).collect();
    let absent = ops::missing_chunks(dp, &missing).await?;
    let present: Vec<[u8; 32]> = missing.iter().filter(|h| !absent.contains(h)).map(|h| h.0).collect();
    mark_stored(dp, user_id, id, present).await?;
    get(dp, user_id, id).await
}

/// Stores one chunk of the session after checking it is the chunk it claims.
pub async fn put_chunk(
    dp: &DataPath,
    user_id: &str,
    id: SessionId,
    hash: ChunkHash,
    data: Bytes,
) -> Result<UploadSession, RouterError> {
    let session = get(dp, user_id, id).await?;
    let Some(expected) = session.chunks.iter().find(|c| c.hash == hash.0) else {
        return Err(RouterError::InvalidArgument(format!("chunk {hash} is not part of this upload session")));
    };
    if expected.size != data.len() as u64 {
        return Err(RouterError::InvalidArgument(format!(
            "chunk {hash} has {} bytes, the session expects {}",
            data.len(),
            expected.size
        )));
    }
    let check = data.clone();
    let actual = tokio::task::spawn_blocking(move || hash_chunk(&check))
        .await
        .map_err(|e| RouterError::Unavailable(format!("hashing task failed: {e}")))?;
    if actual != hash {
        return Err(RouterError::InvalidArgument(format!("chunk data hashes to {actual}, not {hash}")));
    }
    if crate::upload::store_chunk(dp, hash, data).await? {
        dp.counters.chunks_uploaded.inc();
        dp.counters.bytes_uploaded.inc_by(expected.size);
    }
    mark_stored(dp, user_id, id, vec![hash.0]).await?;
    get(dp, user_id, id).await
}

/// Commits the session as a version of `user_id`'s file, written by `created_by` (a
/// grantee's commit is checked against the owner's shares by the shard, in the commit).
pub async fn commit(
    dp: &DataPath,
    user_id: &str,
    id: SessionId,
    content_sha256: [u8; 32],
    policy: ConflictPolicy,
    created_by: &str,
) -> Result<CommitOutcome, RouterError> {
    let cmd = ShardCommand::CommitSession {
        session_id: id,
        user_id: user_id.into(),
        content_sha256,
        created_by: created_by.into(),
        policy,
        now_ms: now_ms(),
    };
    match ops::command(dp, user_id, cmd).await? {
        ShardResponse::Committed(c) => Ok(c),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

pub async fn abort(dp: &DataPath, user_id: &str, id: SessionId) -> Result<(), RouterError> {
    ops::command(dp, user_id, ShardCommand::AbortSession { session_id: id, user_id: user_id.into() }).await.map(|_| ())
}
