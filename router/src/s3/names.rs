//! How S3 names map onto a user's namespace: bucket `b` is the top-level folder `/b`,
//! key `k` is the path `/b/k`; version ids, ETags and timestamps as S3 clients see them.

use std::time::{Duration, SystemTime};

use s3s::dto::{ETag, Timestamp};
use s3s::{s3_error, S3Result};
use tessera_meta::model::paths;

/// S3's limit on key length (bytes of UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;

/// The version id S3 shows for objects of a bucket that never had versioning enabled.
pub const NULL_VERSION: &str = "null";

pub fn bucket_path(bucket: &str) -> String {
    format!("/{bucket}")
}

/// The namespace path of `key` in `bucket`. A key ending in '/' names a folder (the
/// "directory marker" objects S3 consoles create). Keys the namespace cannot hold
/// (empty, "." or ".." segments, doubled slashes) are refused with a clear message.
pub fn object_path(bucket: &str, key: &str) -> S3Result<String> {
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "the object key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError, "keys are at most 1024 bytes"));
    }
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    let path = format!("/{bucket}/{trimmed}");
    paths::validate_non_root(&path).map_err(|e| {
        // The model's message repeats the path; the reason is its last part.
        let text = e.to_string();
        let why = text.rsplit(": ").next().unwrap_or("invalid");
        s3_error!(
            InvalidArgument,
            "the key cannot be stored ({why}): keys are folder paths, with no empty, '.' or '..' segments \
             and at most 255 bytes between slashes"
        )
    })?;
    Ok(path)
}

pub fn is_folder_key(key: &str) -> bool {
    key.ends_with('/')
}

/// The key of a path inside `bucket` ("/b/x/y" → "x/y").
pub fn key_of(bucket: &str, path: &str) -> String {
    path.strip_prefix('/').and_then(|p| p.strip_prefix(bucket)).and_then(|p| p.strip_prefix('/')).unwrap_or("").into()
}

/// The entity tag of a version: its stored ETag, or — for content uploaded without an
/// MD5 (resumable native uploads) — a tag derived from its SHA-256, marked with "-1" so
/// clients do not take it for an MD5.
pub fn etag(stored: &str, content_sha256: &[u8; 32]) -> ETag {
    if stored.is_empty() {
        ETag::Strong(format!("{}-1", hex::encode(&content_sha256[..16])))
    } else {
        ETag::Strong(stored.to_owned())
    }
}

pub fn timestamp(ms: i64) -> Timestamp {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Timestamp::from(at)
}

pub fn millis(ts: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = ts.clone().into();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A version id as S3 clients see it: the version number, or "dm<n>" for the delete
/// marker that hides version n of a deleted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Null,
    Version(u64),
    DeleteMarker(u64),
}

impl VersionRef {
    pub fn parse(id: &str) -> S3Result<Self> {
        if id == NULL_VERSION {
            return Ok(Self::Null);
        }
        let (marker, digits) = match id.strip_prefix("dm") {
            Some(rest) => (true, rest),
            None => (false, id),
        };
        let n: u64 = digits.parse().map_err(|_| s3_error!(InvalidArgument, "invalid version id {id:?}"))?;
        Ok(if marker { Self::DeleteMarker(n) } else { Self::Version(n) })
    }
}

pub fn version_id(version: u64) -> String {
    version.to_string()
}

pub fn delete_marker_id(version: u64) -> String {
    format!("dm{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_paths_and_back() {
        for key in ["a.txt", "dir/sub/file with spaces+plus%25.bin", "ünïcødé/ファイル"] {
            let path = object_path("bucket", key).unwrap();
            assert_eq!(key_of("bucket", &path), key);
        }
        assert_eq!(object_path("b", "photos/").unwrap(), "/b/photos");
        assert!(object_path("b", "a//b").is_err());
        assert!(object_path("b", "a/../b").is_err());
        assert!(object_path("b", "").is_err());
        assert!(object_path("b", &"k".repeat(1025)).is_err());
    }

    #[test]
    fn version_ids_round_trip() {
        assert_eq!(VersionRef::parse("null").unwrap(), VersionRef::Null);
        assert_eq!(VersionRef::parse(&version_id(7)).unwrap(), VersionRef::Version(7));
        assert_eq!(VersionRef::parse(&delete_marker_id(3)).unwrap(), VersionRef::DeleteMarker(3));
        assert!(VersionRef::parse("x1").is_err());
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        assert_eq!(millis(&timestamp(1_709_251_200_123)), 1_709_251_200_123);
    }
}
