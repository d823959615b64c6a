//! Upload: stream → FastCDC chunks → dedup check → Reed–Solomon → fragments
//! in parallel to their block nodes → one metadata commit.
//!
//! Memory stays bounded whatever the file size: the chunker holds at most one
//! maximum-size chunk, and at most `parallel_chunks` chunks (with their
//! fragments) are in flight. A version is committed only after every
//! fragment of every new chunk is acknowledged durable by its node.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tessera_block::client::FragmentCode;
use tessera_block::FragmentKey;
use tessera_meta::command::{GroupCommand, GroupResponse};
use tessera_meta::model::versions::{CommitOutcome, CommitVersion, ConflictPolicy};
use tessera_meta::model::{ChunkRef, ObjectMeta, ShardCommand, ShardResponse};
use tessera_proto::ChunkHash;

use crate::codec::hash::ContentHasher;
use crate::codec::{Chunk, Chunker};
use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::placement::BlockNodeInfo;

/// Who writes what, and how to treat a stale base version.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// Whose namespace the file is in (the owner, for a grantee's write).
    pub user_id: String,
    /// Who writes it (kept with the version).
    pub created_by: String,
    pub path: String,
    pub device_id: String,
    pub base_version: Option<u64>,
    pub policy: ConflictPolicy,
    /// Headers to keep with the version; an empty etag becomes the content's hex MD5.
    pub meta: ObjectMeta,
}

/// What an upload did (the CLI prints this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadReport {
    pub path: String,
    pub version: u64,
    pub size: u64,
    pub content_sha256: String,
    pub chunks_total: u64,
    pub chunks_uploaded: u64,
    pub chunks_deduped: u64,
    /// Bytes of new chunk data actually sent to block nodes.
    pub bytes_transferred: u64,
    pub conflict: bool,
    pub conflict_path: Option<String>,
}

struct StoredChunk {
    hash: ChunkHash,
    size: u64,
    uploaded: bool,
}

/// Which of the chunk's placement nodes hold their fragment (index = fragment
/// number). Bloom mirrors answer first: a "no" is certain; every "maybe" is
/// confirmed with an exact `BatchHas`. Unreachable and suspect nodes count as
/// missing (their fragment is then written to a fallback node).
pub async fn present_fragments(dp: &DataPath, hash: ChunkHash, nodes: &[BlockNodeInfo]) -> Vec<bool> {
    let pool = &dp.view.pool;
    let checks = nodes.iter().enumerate().map(|(i, node)| async move {
        dp.counters.bloom_checks.inc();
        if !pool.may_hold(node, &hash) || pool.is_suspect(node) {
            return false;
        }
        let Ok(client) = pool.client(node) else { return false };
        let result = client.batch_has(&[hash]).await;
        pool.note_result(node, &result);
        match result {
            Ok(held) => {
                let present = held.first().is_some_and(|idx| idx.contains(&(i as u8)));
                if !present {
                    dp.counters.bloom_false_positives.inc();
                }
                present
            }
            Err(_) => false,
        }
    });
    futures::future::join_all(checks).await
}

