//! Emptying the trash: files and folders deleted longer ago than a retention are
//! purged for good (versions and their chunk references go, so garbage
//! collection can give the space back). GC walks a shard's entries in pages of
//! commands, each scanning a bounded number of entries from a cursor.

use serde::{Deserialize, Serialize};

use super::command::Tx;
use super::namespace::{self, decode_entry};
use super::{keys, tree_ops, ModelError};

/// What one `PurgeExpiredTrash` command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashPage {
    pub scanned: u64,
    pub purged_entries: u64,
    pub purged_versions: u64,
    /// The last entry key scanned, to pass as `after` for the next page; `None`
    /// when the walk is complete.
    pub next: Option<Vec<u8>>,
}

/// The user of an entry key (`'E' ++ user ++ 0 ++ path`).
fn user_of(key: &[u8]) -> Result<String, ModelError> {
    let rest = key.get(1..).ok_or_else(|| ModelError::Corrupt("entry key".into()))?;
    let end = rest.iter().position(|b| *b == 0).ok_or_else(|| ModelError::Corrupt("entry key".into()))?;
    String::from_utf8(rest[..end].to_vec()).map_err(|_| ModelError::Corrupt("entry key user".into()))
}

/// Scans up to `limit` entries after `after` (from the first of the shard when
/// `None`) and purges those deleted before `deleted_before_ms`. A deleted folder
/// is purged with its subtree, which by the namespace's invariant holds only
/// entries deleted no later than the folder itself.
pub(crate) fn purge_expired(
    tx: &mut Tx<'_>,
    after: Option<&[u8]>,
    deleted_before_ms: i64,
    limit: usize,
) -> Result<TrashPage, ModelError> {
    let (first, end) = keys::all_entries();
    let start = after.map(keys::key_successor).unwrap_or(first);
    let rows = tx.kv.scan(&start, &end, limit.max(1))?;
    let complete = rows.len() < limit.max(1);
    let next = if complete { None } else { rows.last().map(|(k, _)| k.clone()) };
    let mut expired = Vec::new();
    for (key, value) in &rows {
        let entry = decode_entry(value)?;
        if entry.deleted && entry.modified_at_ms < deleted_before_ms {
            expired.push((user_of(key)?, entry.path));
        }
    }
    let mut page = TrashPage { scanned: rows.len() as u64, purged_entries: 0, purged_versions: 0, next };
    for (user, path) in expired {
        // An earlier purge in this page may have taken it with its folder.
        match namespace::load(tx.kv, &user, &path)? {
            Some(e) if e.deleted && e.modified_at_ms < deleted_before_ms => {
                let outcome = tree_ops::purge_deleted(tx, &user, &path)?;
                page.purged_entries += outcome.removed_entries;
                page.purged_versions += outcome.removed_versions;
            }
            _ => {}
        }
    }
    Ok(page)
}
