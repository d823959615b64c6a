//! Router errors as S3 errors, in one place. Callers that know more than the router
//! error says (a missing *bucket* rather than a missing key) map those cases first.

use s3s::{S3Error, S3ErrorCode};

use crate::error::RouterError;

pub fn to_s3(e: RouterError) -> S3Error {
    let code = match &e {
        RouterError::NotFound(_) => S3ErrorCode::NoSuchKey,
        RouterError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        RouterError::AlreadyExists(_) => S3ErrorCode::InvalidRequest,
        // A key below an object, or an object where a "folder" of keys is.
        RouterError::WrongKind(_) => S3ErrorCode::InvalidRequest,
        RouterError::Conflict { .. } => S3ErrorCode::PreconditionFailed,
        RouterError::PermissionDenied(_) | RouterError::Unauthenticated(_) => S3ErrorCode::AccessDenied,
        // 503 makes SDKs retry with backoff, which is right while a node or leader is away.
        RouterError::Unavailable(_) => S3ErrorCode::ServiceUnavailable,
        // S3 has no code of its own for this (see the status below).
        RouterError::QuotaExceeded(_) => S3ErrorCode::Custom("QuotaExceeded".into()),
        RouterError::TooLarge(_) => S3ErrorCode::EntityTooLarge,
        RouterError::Integrity(_) | RouterError::Metadata(_) | RouterError::Io(_) => S3ErrorCode::InternalError,
        // S3 has no change feed; nothing it calls can be too old.
        RouterError::CursorTooOld(_) => S3ErrorCode::InvalidRequest,
    };
    if code == S3ErrorCode::InternalError || code == S3ErrorCode::ServiceUnavailable {
        tracing::warn!(error = %e, "S3 request failed");
    }
    let quota = matches!(e, RouterError::QuotaExceeded(_));
    let mut err = S3Error::with_message(code, e.to_string());
    if quota {
        // 403: the request is understood and refused; clients must not retry it.
        err.set_status_code(http::StatusCode::FORBIDDEN);
    }
    err
}

/// `?` on router results inside S3 handlers.
pub trait OrS3<T> {
    fn or_s3(self) -> s3s::S3Result<T>;
}

impl<T> OrS3<T> for Result<T, RouterError> {
    fn or_s3(self) -> s3s::S3Result<T> {
        self.map_err(to_s3)
    }
}
