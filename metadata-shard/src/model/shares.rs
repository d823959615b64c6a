//! Shares of files and folders with other users.
//!
//! The owner's shard keeps the share itself, keyed by (owner, path, grantee), so the
//! shares of a path are one prefix scan and an access check is one lookup per ancestor.
//! Shares follow their entry: a move rewrites the shares at and below the moved path,
//! a delete removes them (both report what changed so the service layer can update the
//! grantees' shards, which keep a "shared with me" entry under (grantee, owner, path)).

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::codec::{decode, encode, get_decoded};
use super::command::Tx;
use super::kv::{KvRead, KvWrite};
use super::namespace;
use super::paths::{self, validate_non_root};
use super::types::validate_user_id;
use super::{keys, ModelError};

/// Ordered weakest to strongest, so the strongest of several shares is the max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    View,
    Edit,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub owner: String,
    pub path: String,
    pub grantee: String,
    pub permission: Permission,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// Expired when `now_ms >= expires_at_ms` (the same rule for shares, links and sessions).
pub(crate) fn is_expired(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    expires_at_ms.is_some_and(|at| now_ms >= at)
}

impl Share {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        is_expired(self.expires_at_ms, now_ms)
    }
}

/// A share whose path changed with a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMove {
    pub grantee: String,
    pub old_path: String,
    pub new_path: String,
}

/// The grantee-side record of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedWithMe {
    pub grantee: String,
    pub owner: String,
    pub path: String,
    pub permission: Permission,
    pub expires_at_ms: Option<i64>,
    pub added_at_ms: i64,
}

fn check_expiry(expires_at_ms: Option<i64>, now_ms: i64) -> Result<(), ModelError> {
    if is_expired(expires_at_ms, now_ms) {
        return Err(ModelError::InvalidArgument("expiry is not in the future".into()));
    }
    Ok(())
}

/// Shares (or re-shares with a new permission/expiry) a live entry of `owner`.
pub(crate) fn share(
    tx: &mut Tx<'_>,
    owner: &str,
    path: &str,
    grantee: &str,
    permission: Permission,
    expires_at_ms: Option<i64>,
    origin: Origin<'_>,
) -> Result<Share, ModelError> {
    validate_user_id(owner)?;
    validate_user_id(grantee)?;
    validate_non_root(path)?;
    if owner == grantee {
        return Err(ModelError::InvalidArgument("cannot share with oneself".into()));
    }
    check_expiry(expires_at_ms, origin.now_ms)?;
    namespace::load_live(tx.kv, owner, path)?;
    let share = Share {
        owner: owner.to_string(),
        path: path.to_string(),
        grantee: grantee.to_string(),
        permission,
        expires_at_ms,
        created_at_ms: origin.now_ms,
    };
    tx.kv.put(&keys::share(owner, path, grantee), &encode(&share)?);
    changelog::append(tx.kv, owner, origin, NewEvent::new(ChangeKind::Share, path).peer(grantee))?;
    Ok(share)
}

pub(crate) fn unshare(
    tx: &mut Tx<'_>,
    owner: &str,
    path: &str,
    grantee: &str,
    origin: Origin<'_>,
) -> Result<Share, ModelError> {
    validate_user_id(owner)?;
    validate_user_id(grantee)?;
    validate_non_root(path)?;
    let key = keys::share(owner, path, grantee);
    let share: Share = get_decoded(tx.kv, &key, "share")?
        .ok_or_else(|| ModelError::NotFound(format!("share of {path} with {grantee}")))?;
    tx.kv.delete(&key);
    changelog::append(tx.kv, owner, origin, NewEvent::new(ChangeKind::Share, path).peer(grantee))?;
    Ok(share)
}

/// Shares of exactly `path`, by grantee.
pub fn list_shares(kv: &dyn KvRead, owner: &str, path: &str) -> Result<Vec<Share>, ModelError> {
    validate_user_id(owner)?;
    validate_non_root(path)?;
    let (start, end) = keys::shares_of_path(owner, path);
    let mut shares = Vec::new();
    scan_all(kv, start, end, |_, value| {
        shares.push(decode(value, "share")?);
        Ok(())
    })?;
    Ok(shares)
}

/// Scans a whole range in batches (used for the few shares/links of a subtree).
pub(crate) fn scan_all(
    kv: &dyn KvRead,
    start: Vec<u8>,
    end: Vec<u8>,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    const BATCH: usize = 256;
    let mut cursor = start;
    loop {
        let batch = kv.scan(&cursor, &end, BATCH)?;
        for (key, value) in &batch {
            visit(key, value)?;
        }
        match batch.last() {
            Some((last, _)) if batch.len() == BATCH => cursor = keys::key_successor(last),
            _ => return Ok(()),
        }
    }
}

