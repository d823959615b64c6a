//! Listings, all served by range scans over the path-ordered entry keys (never by loading
//! a whole tree): the direct children of a folder, and an S3-style listing of a user's
//! files by prefix and delimiter. Both skip a whole subtree with one seek when they meet
//! it (children listing: a grandchild; S3 listing: a key that rolls up into a prefix).

use serde::{Deserialize, Serialize};

use super::kv::KvRead;
use super::namespace::{self, decode_entry, Entry};
use super::paths::{self, validate_path};
use super::types::validate_user_id;
use super::{keys, ModelError};

const SCAN_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderPage {
    /// Children sorted by path (byte order).
    pub entries: Vec<Entry>,
    pub truncated: bool,
    /// Set when more children follow: pass it as `start_after` for the next page.
    pub next_start_after: Option<String>,
}

fn entry_path(key: &[u8], scope_len: usize) -> Result<&str, ModelError> {
    key.get(scope_len..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| ModelError::Corrupt("entry key is not a UTF-8 path".into()))
}

/// Direct children of the folder `path`, after `start_after` (a child path), at most
/// `limit`. Deleted children are included only when asked.
pub fn list_folder(
    kv: &dyn KvRead,
    user: &str,
    path: &str,
    start_after: Option<&str>,
    limit: usize,
    include_deleted: bool,
) -> Result<FolderPage, ModelError> {
    validate_user_id(user)?;
    validate_path(path)?;
    if limit == 0 {
        return Err(ModelError::InvalidArgument("limit must be positive".into()));
    }
    let folder = namespace::stat(kv, user, path, include_deleted)?;
    if !folder.is_folder() {
        return Err(ModelError::NotAFolder(path.to_string()));
    }
    let scope_len = keys::entry_scope(user).len();
    let child_prefix = paths::descendant_prefix(path);
    let (range_start, end) = keys::entry_prefix_range(user, &child_prefix);
    let mut cursor = match start_after {
        Some(after) => keys::key_successor(&keys::entry(user, after)).max(range_start.clone()),
        None => range_start.clone(),
    };
    let mut entries = Vec::new();
    'scan: loop {
        let batch = kv.scan(&cursor, &end, SCAN_BATCH)?;
        let full = batch.len() == SCAN_BATCH;
        let mut skip_to = None;
        for (key, value) in &batch {
            let rel = &entry_path(key, scope_len)?[child_prefix.len()..];
            if let Some(slash) = rel.find('/') {
                // A grandchild: skip the rest of that child's subtree in one seek.
                let child = format!("{child_prefix}{}", &rel[..=slash]);
                skip_to = Some(keys::prefix_end(&keys::entry(user, &child)));
                break;
            }
            cursor = keys::key_successor(key);
            let entry = decode_entry(value)?;
            if entry.deleted && !include_deleted {
                continue;
            }
            entries.push(entry);
            // One more than asked tells whether another page follows.
            if entries.len() > limit {
                break 'scan;
            }
        }
        match skip_to {
            Some(next) => cursor = next,
            None if !full => break,
            None => {}
        }
    }
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    let next_start_after = if truncated { entries.last().map(|e| e.path.clone()) } else { None };
    Ok(FolderPage { entries, truncated, next_start_after })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPage {
    /// Live files whose path starts with the prefix and does not roll up into a common prefix.
    pub entries: Vec<Entry>,
    /// Distinct "prefix ... delimiter" roll-ups, in key order.
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: pass as `start_after` to continue.
    pub next_start_after: Option<String>,
}

enum ListedItem {
    File(Entry),
    Prefix(String),
}

impl ListedItem {
    fn key(&self) -> &str {
        match self {
            ListedItem::File(entry) => &entry.path,
            ListedItem::Prefix(prefix) => prefix,
        }
    }
}

/// Which files an S3-style listing covers.
#[derive(Debug, Clone, Copy)]
pub struct ObjectScope<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<char>,
    pub include_deleted: bool,
}

/// S3-style listing of the user's live files (and deleted ones when asked). `prefix` is a byte prefix of absolute
/// paths ("/photos/20" matches "/photos/2024/a.jpg"); with a delimiter, paths that
/// contain it after the prefix roll up into one common prefix ending with it. Folders
/// are not objects: they appear only as common prefixes of the files below them, so an
/// empty folder is invisible here (as in S3 without marker objects). `start_after` is
/// exclusive; when it is a common prefix, everything under it is skipped. `limit` counts
/// files and common prefixes together (S3 MaxKeys).
pub fn list_objects(
    kv: &dyn KvRead,
    user: &str,
    scope: &ObjectScope<'_>,
    start_after: Option<&str>,
    limit: usize,
) -> Result<ObjectPage, ModelError> {
    let (prefix, delimiter) = (scope.prefix, scope.delimiter);
    validate_user_id(user)?;
    if !prefix.starts_with('/') || prefix.contains('\0') || prefix.len() > paths::MAX_PATH_BYTES {
        return Err(ModelError::InvalidArgument(format!("bad prefix {prefix:?}")));
    }
    if delimiter == Some('\0') {
        return Err(ModelError::InvalidArgument("NUL delimiter".into()));
    }
    if limit == 0 {
        return Err(ModelError::InvalidArgument("limit must be positive".into()));
    }
    let scope_len = keys::entry_scope(user).len();
    let (range_start, end) = keys::entry_prefix_range(user, prefix);
    let mut cursor = range_start.clone();
    if let Some(after) = start_after {
        let is_common_prefix = delimiter.is_some_and(|d| {
            after.len() > prefix.len() && after.starts_with(prefix) && after[prefix.len()..].ends_with(d)
        });
        let after_key = keys::entry(user, after);
        let resume = if is_common_prefix { keys::prefix_end(&after_key) } else { keys::key_successor(&after_key) };
        cursor = cursor.max(resume);
    }
    let mut items: Vec<ListedItem> = Vec::new();
    'scan: loop {
        let batch = kv.scan(&cursor, &end, SCAN_BATCH)?;
        let full = batch.len() == SCAN_BATCH;
        let mut skip_to = None;
        for (key, value) in &batch {
            cursor = keys::key_successor(key);
            let entry = decode_entry(value)?;
            if (entry.deleted && !scope.include_deleted) || entry.is_folder() {
                continue;
            }
            let path = entry_path(key, scope_len)?;
            let rolled_up = delimiter.and_then(|d| {
                path[prefix.len()..].find(d).map(|i| path[..prefix.len() + i + d.len_utf8()].to_string())
            });
            match rolled_up {
                Some(common) => {
                    skip_to = Some(keys::prefix_end(&keys::entry(user, &common)));
                    items.push(ListedItem::Prefix(common));
                }
                None => items.push(ListedItem::File(entry)),
            }
            if items.len() > limit {
                break 'scan;
            }
            if skip_to.is_some() {
                break;
            }
        }
        match skip_to {
            Some(next) => cursor = next,
            None if !full => break,
            None => {}
        }
    }
    let truncated = items.len() > limit;
    items.truncate(limit);
    let next_start_after = if truncated { items.last().map(|i| i.key().to_string()) } else { None };
    let mut page = ObjectPage { entries: Vec::new(), common_prefixes: Vec::new(), truncated, next_start_after };
    for item in items {
        match item {
            ListedItem::File(entry) => page.entries.push(entry),
            ListedItem::Prefix(prefix) => page.common_prefixes.push(prefix),
        }
    }
    Ok(page)
}
