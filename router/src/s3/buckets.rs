//! Bucket operations: list, create, head, delete (only when empty), location, and the
//! versioning setting.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tessera_meta::model::{BucketVersioning, QueryResponse, ShardCommand, ShardQuery};

use super::error::{to_s3, OrS3};
use super::names::{self, timestamp};
use super::{S3Gateway, S3_DEVICE};
use crate::datapath::now_ms;
use crate::error::RouterError;

/// Upper bound on buckets a user can list (a page of the root folder each round).
const ROOT_PAGE: usize = 1000;

impl S3Gateway {
    pub(super) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let user = self.user(&req).await?;
        let mut buckets = Vec::new();
        let mut after = None;
        loop {
            let page = crate::ops::list(&self.dp, &user, "/", after, ROOT_PAGE).await.or_s3()?;
            for entry in page.entries.iter().filter(|e| e.is_folder()) {
                let name = entry.path.trim_start_matches('/').to_owned();
                if req.input.prefix.as_ref().is_some_and(|p| !name.starts_with(p.as_str())) {
                    continue;
                }
                buckets.push(Bucket {
                    name: Some(name),
                    creation_date: Some(timestamp(entry.created_at_ms)),
                    bucket_region: Some(self.region.clone()),
                });
            }
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let owner = Owner { id: Some(user.clone()), display_name: Some(user) };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            prefix: req.input.prefix,
            continuation_token: None,
        }))
    }

    pub(super) async fn create_bucket_op(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let user = self.user(&req).await?;
        let bucket = req.input.bucket;
        let cmd = ShardCommand::CreateBucket {
            user_id: user.clone(),
            path: names::bucket_path(&bucket),
            device_id: S3_DEVICE.into(),
            now_ms: now_ms(),
        };
        match crate::ops::command(&self.dp, &user, cmd).await {
            Ok(_) => Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) })),
            Err(RouterError::AlreadyExists(_)) => {
                Err(s3_error!(BucketAlreadyOwnedByYou, "you already have a bucket named {bucket:?}"))
            }
            Err(RouterError::WrongKind(_)) => {
                Err(s3_error!(BucketAlreadyExists, "a file named {bucket:?} is in the way"))
            }
            Err(e) => Err(to_s3(e)),
        }
    }

    pub(super) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let user = self.user(&req).await?;
        self.bucket(&user, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    pub(super) async fn delete_bucket_op(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let user = self.user(&req).await?;
        let bucket = req.input.bucket;
        self.bucket(&user, &bucket).await?;
        let prefix = format!("/{bucket}/");
        let q = ShardQuery::ListObjects {
            user_id: user.clone(),
            prefix: prefix.clone(),
            delimiter: None,
            start_after: None,
            limit: 1,
            include_deleted: false,
        };
        match crate::ops::query(&self.dp, &user, q).await.or_s3()? {
            QueryResponse::Objects(page) if !page.entries.is_empty() => {
                return Err(s3_error!(BucketNotEmpty, "bucket {bucket:?} still holds objects"));
            }
            QueryResponse::Objects(_) => {}
            other => return Err(to_s3(RouterError::Metadata(format!("unexpected answer {other:?}")))),
        }
        // Pending multipart uploads go with the bucket (their parts' references too).
        self.abort_uploads_under(&user, &prefix).await?;
        crate::ops::delete(&self.dp, &user, &names::bucket_path(&bucket), S3_DEVICE).await.or_s3()?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    pub(super) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let user = self.user(&req).await?;
        self.bucket(&user, &req.input.bucket).await?;
        // S3 answers an empty constraint for us-east-1.
        let location = (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint: location }))
    }

    pub(super) async fn get_bucket_versioning_op(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let user = self.user(&req).await?;
        let status = match self.versioning(&user, &req.input.bucket).await? {
            BucketVersioning::Unversioned => None,
            BucketVersioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            BucketVersioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
    }

    pub(super) async fn put_bucket_versioning_op(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let user = self.user(&req).await?;
        let bucket = req.input.bucket;
        self.bucket(&user, &bucket).await?;
        if req.input.versioning_configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let versioning = match req.input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => BucketVersioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => BucketVersioning::Suspended,
            other => {
                return Err(s3_error!(MalformedXML, "versioning status must be Enabled or Suspended, not {other:?}"))
            }
        };
        let cmd = ShardCommand::SetBucketVersioning {
            user_id: user.clone(),
            path: names::bucket_path(&bucket),
            versioning,
            device_id: S3_DEVICE.into(),
            now_ms: now_ms(),
        };
        crate::ops::command(&self.dp, &user, cmd).await.or_s3()?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }

    pub(super) async fn get_bucket_acl_op(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let user = self.user(&req).await?;
        self.bucket(&user, &req.input.bucket).await?;
        let (owner, grants) = private_acl(&user);
        Ok(S3Response::new(GetBucketAclOutput { owner: Some(owner), grants: Some(grants) }))
    }

    pub(super) async fn get_object_acl_op(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        let user = self.user(&req).await?;
        let i = &req.input;
        self.bucket(&user, &i.bucket).await?;
        let path = names::object_path(&i.bucket, &i.key)?;
        crate::ops::stat(&self.dp, &user, &path).await.or_s3()?;
        let (owner, grants) = private_acl(&user);
        Ok(S3Response::new(GetObjectAclOutput { owner: Some(owner), grants: Some(grants), request_charged: None }))
    }
}

/// Every bucket and object is private to its owner: the one ACL Tessera has. Canned
/// ACL headers on writes are accepted and do not widen access.
fn private_acl(user: &str) -> (Owner, Vec<Grant>) {
    let owner = Owner { id: Some(user.to_owned()), display_name: Some(user.to_owned()) };
    let grant = Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: owner.id.clone(),
            display_name: owner.display_name.clone(),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    };
    (owner, vec![grant])
}