/// Shares at `path` and below it.
fn shares_in_subtree(kv: &dyn KvRead, owner: &str, path: &str) -> Result<Vec<Share>, ModelError> {
    let mut shares = list_shares(kv, owner, path)?;
    let (start, end) = keys::shares_under(owner, &paths::descendant_prefix(path));
    scan_all(kv, start, end, |_, value| {
        shares.push(decode(value, "share")?);
        Ok(())
    })?;
    Ok(shares)
}

/// Moves the shares at and below `from` to the same places below `to`.
pub(crate) fn move_subtree(
    kv: &mut dyn KvWrite,
    owner: &str,
    from: &str,
    to: &str,
) -> Result<Vec<ShareMove>, ModelError> {
    let mut moved = Vec::new();
    for mut share in shares_in_subtree(kv, owner, from)? {
        kv.delete(&keys::share(owner, &share.path, &share.grantee));
        let new_path = paths::rebase(&share.path, from, to);
        let old_path = std::mem::replace(&mut share.path, new_path);
        kv.put(&keys::share(owner, &share.path, &share.grantee), &encode(&share)?);
        moved.push(ShareMove { grantee: share.grantee, old_path, new_path: share.path });
    }
    Ok(moved)
}

/// Removes the shares at and below `path` and returns them.
pub(crate) fn remove_subtree(kv: &mut dyn KvWrite, owner: &str, path: &str) -> Result<Vec<Share>, ModelError> {
    let shares = shares_in_subtree(kv, owner, path)?;
    for share in &shares {
        kv.delete(&keys::share(owner, &share.path, &share.grantee));
    }
    Ok(shares)
}

pub(crate) fn add_shared_with_me(
    tx: &mut Tx<'_>,
    grantee: &str,
    owner: &str,
    path: &str,
    permission: Permission,
    expires_at_ms: Option<i64>,
    origin: Origin<'_>,
) -> Result<SharedWithMe, ModelError> {
    validate_user_id(grantee)?;
    validate_user_id(owner)?;
    validate_non_root(path)?;
    let record = SharedWithMe {
        grantee: grantee.to_string(),
        owner: owner.to_string(),
        path: path.to_string(),
        permission,
        expires_at_ms,
        added_at_ms: origin.now_ms,
    };
    tx.kv.put(&keys::shared_with_me(grantee, owner, path), &encode(&record)?);
    changelog::append(tx.kv, grantee, origin, NewEvent::new(ChangeKind::Share, path).peer(owner))?;
    Ok(record)
}

pub(crate) fn remove_shared_with_me(
    tx: &mut Tx<'_>,
    grantee: &str,
    owner: &str,
    path: &str,
    origin: Origin<'_>,
) -> Result<SharedWithMe, ModelError> {
    validate_user_id(grantee)?;
    validate_user_id(owner)?;
    validate_non_root(path)?;
    let key = keys::shared_with_me(grantee, owner, path);
    let record: SharedWithMe = get_decoded(tx.kv, &key, "shared-with-me")?
        .ok_or_else(|| ModelError::NotFound(format!("{path} of {owner} shared with {grantee}")))?;
    tx.kv.delete(&key);
    changelog::append(tx.kv, grantee, origin, NewEvent::new(ChangeKind::Share, path).peer(owner))?;
    Ok(record)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedWithMePage {
    /// Ordered by (owner, path).
    pub entries: Vec<SharedWithMe>,
    /// Pass as `start_after` for the next page.
    pub next_start_after: Option<(String, String)>,
}

/// Everything shared with `grantee` (expired entries included: their expiry is shown).
pub fn list_shared_with_me(
    kv: &dyn KvRead,
    grantee: &str,
    start_after: Option<(&str, &str)>,
    limit: usize,
) -> Result<SharedWithMePage, ModelError> {
    validate_user_id(grantee)?;
    let (scope_start, end) = keys::shared_with_me_scope(grantee);
    let start = match start_after {
        Some((owner, path)) => keys::key_successor(&keys::shared_with_me(grantee, owner, path)).max(scope_start),
        None => scope_start,
    };
    let mut rows = kv.scan(&start, &end, limit.saturating_add(1))?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let entries = rows.iter().map(|(_, v)| decode(v, "shared-with-me")).collect::<Result<Vec<SharedWithMe>, _>>()?;
    let next_start_after = if truncated { entries.last().map(|e| (e.owner.clone(), e.path.clone())) } else { None };
    Ok(SharedWithMePage { entries, next_start_after })
}
