//! The cluster group's (group 0) state: nodes, the shard map, users and their
//! access keys, the tiering configuration, and the placement epoch that
//! changes whenever the set of block nodes (or their labels, or the tiering
//! configuration) does; with [`user_moves`], where every user lives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{ApplyError, ApplyErrorKind, StorageFailure, Writes};
use crate::raft::state_machine::GroupView;
pub use crate::tiering::TieringConfig;

pub mod user_moves;
pub use user_moves::{MoveState, UserMove};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum NodeKind {
    Meta,
    Block,
    Router,
}

impl NodeKind {
    fn tag(self) -> &'static str {
        match self {
            NodeKind::Meta => "meta",
            NodeKind::Block => "block",
            NodeKind::Router => "router",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    pub kind: NodeKind,
    pub id: String,
    pub addr: String,
    pub zone: String,
    /// Free-form labels of a block node; tiering uses them to place the node in
    /// a tier (`TierSpec::label`). Changing them bumps the placement epoch.
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShardGroup {
    pub group_id: u64,
    /// `tessera-meta` node ids hosting a replica.
    pub replicas: Vec<u64>,
    /// Ring positions the shard owns: routers place `shard-{group_id}-{i}`
    /// for i in 0..vnodes on the consistent-hash ring of user ids, so a
    /// larger value gives the shard a larger share of users.
    pub vnodes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    pub display_name: String,
    pub access_key: String,
    pub secret_key: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterCommand {
    RegisterNode(NodeInfo),
    RemoveNode {
        kind: NodeKind,
        id: String,
    },
    PutShardGroup(ShardGroup),
    RemoveShardGroup {
        group_id: u64,
    },
    CreateUser(User),
    /// Keeps the outcome of the latest repair or rebalance pass.
    RecordRepair(RepairRecord),
    /// Keeps the state of the latest garbage-collection pass (written as it runs).
    RecordGc(GcRecord),
    /// Sets (validated first) or, with `None`, clears the tiering configuration;
    /// bumps the placement epoch. Answers `ClusterResponse::Epoch` with the new epoch.
    SetTiering(Option<TieringConfig>),
    /// Keeps the state of the latest tiering pass (written as it runs).
    RecordTierPass(TierPassRecord),
    /// Sets (or, with `None`, clears) a user's explicit group assignment; refused
    /// when that would change the group the user lives on (only a move may).
    AssignUser {
        user_id: String,
        group_id: Option<u64>,
    },
    /// Records the start of a move (state `Copying`); the user stays on `from`.
    /// Idempotent for the same move id.
    BeginUserMove(UserMove),
    /// The target holds a complete copy: the user now lives on `to` (explicit
    /// assignment unless the ring says `to` anyway). Idempotent.
    CommitUserMove {
        user_id: String,
        move_id: String,
    },
    /// The mover is alive: sets the move's `touched_at_ms` and progress.
    TouchUserMove {
        user_id: String,
        move_id: String,
        at_ms: i64,
        records: u64,
        bytes: u64,
    },
    /// The copy that lost (the source's after a commit, the target's after an
    /// abort) is gone: forgets the move.
    FinishUserMove {
        user_id: String,
        move_id: String,
    },
    /// Gives up a move that has not committed (state `Aborting`); the user
    /// stays where it was. Refused once the move committed.
    AbortUserMove {
        user_id: String,
        move_id: String,
    },
}

/// A tiering pass (demoting cold chunks, promoting read ones) as it runs and when
/// it ended: what `tessera admin tier status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TierPassRecord {
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    /// Unset while the pass runs (or if it was interrupted).
    pub finished_at_ms: Option<i64>,
    /// Who runs it ("router 127.0.0.1:7000", "cli").
    pub by: String,
    /// "list", "move", "done" or "failed".
    pub phase: String,
    pub nodes_total: u64,
    pub nodes_listed: u64,
    pub chunks_examined: u64,
    /// Chunks moved to a colder tier.
    pub chunks_demoted: u64,
    /// Chunks moved back to the first tier because they were read.
    pub chunks_promoted: u64,
    /// Leftover copies removed from a tier the chunk's location record does not
    /// name (an interrupted or lost move).
    pub copies_cleaned: u64,
    /// Moves refused because the location record changed meanwhile (another mover won).
    pub moves_stale: u64,
    pub bytes_moved: u64,
    pub nodes_unreachable: Vec<String>,
    pub errors: Vec<String>,
}

/// A garbage-collection pass as it runs and when it ended: what `tessera admin gc
/// status` shows, and where an interrupted pass resumes its sweep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct GcRecord {
    pub started_at_ms: i64,
    pub updated_at_ms: i64,
    /// Unset while the pass runs (or if it was interrupted).
    pub finished_at_ms: Option<i64>,
    /// Who runs it ("router 127.0.0.1:7000", "cli").
    pub by: String,
    /// "expire" (sessions and trash), "mark", "sweep", "done" or "failed".
    pub phase: String,
    pub grace_ms: u64,
    pub shards_total: u64,
    pub shards_marked: u64,
    /// Chunks some shard references (the mark set).
    pub chunks_referenced: u64,
    /// Zero-ref log entries (chunks whose last reference went) since the last pass.
    pub chunks_dereferenced: u64,
    pub sessions_expired: u64,
    /// Deleted files and folders purged because their deletion passed the trash retention.
    #[serde(default)]
    pub trash_entries_purged: u64,
    /// Change-log events dropped because they passed the change-log retention.
    #[serde(default)]
    pub change_events_trimmed: u64,
    pub nodes_total: u64,
    pub nodes_swept: u64,
    pub fragments_examined: u64,
    /// Fragments of chunks no shard references.
    pub fragments_unreferenced: u64,
    pub fragments_deleted: u64,
    /// Unreferenced fragments kept because their chunk was touched within the grace.
    pub fragments_kept_recent: u64,
    pub bytes_freed: u64,
    pub nodes_unreachable: Vec<String>,
    /// The sweep's position: block node id and the last fragment key swept there
    /// (hex), so an interrupted pass resumes instead of starting over.
    pub sweep_node: Option<String>,
    pub sweep_after: Option<String>,
    /// Set when this pass continued an interrupted one's sweep: the node it resumed on.
    #[serde(default)]
    pub resumed_on: Option<String>,
    pub errors: Vec<String>,
}

/// The outcome of the latest repair or rebalance pass (by a router's background
/// job or `tessera admin repair|rebalance`): what `tessera admin status` reports
/// as under-replicated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct RepairRecord {
    pub finished_at_ms: i64,
    /// Who ran it ("router 127.0.0.1:7000", "cli").
    pub by: String,
    /// "repair" or "rebalance".
    pub mode: String,
    pub duration_ms: u64,
    pub chunks_examined: u64,
    pub chunks_repaired: u64,
    /// Chunks left with fewer fragments on their placement nodes than the code
    /// promises (a node unreachable, or too few fragments left).
    pub under_replicated: u64,
    pub chunks_lost: u64,
    pub fragments_rebuilt: u64,
    pub fragments_copied: u64,
    pub fragments_removed: u64,
    pub corrupt_fragments: u64,
    pub nodes_unreachable: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ClusterResponse {
    /// The placement epoch after the command.
    Epoch(u64),
    Done,
    UserCreated(String),
}

const EPOCH: &[u8] = b"epoch";
const LAST_REPAIR: &[u8] = b"repair/last";
const LAST_GC: &[u8] = b"gc/last";
const TIERING: &[u8] = b"tiering";
const LAST_TIER_PASS: &[u8] = b"tierpass/last";

fn node_key(kind: NodeKind, id: &str) -> Vec<u8> {
    format!("node/{}/{id}", kind.tag()).into_bytes()
}

fn group_key(id: u64) -> Vec<u8> {
    let mut k = b"group/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn user_key(id: &str) -> Vec<u8> {
    format!("user/{id}").into_bytes()
}

fn access_key_key(key: &str) -> Vec<u8> {
    format!("akey/{key}").into_bytes()
}

fn corrupt(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::new(ApplyErrorKind::Corrupt, e.to_string())
}

fn read<T: for<'de> Deserialize<'de>>(
    view: &GroupView<'_>,
    key: &[u8],
) -> Result<Result<Option<T>, ApplyError>, rocksdb::Error> {
    Ok(match view.get(key)? {
        Some(b) => serde_json::from_slice(&b).map(Some).map_err(corrupt),
        None => Ok(None),
    })
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, ApplyError> {
    serde_json::to_vec(v).map_err(corrupt)
}

/// A record of the cluster group that must decode: one that does not is an
/// error naming the key, never a record silently left out or taken as absent.
fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], bytes: &[u8]) -> Result<T, StorageFailure> {
    serde_json::from_slice(bytes).map_err(|e| {
        StorageFailure(format!("cluster group record {} cannot be decoded: {e}", String::from_utf8_lossy(key)))
    })
}

