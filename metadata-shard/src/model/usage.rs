//! Per-user storage usage and quotas.
//!
//! Usage is the logical size of everything a user keeps: every retained version
//! of every file (deleted files' versions too, until purged), counted before
//! dedup. Commands collect their changes in a [`UsageDelta`] next to the chunk
//! reference changes and apply the net change once at the end; a command whose
//! net change is positive and would take a user past their quota fails as a
//! whole (nothing it did is kept), so a quota is enforced atomically with the
//! commit that would exceed it, through every API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{encode_u64, get_u64};
use super::kv::{KvRead, KvWrite};
use super::{keys, ModelError};

/// Net usage changes of one command, per user.
#[derive(Debug, Default)]
pub(crate) struct UsageDelta(BTreeMap<String, i128>);

impl UsageDelta {
    pub fn add(&mut self, user: &str, bytes: u64) {
        *self.0.entry(user.to_owned()).or_default() += i128::from(bytes);
    }

    pub fn release(&mut self, user: &str, bytes: u64) {
        *self.0.entry(user.to_owned()).or_default() -= i128::from(bytes);
    }
}

/// A user's usage and quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    /// `None`: no limit.
    pub quota_bytes: Option<u64>,
}

pub fn usage(kv: &dyn KvRead, user: &str) -> Result<Usage, ModelError> {
    let bytes = get_u64(kv, &keys::usage(user), "usage")?;
    let quota_bytes = match kv.get(&keys::quota(user))? {
        Some(v) => Some(super::codec::decode_u64(&v, "quota")?),
        None => None,
    };
    Ok(Usage { bytes, quota_bytes })
}

/// What deduplication saves a user: the logical bytes of every kept version next
/// to the bytes of the distinct chunks they use (each chunk counted once, however
/// many versions or files share it). Computed on demand by walking the user's
/// versions, for operators (`tessera admin user show`), never on a request's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupStats {
    pub logical_bytes: u64,
    pub unique_chunk_bytes: u64,
    pub versions: u64,
    pub distinct_chunks: u64,
}

impl DedupStats {
    pub fn savings_bytes(&self) -> u64 {
        self.logical_bytes.saturating_sub(self.unique_chunk_bytes)
    }
}

pub fn dedup_stats(kv: &dyn KvRead, user: &str) -> Result<DedupStats, ModelError> {
    super::types::validate_user_id(user)?;
    let (start, end) = keys::user_versions(user);
    let mut seen = std::collections::HashSet::new();
    let mut stats = DedupStats { logical_bytes: 0, unique_chunk_bytes: 0, versions: 0, distinct_chunks: 0 };
    for (_, value) in kv.scan(&start, &end, usize::MAX)? {
        let record: super::versions::VersionRecord = super::codec::decode(&value, "version")?;
        stats.versions += 1;
        stats.logical_bytes += record.size;
        for chunk in &record.chunks {
            if seen.insert(chunk.hash) {
                stats.unique_chunk_bytes += chunk.size;
            }
        }
    }
    stats.distinct_chunks = seen.len() as u64;
    Ok(stats)
}

pub(crate) fn set_quota(kv: &mut dyn KvWrite, user: &str, quota_bytes: Option<u64>) {
    match quota_bytes {
        Some(q) => kv.put(&keys::quota(user), &encode_u64(q)),
        None => kv.delete(&keys::quota(user)),
    }
}

pub(crate) fn apply_usage_delta(kv: &mut dyn KvWrite, delta: UsageDelta) -> Result<(), ModelError> {
    for (user, change) in delta.0 {
        if change == 0 {
            continue;
        }
        let current = usage(kv, &user)?;
        // Never below zero: usage recorded before accounting existed is unknown.
        let updated = u64::try_from((i128::from(current.bytes) + change).max(0)).unwrap_or(u64::MAX);
        if change > 0 {
            if let Some(quota) = current.quota_bytes.filter(|q| updated > *q) {
                return Err(ModelError::QuotaExceeded {
                    message: format!(
                        "storage quota of user {user} exceeded: {} bytes used of {quota}, this write needs {change} more",
                        current.bytes
                    ),
                });
            }
        }
        if updated == 0 {
            kv.delete(&keys::usage(&user));
        } else {
            kv.put(&keys::usage(&user), &encode_u64(updated));
        }
    }
    Ok(())
}
