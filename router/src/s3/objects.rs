//! Object operations: put, get, head, delete (one or many), and server-side copy (a new
//! version that points at the source's chunks; no data moves).

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tessera_meta::model::versions::ConflictPolicy;
use tessera_meta::model::{BucketVersioning, Entry, ObjectMeta, QueryResponse, ShardCommand, ShardQuery};

use super::body::{self, ExpectedDigests};
use super::error::{to_s3, OrS3};
use super::names::{self, etag, timestamp, VersionRef};
use super::{S3Gateway, S3_DEVICE};
use crate::datapath::now_ms;
use crate::download::{self, FileVersion};
use crate::error::RouterError;
use crate::upload::{self, StoredContent, UploadRequest};

/// S3's largest single PUT.
pub const MAX_PUT_BYTES: i64 = 5 << 30;
/// MD5 of nothing: the ETag of empty objects and folder markers.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The headers a PUT, CopyObject (REPLACE) or CreateMultipartUpload stores with a version.
pub struct StoredHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    pub metadata: Option<Metadata>,
}

impl StoredHeaders {
    pub fn into_meta(self) -> ObjectMeta {
        let expires = self.expires.and_then(|t| {
            let mut out = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut out).ok()?;
            String::from_utf8(out).ok()
        });
        ObjectMeta {
            content_type: self.content_type,
            content_encoding: self.content_encoding,
            content_disposition: self.content_disposition,
            content_language: self.content_language,
            cache_control: self.cache_control,
            expires,
            user_metadata: self
                .metadata
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect::<BTreeMap<_, _>>(),
            ..ObjectMeta::default()
        }
    }
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user_metadata.is_empty()).then(|| meta.user_metadata.clone().into_iter().collect())
}

fn expires_of(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.expires.as_deref().and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

fn parts_count(meta: &ObjectMeta) -> Option<i32> {
    (!meta.part_sizes.is_empty()).then(|| i32::try_from(meta.part_sizes.len()).unwrap_or(i32::MAX))
}

/// The version a read asks for, with its bucket's versioning state.
pub(super) struct Resolved {
    pub file: FileVersion,
    pub etag: ETag,
    pub versioning: BucketVersioning,
}

impl Resolved {
    /// Conditional-request headers against this version, in RFC 9110 §13.2.2 order:
    /// If-Match, else If-Unmodified-Since (412); then If-None-Match, else
    /// If-Modified-Since (304 for reads).
    pub fn check_conditions(
        &self,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
        if_modified_since: Option<&Timestamp>,
        if_unmodified_since: Option<&Timestamp>,
    ) -> S3Result<()> {
        let matches = |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| e.value() == self.etag.value());
        // HTTP dates have one-second resolution.
        let modified_s = self.file.modified_at_ms / 1000;
        match (if_match, if_unmodified_since) {
            (Some(c), _) if !matches(c) => return Err(s3_error!(PreconditionFailed, "If-Match does not match")),
            (None, Some(t)) if modified_s > names::millis(t) / 1000 => {
                return Err(s3_error!(PreconditionFailed, "modified since If-Unmodified-Since"));
            }
            _ => {}
        }
        match (if_none_match, if_modified_since) {
            (Some(c), _) if matches(c) => Err(s3_error!(NotModified)),
            (None, Some(t)) if modified_s <= names::millis(t) / 1000 => Err(s3_error!(NotModified)),
            _ => Ok(()),
        }
    }
}

