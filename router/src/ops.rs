//! File-system operations on a user's namespace, shared by every API the
//! router serves (native gRPC now, S3 later): each resolves the user's shard
//! and runs one Raft command or one linearizable read there.

use tessera_meta::command::{GroupCommand, GroupResponse};
use tessera_meta::model::versions::FileRef;
use tessera_meta::model::{
    CommitOutcome, Entry, FolderPage, QueryResponse, ShardCommand, ShardQuery, ShardResponse, VersionPage,
};
use tessera_proto::ChunkHash;

use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;

/// A linearizable read, answered from the router's metadata cache when it can be.
pub async fn query(dp: &DataPath, user_id: &str, q: ShardQuery) -> Result<QueryResponse, RouterError> {
    dp.view.cache.query(&dp.view, user_id, q).await
}

pub async fn command(dp: &DataPath, user_id: &str, cmd: ShardCommand) -> Result<ShardResponse, RouterError> {
    let result = dp.view.propose_for_user(user_id, &GroupCommand::Shard(cmd)).await;
    // Whatever the outcome, the user's cached metadata may be stale now.
    dp.view.cache.invalidate(user_id);
    match result? {
        GroupResponse::Shard(Ok(r)) => Ok(r),
        GroupResponse::Shard(Err(e)) => Err(e.into()),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

fn unexpected<T>(what: impl std::fmt::Debug) -> Result<T, RouterError> {
    Err(RouterError::Metadata(format!("unexpected answer {what:?}")))
}

pub async fn stat(dp: &DataPath, user_id: &str, path: &str) -> Result<Entry, RouterError> {
    match query(dp, user_id, ShardQuery::Stat { user_id: user_id.into(), path: path.into(), include_deleted: false })
        .await?
    {
        QueryResponse::Entry(e) => Ok(e),
        other => unexpected(other),
    }
}

pub async fn list(
    dp: &DataPath,
    user_id: &str,
    path: &str,
    start_after: Option<String>,
    limit: usize,
) -> Result<FolderPage, RouterError> {
    let q = ShardQuery::ListFolder {
        user_id: user_id.into(),
        path: path.into(),
        start_after,
        limit,
        include_deleted: false,
    };
    match query(dp, user_id, q).await? {
        QueryResponse::Folder(p) => Ok(p),
        other => unexpected(other),
    }
}

pub async fn mkdir(dp: &DataPath, user_id: &str, path: &str, device_id: &str) -> Result<Entry, RouterError> {
    let cmd = ShardCommand::CreateFolder {
        user_id: user_id.into(),
        path: path.into(),
        device_id: device_id.into(),
        now_ms: now_ms(),
    };
    match command(dp, user_id, cmd).await? {
        ShardResponse::Folder { entry, .. } => Ok(entry),
        other => unexpected(other),
    }
}

pub async fn rename(dp: &DataPath, user_id: &str, from: &str, to: &str, device_id: &str) -> Result<(), RouterError> {
    let cmd = ShardCommand::Move {
        user_id: user_id.into(),
        from: from.into(),
        to: to.into(),
        device_id: device_id.into(),
        now_ms: now_ms(),
    };
    command(dp, user_id, cmd).await.map(|_| ())
}

pub async fn delete(dp: &DataPath, user_id: &str, path: &str, device_id: &str) -> Result<(), RouterError> {
    let cmd = ShardCommand::Delete {
        user_id: user_id.into(),
        path: path.into(),
        device_id: device_id.into(),
        now_ms: now_ms(),
    };
    command(dp, user_id, cmd).await.map(|_| ())
}

/// Removes a file or folder with every version, for good: soft-deletes it if it is
/// live, then purges the tombstone (a crash between the two leaves it deleted,
/// restorable, and a retry finishes the purge).
pub async fn purge(dp: &DataPath, user_id: &str, path: &str, device_id: &str) -> Result<(), RouterError> {
    match delete(dp, user_id, path, device_id).await {
        Ok(()) | Err(RouterError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let cmd = ShardCommand::PurgeDeleted { user_id: user_id.into(), path: path.into() };
    command(dp, user_id, cmd).await.map(|_| ())
}

pub async fn versions(dp: &DataPath, user_id: &str, file: FileRef) -> Result<VersionPage, RouterError> {
    let q = ShardQuery::ListVersions { user_id: user_id.into(), file, before: None, limit: 1000 };
    match query(dp, user_id, q).await? {
        QueryResponse::Versions(p) => Ok(p),
        other => unexpected(other),
    }
}

/// A page of the user's detached files (deleted files displaced from their path).
pub async fn list_detached(
    dp: &DataPath,
    user_id: &str,
    start_after: Option<u64>,
    limit: usize,
) -> Result<tessera_meta::model::DetachedPage, RouterError> {
    let q = ShardQuery::ListDetached { user_id: user_id.into(), start_after, limit: limit.clamp(1, 1000) };
    match query(dp, user_id, q).await? {
        QueryResponse::Detached(p) => Ok(p),
        other => unexpected(other),
    }
}

pub async fn reattach(
    dp: &DataPath,
    user_id: &str,
    file_id: u64,
    path: &str,
    device_id: &str,
) -> Result<Entry, RouterError> {
    let cmd = ShardCommand::ReattachFile {
        user_id: user_id.into(),
        file_id,
        path: path.into(),
        device_id: device_id.into(),
        now_ms: now_ms(),
    };
    match command(dp, user_id, cmd).await? {
        ShardResponse::Reattached(e) => Ok(e),
        other => unexpected(other),
    }
}

/// The user's change log after `after_cursor` (see `ChangesRequest` in api.proto);
/// with nothing new, waits up to `wait` for the next change. A linearizable read,
/// so cursors survive leader changes and restarts.
pub async fn changes(
    dp: &DataPath,
    user_id: &str,
    after_cursor: u64,
    limit: u32,
    device_id: &str,
    wait: std::time::Duration,
) -> Result<tessera_meta::model::ChangePage, RouterError> {
    let q = ShardQuery::ReadChanges {
        user_id: user_id.into(),
        after_cursor,
        limit: if limit == 0 { 1000 } else { limit.min(1000) as usize },
        exclude_device: (!device_id.is_empty()).then(|| device_id.to_owned()),
    };
    match dp.view.shard_query(user_id, q, wait).await? {
        QueryResponse::Changes(page) => Ok(page),
        other => unexpected(other),
    }
}

/// Restores `version` of `user_id`'s file as a new version written by `created_by` (a
/// grantee's restore is checked against the owner's shares by the shard, in the command).
pub async fn restore(
    dp: &DataPath,
    user_id: &str,
    path: &str,
    version: u64,
    created_by: &str,
    device_id: &str,
) -> Result<CommitOutcome, RouterError> {
    let cmd = ShardCommand::RestoreVersion {
        user_id: user_id.into(),
        path: path.into(),
        version,
        created_by: created_by.into(),
        device_id: device_id.into(),
        now_ms: now_ms(),
    };
    match command(dp, user_id, cmd).await? {
        ShardResponse::Committed(c) => Ok(c),
        other => unexpected(other),
    }
}

/// The hashes among `hashes` whose fragments are not all stored on their
/// placement nodes: what a client must still send.
pub async fn missing_chunks(dp: &DataPath, hashes: &[ChunkHash]) -> Result<Vec<ChunkHash>, RouterError> {
    let mut missing = Vec::new();
    for hash in hashes {
        let nodes = dp.chunk_nodes(hash)?;
        if !crate::upload::present_fragments(dp, *hash, &nodes).await.into_iter().all(|p| p) {
            missing.push(*hash);
        }
    }
    Ok(missing)
}
