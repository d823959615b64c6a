//! Garbage collection: give back the space of chunks nothing references any more.
//!
//! A pass is a mark-and-sweep over the whole cluster, run in the background (a
//! router's `[gc]` job or `tessera admin gc run`), never on a request's path:
//!
//! 1. **expire**: every shard drops upload sessions past their expiry, purges
//!    files and folders deleted longer ago than the trash retention (their
//!    references go with them) and trims change-log events older than the
//!    change-log retention;
//! 2. **mark**: every shard lists the chunks it references (`ListChunks`, a
//!    linearizable read, paged); the union is the mark set. If any shard cannot
//!    be read the pass stops: an incomplete mark could delete a needed chunk;
//! 3. **sweep**: every block node lists its fragments (`ListFragments`, paged);
//!    fragments of unmarked chunks are deleted with a *conditional* delete that
//!    the node carries out only if the chunk was not touched (stored, or found
//!    by an exact `BatchHas`) within `grace + time since the mark began`.
//!
//! Why this never deletes a chunk still needed (the full argument is in
//! `docs/architecture.md`): a reference the mark missed was committed after the
//! mark began; the upload that committed it touched the chunk on every node
//! holding it no more than [`crate::upload::RECONFIRM_AFTER`] before its commit
//! (it re-checks, touching, when it took longer), so the touch is younger than
//! the window and the node refuses the delete. Open upload sessions and
//! multipart parts hold references of their own and are marked.
//!
//! The sweep's position is recorded in the cluster group after every page, so a
//! pass interrupted by a crash resumes there (with a fresh mark) instead of
//! walking every node again; deletes are paced by `max_deletes_per_sec`.

pub mod background;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tessera_block::FragmentKey;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, GcRecord};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery, ShardResponse};
use tessera_proto::ChunkHash;

use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;

/// Default time a chunk must have gone untouched before it may be deleted.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// Deleted files stay restorable this long by default (then GC purges them).
pub const DEFAULT_TRASH_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Change-feed events are kept this long by default: a device offline for
/// longer resyncs in full (comparing hashes, so unchanged files stay put).
pub const DEFAULT_CHANGE_LOG_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// The smallest grace accepted: it must cover an upload's commit after its last touch.
pub const MIN_GRACE: Duration = Duration::from_secs(3);
const MAX_ERRORS: usize = 20;

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub grace: Duration,
    /// Fragments per `ListFragments` page (and per conditional delete), and
    /// chunk references per page of the mark phase.
    pub page: u32,
    /// Upper bound on fragment deletes per second (0 = unpaced).
    pub max_deletes_per_sec: u64,
    /// Continue an interrupted pass's sweep from its recorded position.
    pub resume: bool,
    /// Who runs the pass, for the record.
    pub by: String,
    /// Deleted files and folders older than this are purged for good (`None`: the
    /// trash is kept until purged by hand).
    pub trash_retention: Option<Duration>,
    /// Change-log events older than this are trimmed (`None`: kept for ever).
    pub change_log_retention: Option<Duration>,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            page: 1000,
            max_deletes_per_sec: 0,
            resume: true,
            by: "cli".into(),
            trash_retention: Some(DEFAULT_TRASH_RETENTION),
            change_log_retention: Some(DEFAULT_CHANGE_LOG_RETENTION),
        }
    }
}

fn push_error(record: &mut GcRecord, message: String) {
    tracing::warn!(error = %message, "garbage collection");
    if record.errors.len() < MAX_ERRORS {
        record.errors.push(message);
    }
}

async fn last_record(dp: &DataPath) -> Result<Option<GcRecord>, RouterError> {
    match dp.view.meta.query(0, &GroupQuery::Cluster(ClusterQuery::LastGc)).await? {
        GroupAnswer::Cluster(ClusterAnswer::LastGc(r)) => Ok(r),
        other => Err(RouterError::Metadata(format!("unexpected answer to LastGc: {other:?}"))),
    }
}

