//! Block node errors, and their one mapping to gRPC statuses.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("fragment not found: {0}")]
    NotFound(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("fragment of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("disk full: {0}")]
    DiskFull(String),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        let msg = e.to_string();
        match e.kind() {
            rocksdb::ErrorKind::Corruption => StoreError::Corrupt(msg),
            _ if msg.contains("No space left") => StoreError::DiskFull(msg),
            _ => StoreError::Storage(msg),
        }
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => Code::NotFound,
            StoreError::InvalidArgument(_) => Code::InvalidArgument,
            StoreError::TooLarge { .. } => Code::OutOfRange,
            StoreError::DiskFull(_) => Code::ResourceExhausted,
            StoreError::Corrupt(_) => Code::DataLoss,
            StoreError::Storage(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

impl StoreError {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::InvalidArgument(_) => "invalid_argument",
            StoreError::TooLarge { .. } => "too_large",
            StoreError::DiskFull(_) => "disk_full",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Storage(_) => "storage",
        }
    }
}
