//! The mover: carries one user's metadata from one shard group to another
//! while the user keeps working, and finishes or rolls back moves whose mover
//! died. The steps and why they are safe are in `docs/architecture.md`
//! ("Moving a user"); the shards' side is `tessera_meta::model::user_move`,
//! the cluster group's `tessera_meta::cluster::user_moves`.
//!
//! The cluster group's move record decides: while it says `Copying` the user
//! lives on the source and the move can only be given up (`Aborting`); once it
//! says `Committed` the user lives on the target and the move can only be
//! finished. Every step is idempotent, so any process may run the rest of a
//! move again after a crash.

use std::time::{Duration, Instant};

use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, MoveState, UserMove};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::user_move::{sort_for_import, ExportCursor};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery};
use tessera_meta::user_placement::UserPlacement;

use crate::datapath::now_ms;
use crate::error::RouterError;

/// A record as a move sends it: key and value (`None`: the record is gone).
type Record = (Vec<u8>, Option<Vec<u8>>);

/// Records asked of the source per export page, by default.
const EXPORT_PAGE: usize = 256;
/// Bytes of records per import command (one Raft entry).
const IMPORT_BATCH_BYTES: usize = 1 << 20;
/// How often a running move tells the cluster group it is alive.
const TOUCH_EVERY: Duration = Duration::from_secs(5);
/// Replay passes before the fence: each copies what the user wrote during the
/// one before, so the backlog shrinks until a pass copies at most
/// [`CATCH_UP_ENOUGH`] keys (or the passes run out under a write rate the copy
/// cannot outpace; the fenced pass then takes the rest).
const CATCH_UP_PASSES: usize = 8;
const CATCH_UP_ENOUGH: usize = 64;
/// A move not touched for this long is taken over by a router (see [`recover_stale`]).
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// How a move runs.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Who runs it (shown in status pages).
    pub by: String,
    /// Records asked of the source per export page: smaller pages make a
    /// move gentler on a busy group (and slower).
    pub page_records: usize,
}

impl MoveOptions {
    pub fn by(by: &str) -> Self {
        Self { by: by.to_owned(), page_records: EXPORT_PAGE }
    }
}

/// How far a move got, for progress lines and the final report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MoveProgress {
    pub user_id: String,
    pub from: u64,
    pub to: u64,
    pub records: u64,
    pub bytes: u64,
    /// Records written during the copy and copied again with the user fenced.
    pub replayed: u64,
    /// How long the user's writes waited: from the fence to the target serving.
    pub fenced_ms: u64,
    pub elapsed_ms: u64,
}

/// How a move taken over after its mover stopped ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Recovery {
    /// It had committed: the source copy was dropped, the user lives on the target.
    Finished,
    /// It had not: the target copy was dropped, the user lives on the source.
    RolledBack,
}

