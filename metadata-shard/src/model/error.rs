//! The one error type of the data model. Every variant maps to one gRPC status in the
//! service layer (NotFound → NOT_FOUND, Conflict → ABORTED, ChunksMissing →
//! FAILED_PRECONDITION, Corrupt → DATA_LOSS, Kv → INTERNAL/UNAVAILABLE, ...).

use super::kv::KvError;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("not a folder: {0}")]
    NotAFolder(String),
    #[error("not a file: {0}")]
    NotAFile(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    /// The commit's base version is stale and the policy is `Reject`.
    #[error("conflict: current version is {current_version}")]
    Conflict { current_version: u64 },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("expired: {0}")]
    Expired(String),
    /// An upload session was committed before all of its chunks were marked stored.
    #[error("{missing} chunk(s) of the upload session are not stored yet")]
    ChunksMissing { missing: usize },
    /// The command would take a user past their storage quota.
    #[error("{message}")]
    QuotaExceeded { message: String },
    /// A stored value or key could not be decoded: the store is damaged or was written
    /// by an incompatible version.
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The user is moving between shard groups: retry shortly.
    #[error("{0}")]
    UserMoving(String),
    /// The user lives on another shard group now.
    #[error("user {user} lives on shard group {to} now")]
    UserMoved { user: String, to: u64 },
    /// A change-feed read from before the events the log still keeps.
    #[error(
        "cursor too old: cursor {after} is before the change log's retention (events through \
         {trimmed_through} were trimmed); do a full resync: list the tree again and follow from the head"
    )]
    CursorTooOld { after: u64, trimmed_through: u64 },
    #[error(transparent)]
    Kv(#[from] KvError),
}

pub type ModelResult<T> = Result<T, ModelError>;
