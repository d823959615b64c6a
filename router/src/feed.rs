//! The change feed as one caller sees it: their own change log, or, naming an owner,
//! the owner's log filtered to what the owner shares with them (`model::shared_feed`).
//!
//! A shared read is one linearizable query on the owner's shard that lists the
//! caller's live shares and filters the log in the same state, so an unshare or an
//! expiry ends the feed at the very next read (PERMISSION_DENIED). Cursors are the
//! owner's; `next_cursor` moves past events the caller does not see. A long-poll keeps
//! waiting while only invisible events arrive: the shard re-reads on every commit and
//! answers only with something visible, and the router goes on from the cursor it got
//! until the caller's wait is over. Since the shard judges expiry at the time the read
//! started, no single wait runs past the earliest expiry of the caller's shares.

use std::time::{Duration, Instant};

use tessera_meta::model::{ChangePage, QueryResponse, ShardQuery, SharedChangePage};

use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::ops;

/// Where the feed of `caller` (or of `owner`'s shared items) ends now: a page
/// without events whose `next_cursor` is the head, for a client about to list
/// the whole tree (also one whose cursor was too old).
pub async fn head(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    device_id: &str,
) -> Result<ChangePage, RouterError> {
    // Past every cursor: nothing to read, nothing trimmed past it.
    let mut page = changes(dp, caller, owner, u64::MAX, 1, device_id, Duration::ZERO).await?;
    page.next_cursor = page.head_cursor;
    page.has_more = false;
    Ok(page)
}

/// One page of the feed of `caller`, or of `owner`'s shared items when an owner other
/// than the caller is named; waits up to `wait` when there is nothing to report.
pub async fn changes(
    dp: &DataPath,
    caller: &str,
    owner: Option<&str>,
    after_cursor: u64,
    limit: u32,
    device_id: &str,
    wait: Duration,
) -> Result<ChangePage, RouterError> {
    match owner.filter(|o| *o != caller) {
        None => ops::changes(dp, caller, after_cursor, limit, device_id, wait).await,
        Some(owner) => shared_changes(dp, owner, caller, after_cursor, limit, device_id, wait).await,
    }
}

async fn read_shared(
    dp: &DataPath,
    owner: &str,
    grantee: &str,
    after_cursor: u64,
    limit: u32,
    device_id: &str,
    wait: Duration,
) -> Result<SharedChangePage, RouterError> {
    let q = ShardQuery::ReadSharedChanges {
        owner: owner.into(),
        grantee: grantee.into(),
        after_cursor,
        limit: if limit == 0 { 1000 } else { limit.min(1000) as usize },
        exclude_device: (!device_id.is_empty()).then(|| device_id.to_owned()),
        now_ms: now_ms(),
    };
    match dp.view.shard_query(owner, q, wait).await? {
        QueryResponse::SharedChanges(page) => Ok(page),
        other => Err(RouterError::Metadata(format!("unexpected answer to ReadSharedChanges: {other:?}"))),
    }
}

async fn shared_changes(
    dp: &DataPath,
    owner: &str,
    grantee: &str,
    after_cursor: u64,
    limit: u32,
    device_id: &str,
    wait: Duration,
) -> Result<ChangePage, RouterError> {
    let deadline = Instant::now() + wait;
    let mut cursor = after_cursor;
    // The first read does not wait: it learns when the caller's shares expire.
    let mut round = Duration::ZERO;
    loop {
        let SharedChangePage { page, visible_until_ms } =
            read_shared(dp, owner, grantee, cursor, limit, device_id, round).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if !page.events.is_empty() || left.is_zero() {
            return Ok(page);
        }
        cursor = page.next_cursor;
        round = if page.has_more {
            Duration::ZERO // a read examines a bounded number of events: read on at once
        } else {
            let until_expiry = visible_until_ms
                .map_or(left, |at| Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0)));
            left.min(until_expiry)
        };
    }
}