/// The record at `key`, if any (for reads: a record that does not decode is an error).
fn lookup<T: for<'de> Deserialize<'de>>(view: &GroupView<'_>, key: &[u8]) -> Result<Option<T>, StorageFailure> {
    view.get(key)?.map(|b| decode(key, &b)).transpose()
}

/// Every record with a key in `from..to`, decoded (for reads).
fn scan_all<T: for<'de> Deserialize<'de>>(
    view: &GroupView<'_>,
    from: &[u8],
    to: &[u8],
) -> Result<Vec<T>, StorageFailure> {
    view.scan(from, to, usize::MAX)?.into_iter().map(|(k, v)| decode(&k, &v)).collect()
}

pub fn epoch(view: &GroupView<'_>) -> Result<u64, StorageFailure> {
    Ok(lookup::<u64>(view, EPOCH)?.unwrap_or(0))
}

/// Applies a cluster command; returns its result and the writes to commit.
pub fn apply(
    view: &GroupView<'_>,
    cmd: &ClusterCommand,
) -> Result<(Result<ClusterResponse, ApplyError>, Writes), StorageFailure> {
    let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    // A placement epoch that does not decode refuses the commands that bump it
    // (deterministically on every replica) instead of restarting it from 0.
    let current_epoch = read::<u64>(view, EPOCH)?.map(|e| e.unwrap_or(0));
    let result = match cmd {
        ClusterCommand::RegisterNode(node) => {
            let key = node_key(node.kind, &node.id);
            match read::<NodeInfo>(view, &key)? {
                Err(e) => Err(e),
                Ok(existing) => {
                    let changed = existing.as_ref() != Some(node);
                    match current_epoch.clone().and_then(|e| json(node).map(|bytes| (e, bytes))) {
                        Err(err) => Err(err),
                        Ok((mut e, bytes)) => {
                            writes.insert(key, Some(bytes));
                            if changed && node.kind == NodeKind::Block {
                                e += 1;
                                writes.insert(EPOCH.to_vec(), Some(e.to_string().into_bytes()));
                            }
                            Ok(ClusterResponse::Epoch(e))
                        }
                    }
                }
            }
        }
        ClusterCommand::RemoveNode { kind, id } => {
            let key = node_key(*kind, id);
            if view.get(&key)?.is_none() {
                Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no {} node {id}", kind.tag())))
            } else {
                current_epoch.clone().map(|mut e| {
                    writes.insert(key, None);
                    if *kind == NodeKind::Block {
                        e += 1;
                        writes.insert(EPOCH.to_vec(), Some(e.to_string().into_bytes()));
                    }
                    ClusterResponse::Epoch(e)
                })
            }
        }
        ClusterCommand::PutShardGroup(g) => {
            let groups = shard_map(view)?;
            let assigned = user_moves::assignments(view)?;
            let before = user_moves::placement_of(&groups, assigned.clone());
            let mut new_groups: Vec<ShardGroup> = groups.into_iter().filter(|x| x.group_id != g.group_id).collect();
            new_groups.push(g.clone());
            let after = user_moves::placement_of(&new_groups, assigned);
            let what = format!("putting shard group {} with {} vnodes", g.group_id, g.vnodes);
            if g.group_id == 0 {
                Err(ApplyError::new(ApplyErrorKind::InvalidArgument, "group 0 is the cluster group"))
            } else {
                user_moves::check_no_user_moves(view, &before, &after, &what)?.and_then(|()| {
                    json(g).map(|bytes| {
                        writes.insert(group_key(g.group_id), Some(bytes));
                        ClusterResponse::Done
                    })
                })
            }
        }
        ClusterCommand::RemoveShardGroup { group_id } => {
            if view.get(&group_key(*group_id))?.is_none() {
                Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no shard group {group_id}")))
            } else {
                user_moves::check_group_removable(view, *group_id)?.map(|()| {
                    writes.insert(group_key(*group_id), None);
                    ClusterResponse::Done
                })
            }
        }
        ClusterCommand::AssignUser { .. }
        | ClusterCommand::BeginUserMove(_)
        | ClusterCommand::CommitUserMove { .. }
        | ClusterCommand::TouchUserMove { .. }
        | ClusterCommand::AbortUserMove { .. }
        | ClusterCommand::FinishUserMove { .. } => user_moves::apply(view, cmd, &mut writes)?,
        ClusterCommand::RecordRepair(record) => json(record).map(|bytes| {
            writes.insert(LAST_REPAIR.to_vec(), Some(bytes));
            ClusterResponse::Done
        }),
        ClusterCommand::RecordGc(record) => json(record).map(|bytes| {
            writes.insert(LAST_GC.to_vec(), Some(bytes));
            ClusterResponse::Done
        }),
        ClusterCommand::SetTiering(config) => {
            let encoded = match config {
                None => Ok(None),
                Some(c) => match c.validate() {
                    Err(message) => Err(ApplyError::new(ApplyErrorKind::InvalidArgument, message)),
                    Ok(()) => json(c).map(Some),
                },
            };
            match encoded.and_then(|value| current_epoch.clone().map(|e| (value, e + 1))) {
                Err(e) => Err(e),
                Ok((value, e)) => {
                    writes.insert(TIERING.to_vec(), value);
                    writes.insert(EPOCH.to_vec(), Some(e.to_string().into_bytes()));
                    Ok(ClusterResponse::Epoch(e))
                }
            }
        }
        ClusterCommand::RecordTierPass(record) => json(record).map(|bytes| {
            writes.insert(LAST_TIER_PASS.to_vec(), Some(bytes));
            ClusterResponse::Done
        }),
        ClusterCommand::CreateUser(u) => {
            if u.user_id.is_empty() || u.access_key.is_empty() || u.secret_key.len() < 8 {
                Err(ApplyError::new(
                    ApplyErrorKind::InvalidArgument,
                    "user id, access key and a secret of 8+ characters are required",
                ))
            } else if view.get(&user_key(&u.user_id))?.is_some() {
                Err(ApplyError::new(ApplyErrorKind::AlreadyExists, format!("user {} exists", u.user_id)))
            } else if view.get(&access_key_key(&u.access_key))?.is_some() {
                Err(ApplyError::new(ApplyErrorKind::AlreadyExists, "access key already in use"))
            } else {
                json(u).map(|bytes| {
                    writes.insert(user_key(&u.user_id), Some(bytes));
                    writes.insert(access_key_key(&u.access_key), Some(u.user_id.clone().into_bytes()));
                    ClusterResponse::UserCreated(u.user_id.clone())
                })
            }
        }
    };
    if result.is_err() {
        writes.clear();
    }
    Ok((result, writes.into_iter().collect()))
}

