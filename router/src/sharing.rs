//! Sharing on the native API: who may act on whose files, and the share records.
//!
//! A caller acts on another user's namespace by naming its owner (the
//! `x-tessera-owner` request metadata); every such call is checked against the
//! owner's shard with a linearizable read at the current time, so an unshare or
//! an expiry takes effect for the very next call. Shares are inherited down
//! folders (`model::access`). A share lives on the owner's shard (what access
//! checks read) and is mirrored on the grantee's shard ("shared with me").

use std::time::Duration;

use tessera_meta::model::access::Action;
use tessera_meta::model::shares::{Permission, Share, SharedWithMe};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery, ShardResponse};

use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::ops;

/// Metadata key naming the owner whose files a call acts on (absent: the caller's own).
pub const OWNER: &str = "x-tessera-owner";

pub fn parse_permission(s: &str) -> Result<Permission, RouterError> {
    match s {
        "view" => Ok(Permission::View),
        "edit" => Ok(Permission::Edit),
        "admin" => Ok(Permission::Admin),
        other => Err(RouterError::InvalidArgument(format!("permission must be view, edit or admin, not {other:?}"))),
    }
}

pub fn permission_name(p: Permission) -> &'static str {
    match p {
        Permission::View => "view",
        Permission::Edit => "edit",
        Permission::Admin => "admin",
    }
}

/// The namespace a call works on: the caller's own, or `owner`'s if `caller` may do
/// `action` on `path` there. A refusal says neither whether the path exists nor
/// what is shared.
pub async fn namespace_for(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    path: &str,
    action: Action,
) -> Result<String, RouterError> {
    let Some(owner) = owner.filter(|o| *o != caller) else { return Ok(caller.to_owned()) };
    let q = ShardQuery::CheckAccess {
        owner: owner.into(),
        path: path.into(),
        user_id: caller.into(),
        action,
        now_ms: now_ms(),
    };
    match dp.view.shard_query(owner, q, Duration::ZERO).await? {
        QueryResponse::Access(d) if d.allowed => Ok(owner.to_owned()),
        QueryResponse::Access(_) => Err(RouterError::PermissionDenied(format!(
            "{path} of {owner} is not shared with you for {}",
            match action {
                Action::Read => "reading",
                Action::Write => "writing",
                Action::Share => "sharing",
            }
        ))),
        other => Err(RouterError::Metadata(format!("unexpected answer to CheckAccess: {other:?}"))),
    }
}

/// Shares `path` of `owner` with `grantee`. The owner may share anything; a grantee
/// with an admin share may reshare below it.
pub async fn share(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    path: &str,
    grantee: &str,
    permission: Permission,
    expires_in: Option<Duration>,
    device_id: &str,
) -> Result<Share, RouterError> {
    let owner = namespace_for(dp, caller, owner, path, Action::Share).await?;
    if grantee == owner {
        return Err(RouterError::InvalidArgument(format!("{grantee} owns {path} already")));
    }
    let now = now_ms();
    let expires_at_ms = expires_in.map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
    let cmd = ShardCommand::Share {
        owner: owner.clone(),
        path: path.into(),
        grantee: grantee.into(),
        permission,
        expires_at_ms,
        device_id: device_id.into(),
        now_ms: now,
    };
    let share = match ops::command(dp, &owner, cmd).await? {
        ShardResponse::Shared(s) => s,
        other => return Err(RouterError::Metadata(format!("unexpected answer to Share: {other:?}"))),
    };
    // The grantee's index; the owner's record above is what grants access, so a
    // failure here leaves a working share that is only missing from the list.
    let mirror = ShardCommand::AddSharedWithMe {
        grantee: grantee.into(),
        owner: owner.clone(),
        path: share.path.clone(),
        permission,
        expires_at_ms,
        now_ms: now,
    };
    ops::command(dp, grantee, mirror).await?;
    Ok(share)
}

pub async fn unshare(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    path: &str,
    grantee: &str,
    device_id: &str,
) -> Result<(), RouterError> {
    let owner = namespace_for(dp, caller, owner, path, Action::Share).await?;
    let now = now_ms();
    let cmd = ShardCommand::Unshare {
        owner: owner.clone(),
        path: path.into(),
        grantee: grantee.into(),
        device_id: device_id.into(),
        now_ms: now,
    };
    ops::command(dp, &owner, cmd).await?;
    let mirror = ShardCommand::RemoveSharedWithMe { grantee: grantee.into(), owner, path: path.into(), now_ms: now };
    match ops::command(dp, grantee, mirror).await {
        Ok(_) | Err(RouterError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The shares on exactly `path` (the owner's, or an admin grantee's view).
pub async fn shares_of(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    path: &str,
) -> Result<Vec<Share>, RouterError> {
    let owner = namespace_for(dp, caller, owner, path, Action::Share).await?;
    match dp
        .view
        .shard_query(&owner, ShardQuery::ListShares { owner: owner.clone(), path: path.into() }, Duration::ZERO)
        .await?
    {
        QueryResponse::Shares(s) => Ok(s),
        other => Err(RouterError::Metadata(format!("unexpected answer to ListShares: {other:?}"))),
    }
}

/// Everything shared with `caller` that has not expired.
pub async fn shared_with(dp: &DataPath, caller: &str) -> Result<Vec<SharedWithMe>, RouterError> {
    let now = now_ms();
    let mut out = Vec::new();
    let mut start_after = None;
    loop {
        let q = ShardQuery::ListSharedWithMe { user_id: caller.into(), start_after: start_after.clone(), limit: 1000 };
        match dp.view.shard_query(caller, q, Duration::ZERO).await? {
            QueryResponse::SharedWithMe(page) => {
                out.extend(page.entries.into_iter().filter(|e| e.expires_at_ms.is_none_or(|at| now < at)));
                match page.next_start_after {
                    Some(next) => start_after = Some(next),
                    None => return Ok(out),
                }
            }
            other => return Err(RouterError::Metadata(format!("unexpected answer to ListSharedWithMe: {other:?}"))),
        }
    }
}