/// The latest pass's record, for `tessera admin gc status`.
pub async fn status(dp: &DataPath) -> Result<Option<GcRecord>, RouterError> {
    last_record(dp).await
}

async fn save(dp: &DataPath, record: &mut GcRecord) -> Result<(), RouterError> {
    record.updated_at_ms = now_ms();
    match dp.view.meta.propose(0, &GroupCommand::Cluster(ClusterCommand::RecordGc(record.clone()))).await? {
        (GroupResponse::Cluster(Ok(_)), _) => Ok(()),
        (other, _) => Err(RouterError::Metadata(format!("GC record not kept: {other:?}"))),
    }
}

/// Proposes `cmd` to shard group `group` (GC works per group, not per user).
async fn shard_command(dp: &DataPath, group: u64, cmd: ShardCommand) -> Result<ShardResponse, RouterError> {
    match dp.view.meta.propose(group, &GroupCommand::Shard(cmd)).await? {
        (GroupResponse::Shard(Ok(r)), _) => Ok(r),
        (GroupResponse::Shard(Err(e)), _) => Err(e.into()),
        (other, _) => Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    }
}

async fn expire_sessions(dp: &DataPath, group: u64) -> Result<u64, RouterError> {
    let mut removed = 0;
    loop {
        match shard_command(dp, group, ShardCommand::ExpireSessions { now_ms: now_ms() }).await? {
            ShardResponse::SessionsExpired { removed: n, more } => {
                removed += n;
                if !more {
                    return Ok(removed);
                }
            }
            other => return Err(RouterError::Metadata(format!("unexpected answer to ExpireSessions: {other:?}"))),
        }
    }
}

/// Purges a shard's trash older than `retention`, a page of entries per command;
/// returns the entries purged.
async fn empty_trash(dp: &DataPath, group: u64, retention: Duration) -> Result<u64, RouterError> {
    let deleted_before_ms = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let (mut after, mut purged) = (None, 0);
    loop {
        let cmd = GroupCommand::Shard(ShardCommand::PurgeExpiredTrash { after, deleted_before_ms, limit: 1000 });
        match dp.view.meta.propose(group, &cmd).await? {
            (GroupResponse::Shard(Ok(ShardResponse::TrashPurged(page))), _) => {
                purged += page.purged_entries;
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(purged),
                }
            }
            (GroupResponse::Shard(Err(e)), _) => return Err(e.into()),
            (other, _) => {
                return Err(RouterError::Metadata(format!("unexpected answer to PurgeExpiredTrash: {other:?}")))
            }
        }
    }
}

/// Trims a shard's change logs of events older than `retention`, a page of
/// events per command; returns the events removed.
async fn trim_change_log(dp: &DataPath, group: u64, retention: Duration) -> Result<u64, RouterError> {
    let before_ms = now_ms() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let (mut from, mut removed) = (None, 0);
    loop {
        match shard_command(dp, group, ShardCommand::TrimChangeLog { from, before_ms, limit: 1000 }).await? {
            ShardResponse::ChangeLogTrimmed(page) => {
                removed += page.removed;
                match page.next {
                    Some(next) => from = Some(next),
                    None => return Ok(removed),
                }
            }
            other => return Err(RouterError::Metadata(format!("unexpected answer to TrimChangeLog: {other:?}"))),
        }
    }
}

/// The newest zero-ref log cursor of a shard and how many entries it holds.
async fn zero_ref_head(dp: &DataPath, group: u64) -> Result<(u64, u64), RouterError> {
    let (mut cursor, mut count) = (0, 0);
    loop {
        let q = GroupQuery::Shard(ShardQuery::ZeroRefsAfter { after_cursor: cursor, limit: 10_000 });
        match dp.view.meta.query(group, &q).await? {
            GroupAnswer::Shard(Ok(QueryResponse::ZeroRefs(page))) => {
                count += page.items.len() as u64;
                cursor = page.next_cursor;
                if !page.has_more {
                    return Ok((cursor, count));
                }
            }
            GroupAnswer::Shard(Err(e)) => return Err(e.into()),
            other => return Err(RouterError::Metadata(format!("unexpected answer to ZeroRefsAfter: {other:?}"))),
        }
    }
}

