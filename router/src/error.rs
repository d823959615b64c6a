//! Router errors. Every failure a client can see is one of these; the API
//! layers map them to gRPC statuses and S3 error codes in one place each.

use tessera_meta::client::ClientError;
use tessera_meta::command::{ApplyError, ApplyErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A file where a folder is needed, or the reverse.
    #[error("{0}")]
    WrongKind(String),
    #[error("conflict: {message}")]
    Conflict { message: String, current_version: Option<u64> },
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The user's storage quota would be exceeded.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A request body past a configured size limit.
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("data integrity: {0}")]
    Integrity(String),
    /// A change-feed cursor older than the change log keeps: resync in full.
    #[error("{0}")]
    CursorTooOld(String),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ClientError> for RouterError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable { .. } => RouterError::Unavailable(e.to_string()),
            other => RouterError::Metadata(other.to_string()),
        }
    }
}

impl From<ApplyError> for RouterError {
    fn from(e: ApplyError) -> Self {
        match e.kind {
            ApplyErrorKind::NotFound => RouterError::NotFound(e.message),
            ApplyErrorKind::Conflict => {
                RouterError::Conflict { message: e.message, current_version: e.current_version }
            }
            ApplyErrorKind::PermissionDenied => RouterError::PermissionDenied(e.message),
            ApplyErrorKind::Corrupt => RouterError::Metadata(e.message),
            ApplyErrorKind::AlreadyExists => RouterError::AlreadyExists(e.message),
            ApplyErrorKind::NotAFolder | ApplyErrorKind::NotAFile => RouterError::WrongKind(e.message),
            ApplyErrorKind::InvalidArgument
            | ApplyErrorKind::InvalidPath
            | ApplyErrorKind::Expired
            | ApplyErrorKind::ChunksMissing => RouterError::InvalidArgument(e.message),
            ApplyErrorKind::QuotaExceeded => RouterError::QuotaExceeded(e.message),
            ApplyErrorKind::UserMoving | ApplyErrorKind::UserMoved => RouterError::Unavailable(e.message),
            ApplyErrorKind::CursorTooOld => RouterError::CursorTooOld(e.message),
        }
    }
}

impl From<RouterError> for tonic::Status {
    fn from(e: RouterError) -> Self {
        use tonic::Code;
        let code = match &e {
            RouterError::NotFound(_) => Code::NotFound,
            RouterError::InvalidArgument(_) => Code::InvalidArgument,
            RouterError::AlreadyExists(_) => Code::AlreadyExists,
            RouterError::WrongKind(_) => Code::FailedPrecondition,
            RouterError::Conflict { .. } => Code::Aborted,
            RouterError::PermissionDenied(_) => Code::PermissionDenied,
            RouterError::Unauthenticated(_) => Code::Unauthenticated,
            RouterError::Unavailable(_) => Code::Unavailable,
            RouterError::QuotaExceeded(_) => Code::ResourceExhausted,
            // The change feed's "cursor too old": before the range the log keeps.
            RouterError::TooLarge(_) | RouterError::CursorTooOld(_) => Code::OutOfRange,
            RouterError::Integrity(_) => Code::DataLoss,
            RouterError::Metadata(_) | RouterError::Io(_) => Code::Internal,
        };
        tonic::Status::new(code, e.to_string())
    }
}
