//! Whole-subtree namespace commands: move/rename, delete and purge. Each is one command,
//! so replicas apply it atomically whatever the size of the subtree.

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::command::Tx;
use super::namespace::{self, descendants_range, store, visit_entries, Entry};
use super::paths::{self, validate_non_root};
use super::shares::{self, Share, ShareMove};
use super::types::{validate_user_id, LinkToken};
use super::{keys, links, versions, ModelError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveOutcome {
    /// The moved entry at its new path.
    pub entry: Entry,
    /// Entries rewritten: the entry itself plus every descendant (deleted ones too).
    pub moved_entries: u64,
    /// Shares that followed the move (the grantees' shards need their paths updated).
    pub moved_shares: Vec<ShareMove>,
    pub moved_links: u64,
}

/// Moves or renames a file or a whole folder. The destination must not hold a live
/// entry; missing parents are created ("mkdir -p"); tombstones at the destination are
/// displaced. A folder cannot move into itself. One Move event for the whole subtree.
pub(crate) fn move_entry(
    tx: &mut Tx<'_>,
    user: &str,
    from: &str,
    to: &str,
    origin: Origin<'_>,
) -> Result<MoveOutcome, ModelError> {
    validate_user_id(user)?;
    validate_non_root(from)?;
    validate_non_root(to)?;
    if from == to {
        return Err(ModelError::InvalidArgument("source and destination are the same".into()));
    }
    if paths::is_descendant(to, from) {
        return Err(ModelError::InvalidArgument(format!("cannot move {from} into itself")));
    }
    let source = namespace::load_live(tx.kv, user, from)?;
    if namespace::load(tx.kv, user, to)?.is_some_and(|e| !e.deleted) {
        return Err(ModelError::AlreadyExists(to.to_string()));
    }
    namespace::ensure_parents(tx, user, to, origin)?;
    namespace::displace(tx, user, to)?;

    let mut moved_entries = 1;
    tx.kv.delete(&keys::entry(user, from));
    let mut entry = source;
    entry.path = to.to_string();
    store(tx.kv, user, &entry)?;
    if entry.is_folder() {
        // Source and destination ranges are disjoint (no move into itself), so the
        // scan of the source never meets a rewritten entry.
        visit_entries(tx.kv, descendants_range(user, from), |kv, mut descendant| {
            kv.delete(&keys::entry(user, &descendant.path));
            descendant.path = paths::rebase(&descendant.path, from, to);
            store(kv, user, &descendant)?;
            moved_entries += 1;
            Ok(())
        })?;
    }
    let moved_shares = shares::move_subtree(tx.kv, user, from, to)?;
    let moved_links = links::move_subtree(tx.kv, user, from, to)?;
    let mut event = NewEvent::new(ChangeKind::Move, from).new_path(to);
    event.version = entry.file().map(|f| f.version);
    changelog::append(tx.kv, user, origin, event)?;
    Ok(MoveOutcome { entry, moved_entries, moved_shares, moved_links })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOutcome {
    pub entry: Entry,
    /// Entries newly marked deleted (the entry and its live descendants).
    pub deleted_entries: u64,
    /// Shares removed with the subtree (the grantees' shards need updating).
    pub removed_shares: Vec<Share>,
    pub revoked_links: Vec<LinkToken>,
}

/// Soft delete: marks the entry and all its live descendants deleted. Files keep their
/// versions (restorable, or revived by a new commit at the path). Shares and links in
/// the subtree are removed. One Delete event for the whole subtree.
pub(crate) fn delete(tx: &mut Tx<'_>, user: &str, path: &str, origin: Origin<'_>) -> Result<DeleteOutcome, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    let mut entry = namespace::load_live(tx.kv, user, path)?;
    entry.deleted = true;
    entry.modified_at_ms = origin.now_ms;
    store(tx.kv, user, &entry)?;
    let mut deleted_entries = 1;
    if entry.is_folder() {
        visit_entries(tx.kv, descendants_range(user, path), |kv, mut descendant| {
            if !descendant.deleted {
                descendant.deleted = true;
                descendant.modified_at_ms = origin.now_ms;
                store(kv, user, &descendant)?;
                deleted_entries += 1;
            }
            Ok(())
        })?;
    }
    let removed_shares = shares::remove_subtree(tx.kv, user, path)?;
    let revoked_links = links::remove_subtree(tx.kv, user, path)?;
    let mut event = NewEvent::new(ChangeKind::Delete, path);
    event.version = entry.file().map(|f| f.version);
    changelog::append(tx.kv, user, origin, event)?;
    Ok(DeleteOutcome { entry, deleted_entries, removed_shares, revoked_links })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeOutcome {
    pub removed_entries: u64,
    pub removed_versions: u64,
}

/// Permanently removes a deleted entry (and, for a folder, its deleted subtree) with all
/// versions, dropping their chunk references. Live entries cannot be purged.
pub(crate) fn purge_deleted(tx: &mut Tx<'_>, user: &str, path: &str) -> Result<PurgeOutcome, ModelError> {
    validate_user_id(user)?;
    validate_non_root(path)?;
    let entry = namespace::load(tx.kv, user, path)?.ok_or_else(|| ModelError::NotFound(path.to_string()))?;
    if !entry.deleted {
        return Err(ModelError::InvalidArgument(format!("{path} is not deleted")));
    }
    let mut doomed = vec![entry];
    visit_entries(tx.kv, descendants_range(user, path), |_, descendant| {
        if !descendant.deleted {
            return Err(ModelError::Corrupt(format!("live entry {} below a deleted folder", descendant.path)));
        }
        doomed.push(descendant);
        Ok(())
    })?;
    let mut outcome = PurgeOutcome { removed_entries: 0, removed_versions: 0 };
    for entry in doomed {
        tx.kv.delete(&keys::entry(user, &entry.path));
        if entry.file().is_some() {
            outcome.removed_versions += versions::purge_all(tx, user, entry.id)?;
        }
        outcome.removed_entries += 1;
    }
    Ok(outcome)
}
