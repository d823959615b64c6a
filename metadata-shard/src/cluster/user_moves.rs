//! Where users live, as cluster state: explicit user → group assignments, user
//! moves in progress, and the checks that keep shard-map changes from
//! stranding anyone's data.
//!
//! A user's data is in exactly one group, the one [`UserPlacement`] names. The
//! cluster group refuses every command that would change that group for any
//! user except [`ClusterCommand::CommitUserMove`](super::ClusterCommand), which
//! the mover proposes only once the target holds a complete copy (see "Moving
//! a user" in `docs/architecture.md`). Adding a group is therefore done by
//! pinning the users the new ring would hand to it (an assignment to the group
//! they are on), adding the group, and moving them one by one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{decode, json, lookup, scan_all, shard_map, user_key, ClusterCommand, ClusterResponse, ShardGroup, User};
use crate::command::{ApplyError, ApplyErrorKind, StorageFailure};
use crate::raft::state_machine::GroupView;
use crate::user_placement::UserPlacement;

/// A user move as the cluster group records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserMove {
    pub user_id: String,
    /// Chosen by the mover; every step of one move carries it.
    pub move_id: String,
    pub from: u64,
    pub to: u64,
    pub state: MoveState,
    pub started_at_ms: i64,
    /// When the mover last showed it is alive ([`ClusterCommand::TouchUserMove`]);
    /// a move untouched for long is finished or rolled back by a router.
    #[serde(default)]
    pub touched_at_ms: i64,
    /// Records and bytes copied so far, as of the last touch (for status pages).
    #[serde(default)]
    pub copied_records: u64,
    #[serde(default)]
    pub copied_bytes: u64,
    /// Who runs it ("cli", "router 127.0.0.1:7000").
    pub by: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum MoveState {
    /// The source is fenced and the target is being filled; the user still lives on `from`.
    Copying,
    /// The user lives on `to`; the source copy is being dropped.
    Committed,
    /// The move was given up before it committed; the user lives on `from`
    /// and the target's partial copy is being dropped. Commit is refused
    /// from here on, so a mover that wakes up late cannot commit it.
    Aborting,
}

pub(super) const MOVES_COMMITTED: &[u8] = b"moves/committed";

pub(super) fn assignment_key(user: &str) -> Vec<u8> {
    format!("assign/{user}").into_bytes()
}

pub(super) fn move_key(user: &str) -> Vec<u8> {
    format!("move/{user}").into_bytes()
}

/// Every explicit assignment ("assign0" is the first key after every "assign/…" key).
pub fn assignments(view: &GroupView<'_>) -> Result<BTreeMap<String, u64>, StorageFailure> {
    view.scan(b"assign/", b"assign0", usize::MAX)?
        .into_iter()
        .map(|(k, v)| {
            let user = String::from_utf8_lossy(&k[b"assign/".len()..]).into_owned();
            decode::<u64>(&k, &v).map(|group| (user, group))
        })
        .collect()
}

/// Every move in progress.
pub fn user_moves(view: &GroupView<'_>) -> Result<Vec<UserMove>, StorageFailure> {
    scan_all(view, b"move/", b"move0")
}

/// How many moves have committed since the cluster began: GC's mark phase
/// compares it before and after listing the groups, since a move that commits
/// in between can drop the source copy after the source was listed and before
/// the target was.
pub fn moves_committed(view: &GroupView<'_>) -> Result<u64, StorageFailure> {
    Ok(lookup::<u64>(view, MOVES_COMMITTED)?.unwrap_or(0))
}

/// The user placement of the cluster group's current state.
pub fn user_placement(view: &GroupView<'_>) -> Result<UserPlacement, StorageFailure> {
    Ok(placement_of(&shard_map(view)?, assignments(view)?))
}

pub(super) fn placement_of(groups: &[ShardGroup], assignments: BTreeMap<String, u64>) -> UserPlacement {
    let ring: Vec<(u64, u32)> = groups.iter().map(|g| (g.group_id, g.vnodes)).collect();
    UserPlacement::new(&ring, assignments)
}

fn all_user_ids(view: &GroupView<'_>) -> Result<Vec<String>, StorageFailure> {
    Ok(scan_all::<User>(view, b"user/", b"user0")?.into_iter().map(|u| u.user_id).collect())
}

fn refused(kind: ApplyErrorKind, message: String) -> Result<(), ApplyError> {
    Err(ApplyError::new(kind, message))
}

