//! The per-user change log: every user-visible mutation appends events in the same
//! command, under a cursor that grows by exactly one per event (no gaps, no duplicates),
//! so a sync client can resume from the last cursor it saw.
//!
//! Not logged: upload-session bookkeeping, purges of already-deleted entries and
//! zero-ref log trimming — none of them changes what a client sees.
//!
//! The log does not grow for ever: GC trims events older than a retention
//! ([`trim_older_than`]) and records per user the newest cursor trimmed. A read
//! from before it fails with [`ModelError::CursorTooOld`] (never a silent gap):
//! the client lists the tree again and follows from the head.

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode, encode_u64, get_u64};
use super::kv::{KvRead, KvWrite};
use super::{keys, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Create,
    Modify,
    Delete,
    Move,
    Share,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub cursor: u64,
    pub kind: ChangeKind,
    pub path: String,
    /// Destination of a move.
    pub new_path: Option<String>,
    /// File version created (Create/Modify of files) or deleted.
    pub version: Option<u64>,
    pub device_id: String,
    pub at_ms: i64,
    /// Share events: the other party (grantee on the owner's log, owner on the grantee's).
    pub peer: Option<String>,
}

/// Who caused a mutation and when; copied into every event the command appends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub device_id: &'a str,
    pub now_ms: i64,
}

/// An event before it gets its cursor.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub kind: ChangeKind,
    pub path: String,
    pub new_path: Option<String>,
    pub version: Option<u64>,
    pub peer: Option<String>,
}

impl NewEvent {
    pub fn new(kind: ChangeKind, path: &str) -> Self {
        Self { kind, path: path.to_string(), new_path: None, version: None, peer: None }
    }
    pub fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
    pub fn new_path(mut self, new_path: &str) -> Self {
        self.new_path = Some(new_path.to_string());
        self
    }
    pub fn peer(mut self, peer: &str) -> Self {
        self.peer = Some(peer.to_string());
        self
    }
}

/// Appends one event and returns its cursor (the first event of a user gets cursor 1).
pub(crate) fn append(kv: &mut dyn KvWrite, user: &str, origin: Origin<'_>, event: NewEvent) -> Result<u64, ModelError> {
    let head_key = keys::change_head(user);
    let cursor = get_u64(kv, &head_key, "change head")?
        .checked_add(1)
        .ok_or_else(|| ModelError::Corrupt("change cursor overflow".into()))?;
    let stored = ChangeEvent {
        cursor,
        kind: event.kind,
        path: event.path,
        new_path: event.new_path,
        version: event.version,
        device_id: origin.device_id.to_string(),
        at_ms: origin.now_ms,
        peer: event.peer,
    };
    kv.put(&keys::change(user, cursor), &encode(&stored)?);
    kv.put(&head_key, &encode_u64(cursor));
    Ok(cursor)
}

/// Cursor of the user's newest event (0 = none yet).
pub fn head_cursor(kv: &dyn KvRead, user: &str) -> Result<u64, ModelError> {
    get_u64(kv, &keys::change_head(user), "change head")
}

/// Cursor of the newest event trimmed from the user's log (0 = none): readers
/// must be at or past it.
pub fn trimmed_through(kv: &dyn KvRead, user: &str) -> Result<u64, ModelError> {
    get_u64(kv, &keys::change_floor(user), "change floor")
}

/// What one `TrimChangeLog` command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLogTrimPage {
    pub scanned: u64,
    pub removed: u64,
    /// Where the next command starts; `None` when every user's log was walked.
    pub next: Option<Vec<u8>>,
}

