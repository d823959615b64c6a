//! The S3 gateway: S3's HTTP API on its own listener, on top of the same data path and
//! namespace operations as the native API. `s3s` parses requests, checks AWS Signature
//! V4 (headers, presigned URLs, aws-chunked bodies and trailers) against the user's
//! secret from the cluster group, and renders XML; this module decides what each
//! operation means for a Tessera user:
//!
//! - a user's buckets are their top-level folders ([`names`]); another user's buckets
//!   are invisible (the same name is simply another bucket);
//! - objects are files, chunked, deduplicated, erasure-coded and versioned like any
//!   other, and visible to the native API and sync clients ([`objects`]);
//! - listings are range scans of the shard's sorted index, a page at a time ([`listing`]);
//! - multipart parts are chunked as they arrive, completion is one metadata commit
//!   ([`multipart`]);
//! - bucket settings ([`buckets`]); body checksums ([`body`]); errors ([`error`]);
//!   the HTTP server, request ids and metrics ([`server`]).

pub mod body;
pub mod buckets;
pub mod error;
pub mod listing;
pub mod multipart;
pub mod names;
pub mod objects;
pub mod server;
mod service;

use std::sync::Arc;

use s3s::{s3_error, S3Request, S3Result};
use tessera_meta::model::{BucketConfig, BucketVersioning, Entry, QueryResponse, ShardQuery};

use crate::auth::Authenticator;
use crate::datapath::DataPath;
use crate::error::RouterError;
use error::OrS3;

/// Device id recorded in change events and versions written through S3, so sync
/// clients can tell them apart.
pub const S3_DEVICE: &str = "s3";

/// The gateway's state: everything is in the cluster, nothing here but handles.
pub struct S3Gateway {
    pub dp: Arc<DataPath>,
    pub auth: Arc<Authenticator>,
    pub region: String,
}

impl S3Gateway {
    /// The user a signed request acts for.
    async fn user<T>(&self, req: &S3Request<T>) -> S3Result<String> {
        let creds = req.credentials.as_ref().ok_or_else(|| s3_error!(AccessDenied, "the request is not signed"))?;
        match self.auth.user(&creds.access_key).await.or_s3()? {
            Some(user) => Ok(user.user_id),
            None => Err(s3_error!(InvalidAccessKeyId, "unknown access key")),
        }
    }

    /// The bucket's folder, or NoSuchBucket.
    async fn bucket(&self, user: &str, bucket: &str) -> S3Result<Entry> {
        match crate::ops::stat(&self.dp, user, &names::bucket_path(bucket)).await {
            Ok(entry) if entry.is_folder() => Ok(entry),
            Ok(_) | Err(RouterError::NotFound(_)) => {
                Err(s3_error!(NoSuchBucket, "bucket {bucket:?} does not exist for this user"))
            }
            Err(e) => Err(error::to_s3(e)),
        }
    }

    /// The bucket's versioning state, or NoSuchBucket; both reads run at once.
    async fn versioning(&self, user: &str, bucket: &str) -> S3Result<BucketVersioning> {
        let (exists, config) = tokio::join!(self.bucket(user, bucket), self.bucket_config(user, bucket));
        exists?;
        Ok(config?.versioning)
    }

    async fn bucket_config(&self, user: &str, bucket: &str) -> S3Result<BucketConfig> {
        let q = ShardQuery::BucketConfig { user_id: user.into(), path: names::bucket_path(bucket) };
        match crate::ops::query(&self.dp, user, q).await.or_s3()? {
            QueryResponse::BucketConfig(c) => Ok(c),
            other => Err(error::to_s3(RouterError::Metadata(format!("unexpected answer {other:?}")))),
        }
    }
}