async fn trim_zero_refs(dp: &DataPath, group: u64, through_cursor: u64) -> Result<(), RouterError> {
    loop {
        match shard_command(dp, group, ShardCommand::TrimZeroRefLog { through_cursor }).await? {
            ShardResponse::ZeroRefLogTrimmed { more, .. } => {
                if !more {
                    return Ok(());
                }
            }
            other => return Err(RouterError::Metadata(format!("unexpected answer to TrimZeroRefLog: {other:?}"))),
        }
    }
}

/// Every chunk any shard references.
async fn mark(
    dp: &DataPath,
    page: u32,
    record: &mut GcRecord,
    report: &mut impl FnMut(&GcRecord),
) -> Result<HashSet<ChunkHash>, RouterError> {
    // A move that commits while the groups are listed can take a user's
    // references off its source after the source was listed and before the
    // target was; such a mark is incomplete.
    let moves_before = crate::user_move::moves_committed(&dp.view.meta).await?;
    let mut marked = HashSet::new();
    for shard in dp.view.placement().shards() {
        let mut after = None;
        loop {
            let (hashes, more) = crate::repair::chunk_page(dp, shard.group_id, after, page.max(1) as usize).await?;
            after = hashes.last().map(|h| h.0);
            marked.extend(hashes);
            if !more {
                break;
            }
        }
        record.shards_marked += 1;
        record.chunks_referenced = marked.len() as u64;
        report(record);
    }
    if crate::user_move::moves_committed(&dp.view.meta).await? != moves_before {
        return Err(RouterError::Unavailable(
            "a user moved between shard groups while GC listed them; run GC again".into(),
        ));
    }
    Ok(marked)
}

fn parse_key(hex_key: &str) -> Option<FragmentKey> {
    let bytes = hex::decode(hex_key).ok()?;
    let (hash, index) = bytes.split_at_checked(32)?;
    FragmentKey::from_wire(hash, u32::from(*index.first()?)).ok()
}