/// Removes events older than `before_ms` from the logs of this shard's users,
/// looking at up to `limit` events from `from` (the first user's log when
/// `None`). A user's log is trimmed from its oldest event up to the first one
/// that is young enough; the rest of that log is skipped. Users moving in or
/// out are left alone (their log travels as it is).
pub(crate) fn trim_older_than(
    kv: &mut dyn KvWrite,
    from: Option<&[u8]>,
    before_ms: i64,
    limit: usize,
) -> Result<ChangeLogTrimPage, ModelError> {
    let (first, end) = keys::all_changes();
    let mut start = from.map(<[u8]>::to_vec).unwrap_or(first);
    let mut page = ChangeLogTrimPage { scanned: 0, removed: 0, next: None };
    let limit = limit.max(1) as u64;
    'walk: while page.scanned < limit {
        let rows = kv.scan(&start, &end, (limit - page.scanned).min(256) as usize)?;
        if rows.is_empty() {
            return Ok(page);
        }
        for (key, value) in rows {
            page.scanned += 1;
            let (user, cursor) =
                keys::parse_change(&key).ok_or_else(|| ModelError::Corrupt("change-log key".into()))?;
            let user = user.to_owned();
            let event: ChangeEvent = decode(&value, "change event")?;
            let in_transit = match super::user_move::check_write(&*kv, &user) {
                Ok(()) => false,
                Err(ModelError::UserMoving(_) | ModelError::UserMoved { .. }) => true,
                Err(e) => return Err(e),
            };
            if in_transit || event.at_ms >= before_ms {
                start = keys::changes_end(&user);
                continue 'walk;
            }
            kv.delete(&key);
            kv.put(&keys::change_floor(&user), &encode_u64(cursor));
            page.removed += 1;
            start = keys::key_successor(&key);
        }
    }
    page.next = Some(start);
    Ok(page)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePage {
    pub events: Vec<ChangeEvent>,
    /// Resume from here: past every event examined, including filtered ones.
    pub next_cursor: u64,
    pub has_more: bool,
    /// The newest cursor in the log at read time (where a client that has just
    /// listed the whole tree starts following).
    pub head_cursor: u64,
}

/// How many events one read may skip over (for `exclude_device`, or events a grantee
/// may not see), so a device that made a million changes does not turn one read into a
/// full log scan; the page simply ends early with `has_more` set.
const MAX_EXAMINED_PER_READ: usize = 10_000;

/// Events with cursor > `after_cursor`, at most `limit`, skipping those made by
/// `exclude_device` (their cursors are still consumed).
pub fn read_changes(
    kv: &dyn KvRead,
    user: &str,
    after_cursor: u64,
    limit: usize,
    exclude_device: Option<&str>,
) -> Result<ChangePage, ModelError> {
    read_where(kv, user, after_cursor, limit, |event| exclude_device != Some(event.device_id.as_str()))
}

/// Events with cursor > `after_cursor` that `keep` accepts, at most `limit`; the cursors
/// of the others are still consumed (`next_cursor` moves past them), and at most
/// [`MAX_EXAMINED_PER_READ`] events are looked at.
pub(crate) fn read_where(
    kv: &dyn KvRead,
    user: &str,
    after_cursor: u64,
    limit: usize,
    mut keep: impl FnMut(&ChangeEvent) -> bool,
) -> Result<ChangePage, ModelError> {
    if limit == 0 {
        return Err(ModelError::InvalidArgument("limit must be positive".into()));
    }
    let floor = trimmed_through(kv, user)?;
    if after_cursor < floor {
        return Err(ModelError::CursorTooOld { after: after_cursor, trimmed_through: floor });
    }
    let head = head_cursor(kv, user)?;
    let mut events = Vec::new();
    let mut next_cursor = after_cursor;
    let mut examined = 0;
    while events.len() < limit && next_cursor < head && examined < MAX_EXAMINED_PER_READ {
        let (start, end) = keys::changes_from(user, next_cursor.saturating_add(1));
        let batch = kv.scan(&start, &end, (limit - events.len()).clamp(64, 1024))?;
        if batch.is_empty() {
            break;
        }
        for (_, value) in batch {
            let event: ChangeEvent = decode(&value, "change event")?;
            examined += 1;
            next_cursor = event.cursor;
            if keep(&event) {
                events.push(event);
            }
            if events.len() == limit || examined == MAX_EXAMINED_PER_READ {
                break;
            }
        }
    }
    Ok(ChangePage { events, next_cursor, has_more: next_cursor < head, head_cursor: head })
}