/// A GetObject or HeadObject output with the headers both carry for a version
/// (`$r`: a `Resolved`), plus the fields given.
macro_rules! object_output {
    ($output:ident, $r:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let meta = &$r.file.meta;
        $output {
            accept_ranges: Some("bytes".into()),
            e_tag: Some($r.etag.clone()),
            last_modified: Some(timestamp($r.file.modified_at_ms)),
            content_type: Some(meta.content_type.clone().unwrap_or_else(|| "binary/octet-stream".into())),
            content_encoding: meta.content_encoding.clone(),
            content_disposition: meta.content_disposition.clone(),
            content_language: meta.content_language.clone(),
            cache_control: meta.cache_control.clone(),
            expires: expires_of(meta),
            metadata: user_metadata(meta),
            parts_count: parts_count(meta),
            version_id: S3Gateway::shown_version($r.versioning, $r.file.version),
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

impl S3Gateway {
    async fn resolve(&self, user: &str, bucket: &str, key: &str, version_id: Option<&str>) -> S3Result<Resolved> {
        let path = names::object_path(bucket, key)?;
        if names::is_folder_key(key) {
            let versioning = self.versioning(user, bucket).await?;
            return self.folder_marker(user, &path, versioning).await;
        }
        let version = match version_id.map(VersionRef::parse).transpose()? {
            None | Some(VersionRef::Null) => None,
            Some(VersionRef::Version(n)) => Some(n),
            Some(VersionRef::DeleteMarker(_)) => {
                return Err(s3_error!(MethodNotAllowed, "the version is a delete marker"));
            }
        };
        // The three lookups are independent: one round trip instead of three.
        let (versioning, file) =
            tokio::join!(self.versioning(user, bucket), download::resolve(&self.dp, user, &path, version));
        let versioning = versioning?;
        let file = match file {
            Ok(f) => f,
            Err(RouterError::NotFound(_) | RouterError::WrongKind(_)) if version.is_some() => {
                return Err(s3_error!(NoSuchVersion, "no such version of {key:?}"));
            }
            Err(RouterError::NotFound(_) | RouterError::WrongKind(_)) => {
                return Err(s3_error!(NoSuchKey, "no object {key:?} in bucket {bucket:?}"));
            }
            Err(e) => return Err(to_s3(e)),
        };
        let etag = etag(&file.meta.etag, &file.content_sha256);
        Ok(Resolved { file, etag, versioning })
    }

    /// A key ending in '/' reads as an empty object when the folder exists.
    async fn folder_marker(&self, user: &str, path: &str, versioning: BucketVersioning) -> S3Result<Resolved> {
        match crate::ops::stat(&self.dp, user, path).await {
            Ok(entry) if entry.is_folder() => Ok(Resolved {
                file: FileVersion {
                    path: path.to_owned(),
                    version: 0,
                    size: 0,
                    content_sha256: [0; 32],
                    chunks: Vec::new(),
                    modified_at_ms: entry.modified_at_ms,
                    meta: ObjectMeta::default(),
                },
                etag: ETag::Strong(EMPTY_MD5.into()),
                versioning,
            }),
            Ok(_) | Err(RouterError::NotFound(_)) => Err(s3_error!(NoSuchKey, "no folder {path:?}")),
            Err(e) => Err(to_s3(e)),
        }
    }

    pub(super) fn shown_version(versioning: BucketVersioning, version: u64) -> Option<String> {
        match versioning {
            BucketVersioning::Unversioned => None,
            BucketVersioning::Suspended => Some(names::NULL_VERSION.into()),
            BucketVersioning::Enabled => Some(names::version_id(version)),
        }
    }

    pub(super) async fn put_object_op(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let user = self.user(&req).await?;
        let input = req.input;
        let versioning = self.versioning(&user, &input.bucket).await?;
        let path = names::object_path(&input.bucket, &input.key)?;
        if input.content_length.is_some_and(|l| l > MAX_PUT_BYTES) {
            return Err(s3_error!(EntityTooLarge, "a single PUT is at most 5 GiB; use a multipart upload"));
        }
        if names::is_folder_key(&input.key) {
            if input.content_length.is_some_and(|l| l > 0) {
                return Err(s3_error!(InvalidArgument, "a key ending in '/' names a folder and takes no data"));
            }
            crate::ops::mkdir(&self.dp, &user, &path, S3_DEVICE).await.or_s3()?;
            return Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(ETag::Strong(EMPTY_MD5.into())),
                ..Default::default()
            }));
        }
        let (base_version, policy) =
            match self.write_preconditions(&user, &path, input.if_match.as_ref(), input.if_none_match.as_ref()).await {
                Ok(p) => p,
                Err(e) => {
                    body::discard(input.body, input.content_length).await;
                    return Err(e);
                }
            };
        let mut meta = StoredHeaders {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            metadata: input.metadata,
        }
        .into_meta();
        let checksum = body::declared_checksum!(input);
        let expected = ExpectedDigests::from_request(&req.headers, req.trailing_headers, input.content_md5, checksum);
        self.dp.view.shard_of(&user).or_s3()?;
        let (content, computed) = body::receive(&self.dp, expected, input.body).await?;
        meta.etag = hex::encode(content.md5);
        let up = UploadRequest {
            user_id: user.clone(),
            created_by: user.clone(),
            path,
            device_id: S3_DEVICE.into(),
            base_version,
            policy,
            meta: ObjectMeta::default(),
        };
        let outcome = upload::commit(&self.dp, &up, &content, meta.clone()).await.or_s3()?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(meta.etag)),
            version_id: Self::shown_version(versioning, outcome.version),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            size: i64::try_from(content.size).ok(),
            ..Default::default()
        }))
    }

    /// Conditional writes: `If-None-Match: *` (create only) and `If-Match: <etag>`
    /// become a base version the shard checks atomically with the commit.
    pub(super) async fn write_preconditions(
        &self,
        user: &str,
        path: &str,
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<(Option<u64>, ConflictPolicy)> {
        if if_match.is_none() && if_none_match.is_none() {
            return Ok((None, ConflictPolicy::LastWriterWins));
        }
        let current = match crate::ops::stat(&self.dp, user, path).await {
            Ok(entry) => entry.file().map(|s| (s.version, etag(&s.etag, &s.content_sha256))),
            Err(RouterError::NotFound(_)) => None,
            Err(e) => return Err(to_s3(e)),
        };
        if let Some(c) = if_none_match {
            if !c.is_any() {
                return Err(s3_error!(NotImplemented, "If-None-Match on writes supports only '*'"));
            }
            if current.is_some() {
                return Err(s3_error!(PreconditionFailed, "the object exists (If-None-Match: *)"));
            }
            // No file has version 0: any file created meanwhile makes the commit fail.
            return Ok((Some(0), ConflictPolicy::Reject));
        }
        match (if_match, current) {
            (Some(c), Some((version, tag))) if c.is_any() || c.as_etag().is_some_and(|e| e.value() == tag.value()) => {
                Ok((Some(version), ConflictPolicy::Reject))
            }
            (Some(_), None) => Err(s3_error!(NoSuchKey, "If-Match on an object that does not exist")),
            _ => Err(s3_error!(PreconditionFailed, "If-Match does not match the current ETag")),
        }
    }

    pub(super) async fn get_object_op(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let user = self.user(&req).await?;
        let i = &req.input;
        let r = self.resolve(&user, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        r.check_conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        if i.part_number.is_some() {
            return Err(s3_error!(NotImplemented, "GET by part number is not supported"));
        }
        let size = r.file.size;
        let range = match &i.range {
            Some(range) => {
                Some(range.check(size).map_err(|_| s3_error!(InvalidRange, "the range is outside the object"))?)
            }
            None => None,
        };
        let (start, end) = range.as_ref().map(|r| (r.start, r.end)).unwrap_or((0, size));
        let content_range = range.as_ref().map(|r| format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1)));
        let mut out = object_output!(GetObjectOutput, r, {
            content_length: i64::try_from(end - start).ok(),
            content_range: content_range,
        });
        let body = download::stream_file(self.dp.clone(), r.file, Some((start, end)));
        // s3s wants a Sync stream; the download stream is only Send.
        out.body = Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(body)));
        Ok(S3Response::new(out))
    }

    pub(super) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let user = self.user(&req).await?;
        let i = &req.input;
        let r = self.resolve(&user, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        r.check_conditions(
            i.if_match.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
            i.if_unmodified_since.as_ref(),
        )?;
        Ok(S3Response::new(object_output!(HeadObjectOutput, r, {
            content_length: i64::try_from(r.file.size).ok(),
        })))
    }

    pub(super) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let versioning = self.versioning(&user, &i.bucket).await?;
        let out = self.delete_one(&user, &i.bucket, &i.key, i.version_id.as_deref(), versioning).await?;
        Ok(S3Response::new(out))
    }

    /// Deletes a key (or one version of it). Deleting what does not exist succeeds, as in S3.
    async fn delete_one(
        &self,
        user: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        versioning: BucketVersioning,
    ) -> S3Result<DeleteObjectOutput> {
        let path = names::object_path(bucket, key)?;
        let entry = match crate::ops::query(
            &self.dp,
            user,
            ShardQuery::Stat { user_id: user.into(), path: path.clone(), include_deleted: true },
        )
        .await
        {
            Ok(QueryResponse::Entry(e)) => Some(e),
            Ok(_) | Err(RouterError::NotFound(_)) => None,
            Err(e) => return Err(to_s3(e)),
        };
        let Some(entry) = entry else { return Ok(DeleteObjectOutput::default()) };
        if names::is_folder_key(key) && !entry.is_folder() {
            // "x/" names a folder marker, never the object "x".
            return Ok(DeleteObjectOutput::default());
        }
        if entry.is_folder() {
            self.delete_folder_marker(user, &entry).await?;
            return Ok(DeleteObjectOutput::default());
        }
        let current = entry.file().map(|s| s.version).unwrap_or(0);
        match version_id.map(VersionRef::parse).transpose()? {
            None if versioning != BucketVersioning::Unversioned => {
                if !entry.deleted {
                    crate::ops::delete(&self.dp, user, &path, S3_DEVICE).await.or_s3()?;
                }
                Ok(DeleteObjectOutput {
                    delete_marker: Some(true),
                    version_id: Some(names::delete_marker_id(current)),
                    ..Default::default()
                })
            }
            // Without versioning a deleted object is gone for good, history included,
            // so its space comes back.
            None if versioning == BucketVersioning::Unversioned => {
                crate::ops::purge(&self.dp, user, &path, S3_DEVICE).await.or_s3()?;
                Ok(DeleteObjectOutput::default())
            }
            None | Some(VersionRef::Null) => {
                if !entry.deleted {
                    crate::ops::delete(&self.dp, user, &path, S3_DEVICE).await.or_s3()?;
                }
                Ok(DeleteObjectOutput::default())
            }
            Some(VersionRef::DeleteMarker(n)) => {
                // Removing the delete marker brings the object back.
                if entry.deleted && n == current {
                    crate::ops::restore(&self.dp, user, &path, n, user, S3_DEVICE).await.or_s3()?;
                }
                Ok(DeleteObjectOutput {
                    delete_marker: Some(true),
                    version_id: Some(names::delete_marker_id(n)),
                    ..Default::default()
                })
            }
            Some(VersionRef::Version(n)) => {
                let cmd = ShardCommand::DeleteVersion {
                    user_id: user.into(),
                    path,
                    version: n,
                    device_id: S3_DEVICE.into(),
                    now_ms: now_ms(),
                };
                match crate::ops::command(&self.dp, user, cmd).await {
                    Ok(_) | Err(RouterError::NotFound(_)) => {
                        Ok(DeleteObjectOutput { version_id: Some(names::version_id(n)), ..Default::default() })
                    }
                    Err(RouterError::InvalidArgument(m)) => Err(s3_error!(
                        NotImplemented,
                        "{m}: delete older versions first, or delete the object without a version id"
                    )),
                    Err(e) => Err(to_s3(e)),
                }
            }
        }
    }

    /// A folder is deleted through its marker key only when nothing is below it, so
    /// removing a marker never removes the objects "inside" it.
    async fn delete_folder_marker(&self, user: &str, folder: &Entry) -> S3Result<()> {
        if folder.deleted {
            return Ok(());
        }
        let page = crate::ops::list(&self.dp, user, &folder.path, None, 1).await.or_s3()?;
        if page.entries.is_empty() {
            crate::ops::delete(&self.dp, user, &folder.path, S3_DEVICE).await.or_s3()?;
        }
        Ok(())
    }

    pub(super) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let versioning = self.versioning(&user, &i.bucket).await?;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys per request"));
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        // Oldest versions of a key first, so a request that names every version of a
        // key (emptying a bucket) deletes them in an order the namespace allows.
        let mut objects = i.delete.objects;
        objects.sort_by_key(|o| {
            let order = match o.version_id.as_deref().map(VersionRef::parse) {
                Some(Ok(VersionRef::Version(n))) => n,
                _ => u64::MAX,
            };
            (o.key.clone(), order)
        });
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for o in objects {
            match self.delete_one(&user, &i.bucket, &o.key, o.version_id.as_deref(), versioning).await {
                Ok(out) if !quiet => deleted.push(DeletedObject {
                    key: Some(o.key),
                    version_id: o.version_id,
                    delete_marker: out.delete_marker,
                    delete_marker_version_id: out.delete_marker.and(out.version_id),
                }),
                Ok(_) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_owned()),
                    message: e.message().map(str::to_owned),
                    key: Some(o.key),
                    version_id: o.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
    }

    /// The source of a copy: one of this user's objects (a user's keys never reach
    /// another user's buckets).
    pub(super) async fn copy_source(&self, user: &str, source: &CopySource) -> S3Result<Resolved> {
        let CopySource::Bucket { bucket, key, version_id } = source else {
            return Err(s3_error!(NotImplemented, "access-point copy sources are not supported"));
        };
        self.resolve(user, bucket, key, version_id.as_deref()).await
    }

    pub(super) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let versioning = self.versioning(&user, &i.bucket).await?;
        let path = names::object_path(&i.bucket, &i.key)?;
        let resolved = self.copy_source(&user, &i.copy_source).await?;
        resolved
            .check_conditions(
                i.copy_source_if_match.as_ref(),
                i.copy_source_if_none_match.as_ref(),
                i.copy_source_if_modified_since.as_ref(),
                i.copy_source_if_unmodified_since.as_ref(),
            )
            .map_err(|e| if *e.code() == s3s::S3ErrorCode::NotModified { s3_error!(PreconditionFailed) } else { e })?;
        let Resolved { file: source, etag: source_etag, versioning: source_versioning } = resolved;
        let replace = i.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if source.path == path && !replace {
            return Err(s3_error!(
                InvalidRequest,
                "copying an object onto itself needs a metadata change (x-amz-metadata-directive: REPLACE)"
            ));
        }
        let mut meta = if replace {
            StoredHeaders {
                content_type: i.content_type,
                content_encoding: i.content_encoding,
                content_disposition: i.content_disposition,
                content_language: i.content_language,
                cache_control: i.cache_control,
                expires: i.expires,
                metadata: i.metadata,
            }
            .into_meta()
        } else {
            source.meta.clone()
        };
        // The content (and so its ETag and part layout) is the source's.
        meta.etag = source_etag.value().to_owned();
        meta.part_sizes = source.meta.part_sizes.clone();
        let content = StoredContent::from_version(
            source.chunks.iter().map(|(h, size)| tessera_meta::model::ChunkRef { hash: h.0, size: *size }).collect(),
            source.size,
            source.content_sha256,
            [0; 16],
        );
        let up = UploadRequest {
            user_id: user.clone(),
            created_by: user.clone(),
            path,
            device_id: S3_DEVICE.into(),
            base_version: None,
            policy: ConflictPolicy::LastWriterWins,
            meta: ObjectMeta::default(),
        };
        self.dp.view.shard_of(&user).or_s3()?;
        let outcome = upload::commit(&self.dp, &up, &content, meta).await.or_s3()?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(source_etag),
                last_modified: Some(timestamp(now_ms())),
                ..Default::default()
            }),
            version_id: Self::shown_version(versioning, outcome.version),
            copy_source_version_id: Self::shown_version(source_versioning, source.version),
            ..Default::default()
        }))
    }
}
