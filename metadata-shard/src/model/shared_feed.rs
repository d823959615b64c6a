//! A grantee's view of an owner's change log: the owner's events under the paths the
//! owner currently shares with the grantee (any permission: view is enough).
//!
//! Access and the log are read in the same query, from the same state, so an unshare is
//! in force for the very next read; time-based expiry is judged at the query's
//! `now_ms`. An event is visible when
//!
//! * its path is at or below one of the grantee's live shares, or
//! * it is a move whose destination is (a move out of or into a shared folder), or whose
//!   destination holds a share (an ancestor of a shared folder moved: the share moved
//!   with it);
//! * share events are visible only when they are about the grantee (`peer` is the
//!   grantee): other grantees' shares and the owner's links never show.
//!
//! Visibility is decided with the shares as they are now, for old events too: events
//! from before a share existed show if their path is covered now, and events under a
//! path that was shared before but is not any more do not.

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeEvent, ChangeKind, ChangePage};
use super::codec::decode;
use super::kv::KvRead;
use super::paths;
use super::shares::{scan_all, Share};
use super::types::validate_user_id;
use super::{keys, ModelError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedChangePage {
    /// Cursors are the owner's: `next_cursor` moves past events the grantee does not see.
    pub page: ChangePage,
    /// The earliest expiry among the shares that made events visible (None: none
    /// expires). A read that waits for news must not wait past it, since the query
    /// judged expiry at its own `now_ms`.
    pub visible_until_ms: Option<i64>,
}

/// The live (not expired at `now_ms`) shares `owner` has made with `grantee`. One scan
/// of the owner's shares.
pub fn live_shares_with(kv: &dyn KvRead, owner: &str, grantee: &str, now_ms: i64) -> Result<Vec<Share>, ModelError> {
    validate_user_id(owner)?;
    validate_user_id(grantee)?;
    let (start, end) = keys::shares_of_owner(owner);
    let mut live = Vec::new();
    scan_all(kv, start, end, |_, value| {
        let share: Share = decode(value, "share")?;
        if share.grantee == grantee && !share.is_expired(now_ms) {
            live.push(share);
        }
        Ok(())
    })?;
    Ok(live)
}

fn covers(share_path: &str, path: &str) -> bool {
    path == share_path || paths::is_descendant(path, share_path)
}

/// Whether `grantee`, holding `shares`, sees `event` (rules in the module docs).
pub fn visible(event: &ChangeEvent, shares: &[Share], grantee: &str) -> bool {
    if event.kind == ChangeKind::Share {
        return event.peer.as_deref() == Some(grantee);
    }
    shares.iter().any(|s| {
        covers(&s.path, &event.path)
            || event.new_path.as_deref().is_some_and(|to| covers(&s.path, to) || paths::is_descendant(&s.path, to))
    })
}

/// `owner`'s events after `after_cursor` that `grantee` may see, at most `limit`, leaving
/// out `exclude_device`'s. PermissionDenied when nothing of `owner`'s is shared with
/// `grantee` at `now_ms`. The owner reading their own log gets all of it.
pub fn read_shared_changes(
    kv: &dyn KvRead,
    owner: &str,
    grantee: &str,
    after_cursor: u64,
    limit: usize,
    exclude_device: Option<&str>,
    now_ms: i64,
) -> Result<SharedChangePage, ModelError> {
    if owner == grantee {
        let page = changelog::read_changes(kv, owner, after_cursor, limit, exclude_device)?;
        return Ok(SharedChangePage { page, visible_until_ms: None });
    }
    let shares = live_shares_with(kv, owner, grantee, now_ms)?;
    if shares.is_empty() {
        return Err(ModelError::PermissionDenied(format!("nothing of {owner} is shared with {grantee}")));
    }
    let page = changelog::read_where(kv, owner, after_cursor, limit, |event| {
        exclude_device != Some(event.device_id.as_str()) && visible(event, &shares, grantee)
    })?;
    let visible_until_ms = shares.iter().filter_map(|s| s.expires_at_ms).min();
    Ok(SharedChangePage { page, visible_until_ms })
}