/// One pass. `report` sees the record after every page; the record is also kept
/// in the cluster group as the pass runs.
pub async fn run(
    dp: &DataPath,
    options: &GcOptions,
    mut report: impl FnMut(&GcRecord),
) -> Result<GcRecord, RouterError> {
    if options.grace < MIN_GRACE {
        return Err(RouterError::InvalidArgument(format!(
            "a GC grace of {:?} is too short; the minimum is {:?}",
            options.grace, MIN_GRACE
        )));
    }
    // Taken before anything is read: the deletion window counts from here.
    let began = Instant::now();
    dp.view.refresh().await?;
    let placement = dp.view.placement();
    let previous = if options.resume { last_record(dp).await? } else { None };
    let resume_at = previous
        .filter(|r| r.finished_at_ms.is_none() && r.sweep_node.is_some())
        .map(|r| (r.sweep_node.unwrap_or_default(), r.sweep_after.as_deref().and_then(parse_key)));
    let mut nodes: Vec<_> = placement.block_nodes().to_vec();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut record = GcRecord {
        started_at_ms: now_ms(),
        by: options.by.clone(),
        phase: "expire".into(),
        grace_ms: u64::try_from(options.grace.as_millis()).unwrap_or(u64::MAX),
        shards_total: placement.shards().len() as u64,
        nodes_total: nodes.len() as u64,
        ..Default::default()
    };
    save(dp, &mut record).await?;

    let mut zero_ref_heads = Vec::new();
    for shard in placement.shards() {
        record.sessions_expired += expire_sessions(dp, shard.group_id).await?;
        if let Some(retention) = options.trash_retention {
            record.trash_entries_purged += empty_trash(dp, shard.group_id, retention).await?;
        }
        if let Some(retention) = options.change_log_retention {
            record.change_events_trimmed += trim_change_log(dp, shard.group_id, retention).await?;
        }
        let (head, count) = zero_ref_head(dp, shard.group_id).await?;
        record.chunks_dereferenced += count;
        zero_ref_heads.push((shard.group_id, head));
    }
    record.phase = "mark".into();
    report(&record);
    let marked = match mark(dp, options.page, &mut record, &mut report).await {
        Ok(m) => m,
        Err(e) => {
            record.phase = "failed".into();
            push_error(&mut record, format!("mark incomplete, nothing deleted: {e}"));
            save(dp, &mut record).await?;
            return Err(e);
        }
    };

    record.phase = "sweep".into();
    save(dp, &mut record).await?;
    let pool = &dp.view.pool;
    // A recorded node that has left the cluster: sweep everything.
    let mut skipping = resume_at.as_ref().map(|(node, _)| node.clone()).filter(|id| nodes.iter().any(|n| &n.id == id));
    for node in &nodes {
        let mut after = None;
        if let Some(resume_node) = &skipping {
            if &node.id != resume_node {
                record.nodes_swept += 1;
                continue;
            }
            after = resume_at.as_ref().and_then(|(_, key)| *key);
            skipping = None;
            record.resumed_on = Some(node.id.clone());
            tracing::info!(node = %node.id, "garbage collection resumes an interrupted sweep");
        }
        let client = match pool.client(node) {
            Ok(c) => c,
            Err(e) => {
                record.nodes_unreachable.push(node.id.clone());
                push_error(&mut record, format!("block node {}: {e}", node.id));
                continue;
            }
        };
        loop {
            let (page, more) = match client.list_fragments(after.as_ref(), options.page.max(1)).await {
                Ok(p) => p,
                Err(e) => {
                    record.nodes_unreachable.push(node.id.clone());
                    push_error(&mut record, format!("block node {} not swept: {}", node.id, e.message()));
                    break;
                }
            };
            record.fragments_examined += page.len() as u64;
            after = page.last().map(|f| f.key);
            let garbage: Vec<FragmentKey> =
                page.iter().filter(|f| !marked.contains(&f.key.chunk)).map(|f| f.key).collect();
            if !garbage.is_empty() {
                record.fragments_unreferenced += garbage.len() as u64;
                let window = options.grace + began.elapsed();
                let paced = Instant::now();
                match client.delete_untouched(&garbage, window).await {
                    Ok(outcome) => {
                        record.fragments_deleted += outcome.deleted;
                        record.fragments_kept_recent += outcome.kept_recent;
                        record.bytes_freed += outcome.bytes_freed;
                        if outcome.deleted > 0 && options.max_deletes_per_sec > 0 {
                            let budget =
                                Duration::from_secs_f64(outcome.deleted as f64 / options.max_deletes_per_sec as f64);
                            tokio::time::sleep(budget.saturating_sub(paced.elapsed())).await;
                        }
                    }
                    Err(e) => {
                        push_error(&mut record, format!("block node {}: delete failed: {}", node.id, e.message()))
                    }
                }
            }
            record.sweep_node = Some(node.id.clone());
            record.sweep_after = after.map(|k| hex::encode(k.encode()));
            save(dp, &mut record).await?;
            report(&record);
            if !more {
                break;
            }
        }
        record.nodes_swept += 1;
    }

    // Every zero-ref entry older than the mark was handled by this sweep.
    for (group, head) in zero_ref_heads {
        if head > 0 {
            if let Err(e) = trim_zero_refs(dp, group, head).await {
                push_error(&mut record, format!("zero-ref log of group {group} not trimmed: {e}"));
            }
        }
    }
    record.phase = "done".into();
    record.finished_at_ms = Some(now_ms());
    record.sweep_node = None;
    record.sweep_after = None;
    save(dp, &mut record).await?;
    report(&record);
    Ok(record)
}
