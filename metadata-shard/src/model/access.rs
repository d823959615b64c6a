//! Access decisions: may user U do an action on path X of owner O at time T?
//! The owner may do anything; anyone else gets the strongest non-expired share on X or
//! on any folder above it (shares are inherited down the tree). The path need not exist
//! (creating a file inside a shared folder is a Write on a new path).

use serde::{Deserialize, Serialize};

use super::codec::get_decoded;
use super::kv::KvRead;
use super::paths::{self, validate_path};
use super::shares::{Permission, Share};
use super::types::validate_user_id;
use super::{keys, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Read,
    Write,
    Share,
}

impl Permission {
    /// View → Read; Edit → Read, Write; Admin → Read, Write, Share.
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::Read => true,
            Action::Write => self >= Permission::Edit,
            Action::Share => self == Permission::Admin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessDecision {
    pub allowed: bool,
    pub is_owner: bool,
    /// The strongest effective share permission (None for the owner or without a share).
    pub permission: Option<Permission>,
    /// Path of the share that grants `permission`.
    pub granted_on: Option<String>,
}

pub fn check_access(
    kv: &dyn KvRead,
    owner: &str,
    path: &str,
    user: &str,
    action: Action,
    now_ms: i64,
) -> Result<AccessDecision, ModelError> {
    validate_user_id(owner)?;
    validate_user_id(user)?;
    validate_path(path)?;
    if owner == user {
        return Ok(AccessDecision { allowed: true, is_owner: true, permission: None, granted_on: None });
    }
    let mut best: Option<(Permission, String)> = None;
    for candidate in paths::self_and_ancestors(path) {
        if paths::is_root(candidate) {
            continue; // the root cannot be shared
        }
        let share: Option<Share> = get_decoded(kv, &keys::share(owner, candidate, user), "share")?;
        if let Some(share) = share.filter(|s| !s.is_expired(now_ms)) {
            if best.as_ref().is_none_or(|(p, _)| share.permission > *p) {
                best = Some((share.permission, share.path));
            }
        }
    }
    let allowed = best.as_ref().is_some_and(|(p, _)| p.allows(action));
    let (permission, granted_on) = best.map_or((None, None), |(p, at)| (Some(p), Some(at)));
    Ok(AccessDecision { allowed, is_owner: false, permission, granted_on })
}

/// Fails with PermissionDenied unless `user` may do `action` on `path` of `owner` at
/// `now_ms`: commands a grantee makes on the owner's shard (session commits, restores)
/// re-check access in the command itself, so an unshare committed before them wins.
pub(crate) fn require(
    kv: &dyn KvRead,
    owner: &str,
    path: &str,
    user: &str,
    action: Action,
    now_ms: i64,
) -> Result<(), ModelError> {
    if check_access(kv, owner, path, user, action, now_ms)?.allowed {
        Ok(())
    } else {
        Err(ModelError::PermissionDenied(format!("{path} of {owner} is not shared with {user} for {action:?}")))
    }
}