/// Refuses a shard map (or assignment) change that would put any user on
/// another group than the one holding its data.
pub(super) fn check_no_user_moves(
    view: &GroupView<'_>,
    before: &UserPlacement,
    after: &UserPlacement,
    what: &str,
) -> Result<Result<(), ApplyError>, StorageFailure> {
    let mut moved = Vec::new();
    for user in all_user_ids(view)? {
        let (old, new) = (before.group_for_user(&user), after.group_for_user(&user));
        // A user of a map without groups has no data anywhere yet.
        if old.is_some() && old != new {
            moved.push(user);
        }
    }
    if moved.is_empty() {
        return Ok(Ok(()));
    }
    let sample: Vec<&str> = moved.iter().take(5).map(String::as_str).collect();
    Ok(refused(
        ApplyErrorKind::InvalidArgument,
        format!(
            "{what} would put {} user(s) ({}{}) on a group that does not hold their data; \
             pin them to their group first or move them (`tessera admin shard add` and \
             `tessera admin user move` do this)",
            moved.len(),
            sample.join(", "),
            if moved.len() > sample.len() { ", ..." } else { "" }
        ),
    ))
}

/// Checks that removing `group_id` strands nothing the cluster group knows of.
pub(super) fn check_group_removable(
    view: &GroupView<'_>,
    group_id: u64,
) -> Result<Result<(), ApplyError>, StorageFailure> {
    let groups = shard_map(view)?;
    let placement = placement_of(&groups, assignments(view)?);
    if let Some(m) = user_moves(view)?.into_iter().find(|m| m.from == group_id || m.to == group_id) {
        return Ok(refused(
            ApplyErrorKind::InvalidArgument,
            format!("shard group {group_id} takes part in the move of user {}; finish it first", m.user_id),
        ));
    }
    let users: Vec<String> =
        all_user_ids(view)?.into_iter().filter(|u| placement.group_for_user(u) == Some(group_id)).collect();
    if !users.is_empty() {
        return Ok(refused(
            ApplyErrorKind::InvalidArgument,
            format!(
                "shard group {group_id} still holds {} user(s) (first: {}); drain it first (`tessera admin shard drain {group_id}`)",
                users.len(),
                users[0]
            ),
        ));
    }
    if placement.chunk_record_group() == Some(group_id) && groups.len() > 1 {
        return Ok(refused(
            ApplyErrorKind::InvalidArgument,
            format!("shard group {group_id} keeps the chunk location records of storage tiering; it is removed last"),
        ));
    }
    Ok(Ok(()))
}

/// The record of move `move_id` of `user_id`: `None` if the user has no
/// move, refused if it is in another one.
fn this_move(
    view: &GroupView<'_>,
    user_id: &str,
    move_id: &str,
) -> Result<Result<Option<UserMove>, ApplyError>, StorageFailure> {
    Ok(match lookup::<UserMove>(view, &move_key(user_id))? {
        Some(m) if m.move_id != move_id => Err(ApplyError::new(
            ApplyErrorKind::NotFound,
            format!("user {user_id} is in move {}, not {move_id}", m.move_id),
        )),
        found => Ok(found),
    })
}

fn no_move(user_id: &str, move_id: &str) -> ApplyError {
    ApplyError::new(ApplyErrorKind::NotFound, format!("no move {move_id} of user {user_id}"))
}

fn conflict(message: String) -> ApplyError {
    ApplyError::new(ApplyErrorKind::Conflict, message)
}

type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Stores a move record.
fn put_move(writes: &mut Writes, m: &UserMove) -> Result<ClusterResponse, ApplyError> {
    writes.insert(move_key(&m.user_id), Some(json(m)?));
    Ok(ClusterResponse::Done)
}