/// Looks up a user by access key (for request authentication).
pub fn user_by_access_key(view: &GroupView<'_>, access_key: &str) -> Result<Option<User>, StorageFailure> {
    let Some(user_id) = view.get(&access_key_key(access_key))? else {
        return Ok(None);
    };
    let user_id = String::from_utf8_lossy(&user_id).into_owned();
    lookup::<User>(view, &user_key(&user_id))
}

/// Every user, in id order ("user0" is the first key after every "user/…" key).
pub fn users(view: &GroupView<'_>) -> Result<Vec<UserSummary>, StorageFailure> {
    Ok(scan_all::<User>(view, b"user/", b"user0")?
        .into_iter()
        .map(|u| UserSummary { user_id: u.user_id, display_name: u.display_name, created_at_ms: u.created_at_ms })
        .collect())
}

/// All registered nodes of a kind, in id order.
pub fn nodes(view: &GroupView<'_>, kind: NodeKind) -> Result<Vec<NodeInfo>, StorageFailure> {
    let prefix = format!("node/{}/", kind.tag()).into_bytes();
    let mut end = prefix.clone();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    scan_all(view, &prefix, &end)
}

/// Reads of the cluster group's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClusterQuery {
    UserByAccessKey(String),
    Nodes(NodeKind),
    Epoch,
    ShardMap,
    LastRepair,
    LastGc,
    /// The tiering configuration (`None`: tiering is off).
    Tiering,
    LastTierPass,
    /// Every user (ids, names, creation time; never the secrets).
    Users,
    /// Explicit user → group assignments.
    Assignments,
    /// Moves in progress.
    UserMoves,
    /// How many moves have committed (GC compares it around its mark phase).
    MovesCommitted,
}