/// Makes sure the fragments of `chunk` are on distinct block nodes; returns
/// whether any data had to be sent.
///
/// A fragment goes to its placement node; when that node fails (or recently
/// failed: a suspect), it goes to the next fallback node of the chunk's
/// ranking instead, so writes keep full redundancy while a node is out as long
/// as the cluster has spare nodes. Reads find displaced fragments, and
/// `tessera admin rebalance` moves them back.
///
/// With no spare left, a fragment is left out: the chunk counts as stored once
/// the write quorum (default k+1) of its k+m fragments is durable, so one more
/// node may fail after the acknowledgement and the chunk stays readable. Such a
/// chunk is under-replicated until repair writes the rest (when the node is back,
/// or after it is removed and rebalance places its share elsewhere). Below the
/// quorum the upload fails and nothing is acknowledged.
pub async fn store_chunk(dp: &DataPath, hash: ChunkHash, data: Bytes) -> Result<bool, RouterError> {
    let ranking = dp.chunk_ranking(&hash)?;
    let (nodes, fallbacks) = ranking.split_at(dp.fragments_per_chunk());
    let pool = &dp.view.pool;
    let present = present_fragments(dp, hash, nodes).await;
    let missing: Vec<usize> = present.iter().enumerate().filter(|(_, p)| !**p).map(|(i, _)| i).collect();
    if missing.is_empty() {
        return Ok(false);
    }
    let code = dp.code.clone();
    let chunk_len = data.len() as u64;
    let fragments = tokio::task::spawn_blocking(move || code.encode(&data))
        .await
        .map_err(|e| RouterError::Unavailable(format!("encoder task failed: {e}")))?
        .map_err(|e| RouterError::Integrity(e.to_string()))?;
    let fc = FragmentCode {
        data_shards: dp.config.data_shards as u8,
        parity_shards: dp.config.parity_shards as u8,
        chunk_len,
    };
    let spares: Mutex<VecDeque<&BlockNodeInfo>> =
        Mutex::new(fallbacks.iter().filter(|n| !pool.is_suspect(n)).collect());
    let next_spare = || spares.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
    // The node each fragment is being sent to: one still unanswered after the
    // quorum gets it again in the background.
    let targets: Mutex<Vec<Option<BlockNodeInfo>>> = Mutex::new(vec![None; nodes.len()]);
    let aim = |i: usize, node: &BlockNodeInfo| {
        targets.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(node.clone());
    };
    let puts: FuturesUnordered<_> = missing
        .iter()
        .map(|&i| {
            let fragment = fragments[i].clone();
            let key = FragmentKey::new(hash, i as u8);
            let (next_spare, aim) = (&next_spare, &aim);
            async move {
                let mut target = &nodes[i];
                if pool.is_suspect(target) {
                    match next_spare() {
                        Some(spare) => target = spare,
                        // A node known to be down is not waited for again.
                        None => return (i, Err(format!("block node {} ({}) is down", target.id, target.endpoint))),
                    }
                }
                loop {
                    aim(i, target);
                    let result = match pool.client(target) {
                        Ok(client) => client.put_fragment(&key, fc, fragment.clone()).await,
                        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
                    };
                    pool.note_result(target, &result);
                    match result {
                        Ok(_) => {
                            pool.note_stored(target, &hash);
                            if target.id != nodes[i].id {
                                dp.counters.fragments_displaced.inc();
                            }
                            return (i, Ok(()));
                        }
                        Err(s) => {
                            tracing::warn!(node = %target.id, chunk = %hash, index = i, error = %s.message(), "fragment not stored; trying a fallback node");
                            match next_spare() {
                                Some(spare) => target = spare,
                                None => {
                                    let why = format!(
                                        "block node {} ({}) did not store fragment {i}: {}",
                                        target.id,
                                        target.endpoint,
                                        s.message()
                                    );
                                    return (i, Err(why));
                                }
                            }
                        }
                    }
                }
            }
        })
        .collect();
    let all = dp.fragments_per_chunk();
    let quorum = dp.write_quorum();
    let present = all - missing.len();
    let spare_left = || !spares.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
    let outcome = await_quorum(puts, &missing, (present, quorum), spare_left).await;
    let mut failures = outcome.failures;
    for i in outcome.abandoned {
        let Some(node) = targets.lock().unwrap_or_else(|p| p.into_inner())[i].clone() else { continue };
        failures.push(format!("block node {} ({}) did not answer in time for fragment {i}", node.id, node.endpoint));
        // Sent again in the background: a slow node still gets its fragment (full
        // redundancy after all), a hung one fails it and becomes a suspect.
        let (view, fragment) = (dp.view.clone(), fragments[i].clone());
        tokio::spawn(async move {
            let Ok(client) = view.pool.client(&node) else { return };
            let result = client.put_fragment(&FragmentKey::new(hash, i as u8), fc, fragment).await;
            view.pool.note_result(&node, &result);
            if result.is_ok() {
                view.pool.note_stored(&node, &hash);
            }
        });
    }
    if failures.is_empty() {
        return Ok(true);
    }
    let stored = all - failures.len();
    if stored < quorum {
        return Err(RouterError::Unavailable(format!(
            "chunk {hash}: only {stored} of {all} fragments stored and {quorum} are needed, with no other node to \
             take the rest ({})",
            failures.join("; ")
        )));
    }
    dp.counters.chunks_stored_degraded.inc();
    tracing::warn!(chunk = %hash, stored, of = all, quorum, missing = %failures.join("; "), "chunk stored under-replicated (write quorum met); repair completes it");
    Ok(stored > present)
}

/// Shortest wait for the last fragments once the write quorum is durable; the
/// wait is four times the time the quorum took if that is longer (a loaded
/// machine). Fragments still unanswered then are sent again in the background.
const STRAGGLER_WAIT: Duration = Duration::from_secs(5);

/// What the fragment writes of one chunk came to.
struct PutOutcome {
    failures: Vec<String>,
    /// Fragments still unanswered when the wait for stragglers ran out.
    abandoned: Vec<usize>,
}