/// Applies the commands about where users live: assignments and moves.
pub(super) fn apply(
    view: &GroupView<'_>,
    cmd: &ClusterCommand,
    writes: &mut Writes,
) -> Result<Result<ClusterResponse, ApplyError>, StorageFailure> {
    Ok(match cmd {
        ClusterCommand::AssignUser { user_id, group_id } => {
            let before = user_placement(view)?;
            let mut assigned = before.assignments().clone();
            match group_id {
                Some(g) => assigned.insert(user_id.clone(), *g),
                None => assigned.remove(user_id),
            };
            let after = placement_of(&shard_map(view)?, assigned);
            if view.get(&user_key(user_id))?.is_none() {
                Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no user {user_id}")))
            } else if group_id.is_some_and(|g| !before.groups().contains(&g)) {
                Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no shard group {}", group_id.unwrap_or(0))))
            } else if before.group_for_user(user_id) != after.group_for_user(user_id) {
                Err(ApplyError::new(
                    ApplyErrorKind::InvalidArgument,
                    format!("that assignment would put user {user_id} on a group that does not hold its data; move it instead"),
                ))
            } else {
                let value = group_id.map(|g| json(&g)).transpose();
                value.map(|value| {
                    writes.insert(assignment_key(user_id), value);
                    ClusterResponse::Done
                })
            }
        }
        ClusterCommand::BeginUserMove(m) => {
            let placement = user_placement(view)?;
            match lookup::<UserMove>(view, &move_key(&m.user_id))? {
                Some(e) if e.move_id == m.move_id => Ok(ClusterResponse::Done),
                Some(e) => Err(ApplyError::new(
                    ApplyErrorKind::AlreadyExists,
                    format!("user {} is already moving ({} → {}, move {})", e.user_id, e.from, e.to, e.move_id),
                )),
                None if view.get(&user_key(&m.user_id))?.is_none() => {
                    Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no user {}", m.user_id)))
                }
                None if !placement.groups().contains(&m.to) => {
                    Err(ApplyError::new(ApplyErrorKind::NotFound, format!("no shard group {}", m.to)))
                }
                None if placement.group_for_user(&m.user_id) != Some(m.from) => {
                    Err(conflict(format!("user {} does not live on group {}", m.user_id, m.from)))
                }
                None if m.from == m.to || m.state != MoveState::Copying => Err(ApplyError::new(
                    ApplyErrorKind::InvalidArgument,
                    format!("user {} lives on group {} already", m.user_id, m.to),
                )),
                None => put_move(writes, m),
            }
        }
        ClusterCommand::CommitUserMove { user_id, move_id } => match this_move(view, user_id, move_id)? {
            Err(e) => Err(e),
            Ok(None) => Err(no_move(user_id, move_id)),
            Ok(Some(m)) if m.state == MoveState::Committed => Ok(ClusterResponse::Done),
            Ok(Some(m)) if m.state == MoveState::Aborting => {
                Err(conflict(format!("move {move_id} of user {user_id} was given up; it cannot commit")))
            }
            Ok(Some(mut m)) => {
                // The decision: the user lives on `to` from this entry on.
                m.state = MoveState::Committed;
                let on_ring = user_placement(view)?.ring_group_for(user_id) == Some(m.to);
                let committed = moves_committed(view)? + 1;
                (|| {
                    let assignment = if on_ring { None } else { Some(json(&m.to)?) };
                    writes.insert(assignment_key(user_id), assignment);
                    writes.insert(MOVES_COMMITTED.to_vec(), Some(json(&committed)?));
                    put_move(writes, &m)
                })()
            }
        },
        ClusterCommand::TouchUserMove { user_id, move_id, at_ms, records, bytes } => {
            match this_move(view, user_id, move_id)? {
                Err(e) => Err(e),
                Ok(None) => Err(no_move(user_id, move_id)),
                Ok(Some(mut m)) => {
                    m.touched_at_ms = m.touched_at_ms.max(*at_ms);
                    m.copied_records = m.copied_records.max(*records);
                    m.copied_bytes = m.copied_bytes.max(*bytes);
                    put_move(writes, &m)
                }
            }
        }
        ClusterCommand::AbortUserMove { user_id, move_id } => match this_move(view, user_id, move_id)? {
            Err(e) => Err(e),
            Ok(None) => Ok(ClusterResponse::Done),
            Ok(Some(m)) if m.state == MoveState::Committed => {
                Err(conflict(format!("move {move_id} of user {user_id} has committed; it can only be finished")))
            }
            Ok(Some(mut m)) => {
                m.state = MoveState::Aborting;
                put_move(writes, &m)
            }
        },
        ClusterCommand::FinishUserMove { user_id, move_id } => match this_move(view, user_id, move_id)? {
            Err(e) => Err(e),
            Ok(None) => Ok(ClusterResponse::Done),
            Ok(Some(m)) if m.state == MoveState::Copying => {
                Err(conflict(format!("move {move_id} of user {user_id} is still copying; commit or abort it first")))
            }
            Ok(Some(_)) => {
                writes.insert(move_key(user_id), None);
                Ok(ClusterResponse::Done)
            }
        },
        other => {
            Err(ApplyError::new(ApplyErrorKind::InvalidArgument, format!("not a user placement command: {other:?}")))
        }
    })
}