/// A user as the operator sees it: no access key, no secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub display_name: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ClusterAnswer {
    User(Option<User>),
    Nodes(Vec<NodeInfo>),
    Epoch(u64),
    ShardMap(Vec<ShardGroup>),
    LastRepair(Option<RepairRecord>),
    LastGc(Option<GcRecord>),
    Users(Vec<UserSummary>),
    Tiering(Option<TieringConfig>),
    LastTierPass(Option<TierPassRecord>),
    Assignments(BTreeMap<String, u64>),
    UserMoves(Vec<UserMove>),
    MovesCommitted(u64),
}

/// The tiering configuration, if one is set.
pub fn tiering(view: &GroupView<'_>) -> Result<Option<TieringConfig>, StorageFailure> {
    lookup::<TieringConfig>(view, TIERING)
}

/// Every shard group, by id.
pub fn shard_map(view: &GroupView<'_>) -> Result<Vec<ShardGroup>, StorageFailure> {
    // "group0" is the first key after every "group/…" key ('0' follows '/').
    scan_all(view, b"group/", b"group0")
}

pub fn query(view: &GroupView<'_>, q: &ClusterQuery) -> Result<ClusterAnswer, StorageFailure> {
    Ok(match q {
        ClusterQuery::UserByAccessKey(k) => ClusterAnswer::User(user_by_access_key(view, k)?),
        ClusterQuery::Nodes(kind) => ClusterAnswer::Nodes(nodes(view, *kind)?),
        ClusterQuery::Epoch => ClusterAnswer::Epoch(epoch(view)?),
        ClusterQuery::ShardMap => ClusterAnswer::ShardMap(shard_map(view)?),
        ClusterQuery::LastRepair => ClusterAnswer::LastRepair(lookup::<RepairRecord>(view, LAST_REPAIR)?),
        ClusterQuery::LastGc => ClusterAnswer::LastGc(lookup::<GcRecord>(view, LAST_GC)?),
        ClusterQuery::Users => ClusterAnswer::Users(users(view)?),
        ClusterQuery::Tiering => ClusterAnswer::Tiering(tiering(view)?),
        ClusterQuery::LastTierPass => ClusterAnswer::LastTierPass(lookup::<TierPassRecord>(view, LAST_TIER_PASS)?),
        ClusterQuery::Assignments => ClusterAnswer::Assignments(user_moves::assignments(view)?),
        ClusterQuery::UserMoves => ClusterAnswer::UserMoves(user_moves::user_moves(view)?),
        ClusterQuery::MovesCommitted => ClusterAnswer::MovesCommitted(user_moves::moves_committed(view)?),
    })
}
