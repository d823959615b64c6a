//! Small types shared by several modules: hashes, ids and the shard configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// SHA-256 of a chunk or of a whole file.
pub type Hash32 = [u8; 32];
/// Upload session id, chosen at random by the proposer.
pub type SessionId = [u8; 16];
/// Multipart upload id, chosen at random by the proposer.
pub type UploadId = [u8; 16];
/// 256-bit link token, chosen at random by the proposer.
pub type LinkToken = [u8; 32];

/// One chunk of a file's content, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: Hash32,
    pub size: u64,
}

/// What HTTP and S3 clients see of a version besides its bytes: the entity tag and the
/// headers stored with it. Chosen by the router; the shard keeps and returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Hex MD5 of the content, or "MD5-of-part-MD5s-N" for a multipart upload; empty
    /// when the uploader did not compute one (resumable native uploads).
    pub etag: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs (names lower-case, without the prefix).
    pub user_metadata: BTreeMap<String, String>,
    /// Part sizes of a multipart upload, in order (empty otherwise). The version's
    /// `content_sha256` is then the SHA-256 of the parts' SHA-256s (S3's composite
    /// checksum), since no single pass over the whole content ever happens.
    pub part_sizes: Vec<u64>,
}

/// Settings every replica must apply identically (they are part of the state machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardConfig {
    /// Versions kept per file; the commit that exceeds it drops the oldest (minimum 1).
    pub max_versions: u64,
    /// Upper bound of sessions one `ExpireSessions` command removes.
    pub expire_sessions_batch: usize,
    /// Upper bound of zero-ref log entries one `TrimZeroRefLog` command removes.
    pub trim_zero_ref_batch: usize,
}

impl Default for ShardConfig {
    fn default() -> Self {
        Self { max_versions: 100, expire_sessions_batch: 256, trim_zero_ref_batch: 4096 }
    }
}

impl ShardConfig {
    pub fn max_versions(&self) -> u64 {
        self.max_versions.max(1)
    }
}

/// Validates a user id: it is part of keys, so it must be non-empty and free of NUL.
pub fn validate_user_id(user_id: &str) -> Result<(), super::ModelError> {
    if user_id.is_empty() || user_id.len() > 255 || user_id.contains('\0') {
        return Err(super::ModelError::InvalidArgument(format!("bad user id {user_id:?}")));
    }
    Ok(())
}