/// Collects the fragment writes `(index, result)` of the fragments `sent`. Once
/// `present` plus the stored ones reach `quorum`, the rest get
/// [`STRAGGLER_WAIT`] (or four times the time so far) before they are given up:
/// a hung node must not hold every write up until its connection times out.
/// While a spare node is left, the writes are waited for instead: a failed one
/// then moves to the spare (full redundancy).
async fn await_quorum<F>(
    mut puts: FuturesUnordered<F>,
    sent: &[usize],
    (present, quorum): (usize, usize),
    spare_left: impl Fn() -> bool,
) -> PutOutcome
where
    F: std::future::Future<Output = (usize, Result<(), String>)>,
{
    let started = Instant::now();
    let mut stored = present;
    let mut failures = Vec::new();
    let mut answered = Vec::new();
    let mut cutoff: Option<tokio::time::Instant> = None;
    loop {
        let next = match cutoff {
            None => puts.next().await,
            Some(at) => match tokio::time::timeout_at(at, puts.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((i, result)) = next else { break };
        answered.push(i);
        match result {
            Ok(()) => stored += 1,
            Err(why) => failures.push(why),
        }
        if stored >= quorum && cutoff.is_none() && !puts.is_empty() && !spare_left() {
            cutoff = Some(tokio::time::Instant::now() + STRAGGLER_WAIT.max(started.elapsed() * 4));
        }
    }
    let abandoned = sent.iter().copied().filter(|i| !answered.contains(i)).collect();
    PutOutcome { failures, abandoned }
}

async fn store(dp: Arc<DataPath>, chunk: Chunk) -> Result<StoredChunk, RouterError> {
    let size = chunk.data.len() as u64;
    let uploaded = store_chunk(&dp, chunk.hash, chunk.data).await?;
    Ok(StoredChunk { hash: chunk.hash, size, uploaded })
}

/// Content whose chunks are all durable on their block nodes, not yet part of any
/// version: what a commit (or a multipart part) records.
#[derive(Debug, Clone)]
pub struct StoredContent {
    pub chunks: Vec<ChunkRef>,
    pub size: u64,
    pub sha256: [u8; 32],
    pub md5: [u8; 16],
    pub chunks_uploaded: u64,
    /// Bytes of new chunk data actually sent to block nodes.
    pub bytes_transferred: u64,
    /// When the data path began storing (and so touching) these chunks; `None`
    /// for content taken from an existing version (a copy), never touched.
    pub first_touch: Option<Instant>,
}

/// An upload that took longer than this since its first touch re-checks (and so
/// touches again) every chunk before it commits: garbage collection only spares
/// chunks touched within its grace, which must exceed this plus a commit's latency.
pub const RECONFIRM_AFTER: Duration = Duration::from_secs(1);

impl StoredContent {
    /// Content whose chunks come from an existing version (server-side copies).
    pub fn from_version(chunks: Vec<ChunkRef>, size: u64, sha256: [u8; 32], md5: [u8; 16]) -> Self {
        Self { chunks, size, sha256, md5, chunks_uploaded: 0, bytes_transferred: 0, first_touch: None }
    }

    /// Makes sure every chunk is still stored, and touches it, when the last touch
    /// may be too old for garbage collection's grace. Called right before the
    /// commit that makes the chunks referenced.
    pub async fn keep_alive(&self, dp: &DataPath) -> Result<(), RouterError> {
        if self.first_touch.is_some_and(|t| t.elapsed() < RECONFIRM_AFTER) {
            return Ok(());
        }
        let hashes: Vec<ChunkHash> =
            self.chunks.iter().map(|c| ChunkHash(c.hash)).collect::<BTreeSet<_>>().into_iter().collect();
        let placement = dp.view.placement();
        let tiers = dp.tiers();
        for batch in hashes.chunks(1000) {
            // Every node is asked (a fallback node may hold a displaced fragment,
            // a colder tier a moved chunk), so the exact checks touch every copy.
            let held = crate::repair::Holdings::fetch(dp, &placement, batch).await;
            for (row, hash) in batch.iter().enumerate() {
                if !tiers.tiers().iter().any(|tier| held.readable_in(tier, row)) {
                    return Err(RouterError::Unavailable(format!(
                        "chunk {hash} is no longer stored ({} fragments found): its last reference went while \
                         this upload ran; retry the upload",
                        held.distinct_indices(row)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Chunks `body`, stores every chunk not already stored, and returns the chunk list
/// with the content's SHA-256 and MD5 (the MD5 is S3's ETag).
pub async fn store_content<S, E>(dp: &Arc<DataPath>, mut body: S) -> Result<StoredContent, RouterError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<RouterError>,
{
    let mut chunker = Some(Chunker::new(dp.config.chunker).map_err(|e| RouterError::InvalidArgument(e.to_string()))?);
    let mut hasher = ContentHasher::default();
    let mut md5 = Md5::new();
    let mut in_flight = FuturesOrdered::new();
    let mut stored: Vec<StoredChunk> = Vec::new();
    let mut ready = Vec::new();
    let parallel = dp.config.parallel_chunks.max(1);
    let mut size = 0u64;
    let first_touch = Instant::now();
    loop {
        let piece = body.next().await;
        let done = piece.is_none();
        match piece {
            Some(Ok(bytes)) => {
                hasher.update(&bytes);
                md5.update(&bytes);
                size += bytes.len() as u64;
                if let Some(c) = chunker.as_mut() {
                    c.push(&bytes, &mut ready);
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                if let Some(c) = chunker.take() {
                    c.finish(&mut ready);
                }
            }
        }
        for chunk in ready.drain(..) {
            while in_flight.len() >= parallel {
                if let Some(r) = in_flight.next().await {
                    stored.push(r?);
                }
            }
            in_flight.push_back(store(dp.clone(), chunk));
        }
        if done {
            break;
        }
    }
    while let Some(r) = in_flight.next().await {
        stored.push(r?);
    }
    let chunks_uploaded = stored.iter().filter(|c| c.uploaded).count() as u64;
    let bytes_transferred = stored.iter().filter(|c| c.uploaded).map(|c| c.size).sum();
    dp.counters.chunks_uploaded.inc_by(chunks_uploaded);
    dp.counters.chunks_deduped.inc_by(stored.len() as u64 - chunks_uploaded);
    dp.counters.bytes_uploaded.inc_by(bytes_transferred);
    Ok(StoredContent {
        chunks: stored.iter().map(|c| ChunkRef { hash: c.hash.0, size: c.size }).collect(),
        size,
        sha256: hasher.finish(),
        md5: md5.finalize().into(),
        chunks_uploaded,
        bytes_transferred,
        first_touch: Some(first_touch),
    })
}

/// Uploads `body` as a new version of `req.path`.
pub async fn upload<S, E>(dp: &Arc<DataPath>, req: &UploadRequest, body: S) -> Result<UploadReport, RouterError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<RouterError>,
{
    // Resolve the shard first: no point storing chunks for a user nobody serves.
    dp.view.shard_of(&req.user_id)?;
    let content = store_content(dp, body).await?;
    let mut meta = req.meta.clone();
    if meta.etag.is_empty() {
        meta.etag = hex::encode(content.md5);
    }
    let outcome = commit(dp, req, &content, meta).await?;
    Ok(UploadReport {
        path: outcome.path,
        version: outcome.version,
        size: content.size,
        content_sha256: hex::encode(content.sha256),
        chunks_total: content.chunks.len() as u64,
        chunks_uploaded: content.chunks_uploaded,
        chunks_deduped: content.chunks.len() as u64 - content.chunks_uploaded,
        bytes_transferred: content.bytes_transferred,
        conflict: outcome.conflict,
        conflict_path: outcome.conflict_path,
    })
}

/// Commits stored content as the next version of `req.path`.
pub async fn commit(
    dp: &DataPath,
    req: &UploadRequest,
    content: &StoredContent,
    meta: ObjectMeta,
) -> Result<CommitOutcome, RouterError> {
    content.keep_alive(dp).await?;
    let cmd = GroupCommand::Shard(ShardCommand::CommitVersion(CommitVersion {
        user_id: req.user_id.clone(),
        path: req.path.clone(),
        size: content.size,
        content_sha256: content.sha256,
        chunks: content.chunks.clone(),
        device_id: req.device_id.clone(),
        created_by: req.created_by.clone(),
        base_version: req.base_version,
        policy: req.policy,
        now_ms: crate::datapath::now_ms(),
        meta,
    }));
    let proposed = dp.view.propose_for_user(&req.user_id, &cmd).await;
    dp.view.cache.invalidate(&req.user_id);
    match proposed? {
        GroupResponse::Shard(Ok(ShardResponse::Committed(c))) => Ok(c),
        GroupResponse::Shard(Err(e)) => Err(e.into()),
        other => Err(RouterError::Metadata(format!("unexpected commit answer {other:?}"))),
    }
}
