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

use super::{decode, lookup, scan_all, shard_map, ShardGroup, User};
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