async fn cluster_query(meta: &MetaClient, q: ClusterQuery) -> Result<ClusterAnswer, RouterError> {
    match meta.query(0, &GroupQuery::Cluster(q)).await? {
        GroupAnswer::Cluster(a) => Ok(a),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

async fn cluster_step(meta: &MetaClient, cmd: ClusterCommand) -> Result<(), RouterError> {
    match meta.propose(0, &GroupCommand::Cluster(cmd)).await?.0 {
        GroupResponse::Cluster(Ok(_)) => Ok(()),
        GroupResponse::Cluster(Err(e)) => Err(e.into()),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

/// Proposes a move step on a shard group; returns the records it touched.
async fn shard_step(meta: &MetaClient, group: u64, cmd: ShardCommand) -> Result<u64, RouterError> {
    match meta.propose(group, &GroupCommand::Shard(cmd)).await?.0 {
        GroupResponse::Shard(Ok(tessera_meta::model::ShardResponse::UserMoveStep { records })) => Ok(records),
        GroupResponse::Shard(Ok(other)) => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        GroupResponse::Shard(Err(e)) => Err(e.into()),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

/// The move in progress for `user_id`, if any.
pub async fn move_of(meta: &MetaClient, user_id: &str) -> Result<Option<UserMove>, RouterError> {
    Ok(moves_in_progress(meta).await?.into_iter().find(|m| m.user_id == user_id))
}

/// Every move the cluster group records.
pub async fn moves_in_progress(meta: &MetaClient) -> Result<Vec<UserMove>, RouterError> {
    match cluster_query(meta, ClusterQuery::UserMoves).await? {
        ClusterAnswer::UserMoves(m) => Ok(m),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

/// How many moves have committed since the cluster began (GC's mark phase
/// compares it before and after listing the groups).
pub async fn moves_committed(meta: &MetaClient) -> Result<u64, RouterError> {
    match cluster_query(meta, ClusterQuery::MovesCommitted).await? {
        ClusterAnswer::MovesCommitted(n) => Ok(n),
        other => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

/// Where users live now, as the cluster group says.
pub async fn user_placement(meta: &MetaClient) -> Result<UserPlacement, RouterError> {
    let ClusterAnswer::ShardMap(groups) = cluster_query(meta, ClusterQuery::ShardMap).await? else {
        return Err(RouterError::Metadata("shard map query answered something else".into()));
    };
    let ClusterAnswer::Assignments(assignments) = cluster_query(meta, ClusterQuery::Assignments).await? else {
        return Err(RouterError::Metadata("assignment query answered something else".into()));
    };
    let ring: Vec<(u64, u32)> = groups.iter().map(|g| (g.group_id, g.vnodes)).collect();
    Ok(UserPlacement::new(&ring, assignments))
}

/// The group `user_id` lives on now.
pub async fn group_of(meta: &MetaClient, user_id: &str) -> Result<u64, RouterError> {
    user_placement(meta)
        .await?
        .group_for_user(user_id)
        .ok_or_else(|| RouterError::Unavailable("the shard map has no groups".into()))
}

/// Moves `user_id` to group `to`, calling `progress` after each copied page.
/// On an error before the commit the move is rolled back (best effort; if
/// that fails too, a router rolls it back once it is stale).
pub async fn move_user(
    meta: &MetaClient,
    user_id: &str,
    to: u64,
    options: &MoveOptions,
    mut progress: impl FnMut(&MoveProgress),
) -> Result<MoveProgress, RouterError> {
    let from = group_of(meta, user_id).await?;
    if from == to {
        return Err(RouterError::InvalidArgument(format!("user {user_id} lives on group {to} already")));
    }
    let now = now_ms();
    let record = UserMove {
        user_id: user_id.to_owned(),
        move_id: format!("{:016x}", rand::random::<u64>()),
        from,
        to,
        state: MoveState::Copying,
        started_at_ms: now,
        touched_at_ms: now,
        copied_records: 0,
        copied_bytes: 0,
        by: options.by.clone(),
    };
    cluster_step(meta, ClusterCommand::BeginUserMove(record.clone())).await?;
    let started = Instant::now();
    let mut done = MoveProgress { user_id: user_id.to_owned(), from, to, ..Default::default() };
    let fenced = match copy(meta, &record, options.page_records.max(1), (&mut done, started), &mut progress).await {
        Ok(fenced) => fenced,
        Err(e) => {
            tracing::warn!(user = user_id, move_id = %record.move_id, error = %e, "user move failed; rolling back");
            if let Err(r) = roll_back(meta, &record).await {
                tracing::warn!(user = user_id, error = %r, "rollback failed; a router finishes it once the move is stale");
            }
            return Err(e);
        }
    };
    // The decision: from here on the user lives on `to`.
    cluster_step(meta, ClusterCommand::CommitUserMove { user_id: user_id.to_owned(), move_id: record.move_id.clone() })
        .await?;
    hand_over(meta, &record).await?;
    done.fenced_ms = fenced.elapsed().as_millis() as u64;
    clean_up(meta, &record).await?;
    done.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(done)
}

/// Copies every record of the user to the target while the user works on,
/// then fences the source and replays what changed meanwhile; returns when
/// the fence began.
async fn copy(
    meta: &MetaClient,
    m: &UserMove,
    page_records: usize,
    (done, started): (&mut MoveProgress, Instant),
    progress: &mut impl FnMut(&MoveProgress),
) -> Result<Instant, RouterError> {
    let (user_id, move_id) = (m.user_id.clone(), m.move_id.clone());
    shard_step(meta, m.from, ShardCommand::TrackUser { user_id: user_id.clone(), move_id: move_id.clone() }).await?;
    let mut cursor: Option<ExportCursor> = None;
    let mut begun = false;
    let mut touched = Instant::now();
    loop {
        let q = GroupQuery::Shard(ShardQuery::ExportUser {
            user_id: user_id.clone(),
            cursor: cursor.clone(),
            limit: page_records,
        });
        let page = match meta.query(m.from, &q).await? {
            GroupAnswer::Shard(Ok(QueryResponse::UserExport(page))) => page,
            GroupAnswer::Shard(Err(e)) => return Err(e.into()),
            other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        };
        if !begun {
            let cmd = ShardCommand::BeginImport {
                user_id: user_id.clone(),
                move_id: move_id.clone(),
                next_entry_id: page.next_entry_id,
            };
            shard_step(meta, m.to, cmd).await?;
            begun = true;
        }
        let records = page.records.into_iter().map(|(k, v)| (k, Some(v))).collect();
        import(meta, m, records, done).await?;
        done.elapsed_ms = started.elapsed().as_millis() as u64;
        progress(done);
        if touched.elapsed() >= TOUCH_EVERY {
            let cmd = ClusterCommand::TouchUserMove {
                user_id: user_id.clone(),
                move_id: move_id.clone(),
                at_ms: now_ms(),
                records: done.records,
                bytes: done.bytes,
            };
            cluster_step(meta, cmd).await?;
            touched = Instant::now();
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    // The user has worked on meanwhile: catch up with what it wrote while it
    // goes on writing, until little is left; then stop its writes and replay
    // only that remainder, so the fence lasts as long as the last few writes
    // take to copy, not the whole backlog.
    let before = done.records;
    let mut after = None;
    for _ in 0..CATCH_UP_PASSES {
        if replay_pass(meta, m, &mut after, done).await? <= CATCH_UP_ENOUGH {
            break;
        }
    }
    let fenced = Instant::now();
    shard_step(meta, m.from, ShardCommand::FenceUser { user_id: user_id.clone(), move_id: move_id.clone() }).await?;
    while replay_pass(meta, m, &mut after, done).await? > 0 {}
    done.replayed = done.records - before;
    progress(done);
    Ok(fenced)
}

/// Sends records to the target in import commands of about [`IMPORT_BATCH_BYTES`].
async fn import(
    meta: &MetaClient,
    m: &UserMove,
    records: Vec<Record>,
    done: &mut MoveProgress,
) -> Result<(), RouterError> {
    for batch in batches(records) {
        done.records += batch.len() as u64;
        done.bytes += batch.iter().map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64).sum::<u64>();
        let cmd =
            ShardCommand::ImportRecords { user_id: m.user_id.clone(), move_id: m.move_id.clone(), records: batch };
        shard_step(meta, m.to, cmd).await?;
    }
    Ok(())
}

/// One replay pass: copies again every record written since `after` in the
/// source's written-key log (with its value now, or as deleted), moves
/// `after` past them, and raises the target's file-id counter past every id
/// the source handed out; returns how many keys it copied. Safe while the
/// user still writes: a key written after its value was read is logged again
/// and copied by a later pass (the last one runs fenced).
async fn replay_pass(
    meta: &MetaClient,
    m: &UserMove,
    after: &mut Option<u64>,
    done: &mut MoveProgress,
) -> Result<usize, RouterError> {
    const PAGE: usize = 1000;
    let mut written: Vec<Record> = Vec::new();
    let next_entry_id = loop {
        let q = GroupQuery::Shard(ShardQuery::ExportWritten { user_id: m.user_id.clone(), after: *after, limit: PAGE });
        let page = match meta.query(m.from, &q).await? {
            GroupAnswer::Shard(Ok(QueryResponse::Written(page))) => page,
            GroupAnswer::Shard(Err(e)) => return Err(e.into()),
            other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        };
        let Some(last) = page.last else { break page.next_entry_id };
        *after = Some(last);
        written.extend(page.records);
    };
    let begin = ShardCommand::BeginImport { user_id: m.user_id.clone(), move_id: m.move_id.clone(), next_entry_id };
    shard_step(meta, m.to, begin).await?;
    // A key logged on two pages: its value now is the same on both; keep one.
    let mut seen = std::collections::HashSet::new();
    written.reverse();
    written.retain(|(k, _)| seen.insert(k.clone()));
    let keys = written.len();
    if keys > 0 {
        sort_for_import(&m.user_id, &mut written);
        import(meta, m, written, done).await?;
    }
    Ok(keys)
}

/// Splits records into import commands of about [`IMPORT_BATCH_BYTES`].
fn batches(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    let (mut batch, mut bytes) = (Vec::new(), 0);
    for (k, v) in records {
        bytes += k.len() + v.as_ref().map_or(0, Vec::len);
        batch.push((k, v));
        if bytes >= IMPORT_BATCH_BYTES {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

/// After the commit: drop the source copy (before the target serves, so two
/// groups never both serve the user), open the target, forget the move.
async fn finish(meta: &MetaClient, m: &UserMove) -> Result<(), RouterError> {
    hand_over(meta, m).await?;
    clean_up(meta, m).await
}

/// After the commit: the source sends the user on (its first drop page leaves
/// the `Gone` marker), then the target serves it. Writes wait only this long.
async fn hand_over(meta: &MetaClient, m: &UserMove) -> Result<(), RouterError> {
    let (user_id, move_id) = (m.user_id.clone(), m.move_id.clone());
    let drop = ShardCommand::DropUser { user_id: user_id.clone(), move_id: move_id.clone(), to: m.to };
    shard_step(meta, m.from, drop).await?;
    shard_step(meta, m.to, ShardCommand::ActivateUser { user_id, move_id }).await?;
    Ok(())
}

/// With the user served by the target: drops the rest of the source copy, a
/// page per command, then closes the move record.
async fn clean_up(meta: &MetaClient, m: &UserMove) -> Result<(), RouterError> {
    let (user_id, move_id) = (m.user_id.clone(), m.move_id.clone());
    let drop = ShardCommand::DropUser { user_id: user_id.clone(), move_id: move_id.clone(), to: m.to };
    drop_all(meta, m.from, drop).await?;
    cluster_step(meta, ClusterCommand::FinishUserMove { user_id, move_id }).await
}

/// Repeats a paged drop (`DropUser`, `AbortImport`) until a page removes nothing.
async fn drop_all(meta: &MetaClient, group: u64, cmd: ShardCommand) -> Result<(), RouterError> {
    while shard_step(meta, group, cmd.clone()).await? > 0 {}
    Ok(())
}

/// Gives up a move that has not committed: the decision first (refused if the
/// move committed meanwhile), then the target copy, then the source fence.
async fn roll_back(meta: &MetaClient, m: &UserMove) -> Result<(), RouterError> {
    let (user_id, move_id) = (m.user_id.clone(), m.move_id.clone());
    cluster_step(meta, ClusterCommand::AbortUserMove { user_id: user_id.clone(), move_id: move_id.clone() }).await?;
    let abort = ShardCommand::AbortImport { user_id: user_id.clone(), move_id: move_id.clone(), from: m.from };
    // The first page marks the target copy gone; the user works on at the
    // source at once, and the rest of the copy goes afterwards.
    shard_step(meta, m.to, abort.clone()).await?;
    shard_step(meta, m.from, ShardCommand::UnfenceUser { user_id: user_id.clone(), move_id: move_id.clone() }).await?;
    drop_all(meta, m.to, abort).await?;
    cluster_step(meta, ClusterCommand::FinishUserMove { user_id, move_id }).await
}

/// Runs the rest of a move whose mover stopped: finishes it if it committed,
/// rolls it back otherwise.
pub async fn recover(meta: &MetaClient, m: &UserMove) -> Result<Recovery, RouterError> {
    match m.state {
        MoveState::Committed => finish(meta, m).await.map(|()| Recovery::Finished),
        MoveState::Copying | MoveState::Aborting => roll_back(meta, m).await.map(|()| Recovery::RolledBack),
    }
}

/// Recovers every move untouched for `stale_after`.
pub async fn recover_stale(meta: &MetaClient, stale_after: Duration) -> Result<Vec<(UserMove, Recovery)>, RouterError> {
    let now = now_ms();
    let mut recovered = Vec::new();
    for m in moves_in_progress(meta).await? {
        let touched = m.touched_at_ms.max(m.started_at_ms);
        if now.saturating_sub(touched) < stale_after.as_millis() as i64 {
            continue;
        }
        tracing::warn!(user = %m.user_id, move_id = %m.move_id, state = ?m.state, by = %m.by, "taking over a stale user move");
        let how = recover(meta, &m).await?;
        tracing::info!(user = %m.user_id, move_id = %m.move_id, outcome = ?how, "stale user move recovered");
        recovered.push((m, how));
    }
    Ok(recovered)
}

/// Every router looks for stale moves every `every` (the steps are
/// idempotent, so two routers taking over the same move do no harm).
pub fn spawn_recovery(meta: std::sync::Arc<MetaClient>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = recover_stale(&meta, STALE_AFTER).await {
                tracing::warn!(error = %e, "recovering stale user moves failed");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_by_size_and_keep_every_record_in_order() {
        let records: Vec<Record> =
            (0u32..10).map(|i| (i.to_be_bytes().to_vec(), Some(vec![0u8; IMPORT_BATCH_BYTES / 3]))).collect();
        let out = batches(records.clone());
        assert_eq!(out.len(), 4);
        assert_eq!(out.concat(), records);
        assert!(batches(Vec::new()).is_empty());
    }
}
