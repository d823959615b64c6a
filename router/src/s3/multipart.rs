//! Multipart uploads. Each part is chunked and stored as it arrives and recorded in the
//! shard with its MD5 and SHA-256 (holding references on its chunks); completion checks
//! the client's part list against what was stored and commits the parts' chunks as one
//! version — nothing is re-read or rewritten. The object's ETag is S3's
//! "MD5 of the part MD5s, dash, part count"; its SHA-256 is the composite one.

use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tessera_meta::model::multipart::MAX_PART_NUMBER;
use tessera_meta::model::versions::ConflictPolicy;
use tessera_meta::model::{
    ChosenPart, ChunkRef, CompleteMultipart, MultipartUpload as PendingUpload, PartRecord, QueryResponse, ShardCommand,
    ShardQuery, UploadId,
};

use super::body::{self, ExpectedDigests};
use super::error::{to_s3, OrS3};
use super::names::{self, timestamp};
use super::objects::{Resolved, StoredHeaders, MAX_PUT_BYTES};
use super::{S3Gateway, S3_DEVICE};
use crate::codec::hash::composite_sha256;
use crate::datapath::now_ms;
use crate::download;
use crate::error::RouterError;
use crate::upload::{self, StoredContent};

/// S3's smallest part (all but the last).
pub const MIN_PART_BYTES: u64 = 5 << 20;
const PAGE: usize = 1000;

fn parse_upload_id(id: &str) -> S3Result<UploadId> {
    hex::decode(id)
        .ok()
        .and_then(|b| UploadId::try_from(b.as_slice()).ok())
        .ok_or_else(|| s3_error!(NoSuchUpload, "no upload {id:?}"))
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "part numbers are 1 to 10000"))
}

fn unexpected<T>(other: impl std::fmt::Debug) -> S3Result<T> {
    Err(to_s3(RouterError::Metadata(format!("unexpected answer {other:?}"))))
}

/// S3's multipart ETag: MD5 of the concatenated part MD5s, "-", the part count.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    let mut h = Md5::new();
    for md5 in part_md5s {
        h.update(md5);
    }
    format!("{}-{}", hex::encode(h.finalize()), part_md5s.len())
}

impl S3Gateway {
    /// The upload, if it is this user's and for this key.
    async fn upload_of(&self, user: &str, bucket: &str, key: &str, id: &str) -> S3Result<(UploadId, PendingUpload)> {
        let upload_id = parse_upload_id(id)?;
        let q = ShardQuery::Multipart { upload_id, user_id: user.into() };
        let upload = match crate::ops::query(&self.dp, user, q).await {
            Ok(QueryResponse::Multipart(u)) => u,
            Ok(other) => return unexpected(other),
            Err(RouterError::NotFound(_)) => return Err(s3_error!(NoSuchUpload, "no upload {id:?}")),
            Err(e) => return Err(to_s3(e)),
        };
        if upload.path != names::object_path(bucket, key)? {
            return Err(s3_error!(NoSuchUpload, "upload {id:?} is for another key"));
        }
        Ok((upload_id, upload))
    }

    async fn all_parts(&self, user: &str, upload_id: UploadId) -> S3Result<Vec<PartRecord>> {
        let mut parts = Vec::new();
        let mut after = 0;
        loop {
            let q = ShardQuery::ListParts { upload_id, user_id: user.into(), after, limit: PAGE };
            let page = match crate::ops::query(&self.dp, user, q).await.or_s3()? {
                QueryResponse::Parts(p) => p,
                other => return unexpected(other),
            };
            parts.extend(page.parts);
            match page.next_after {
                Some(next) => after = next,
                None => return Ok(parts),
            }
        }
    }

    pub(super) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        self.bucket(&user, &i.bucket).await?;
        if names::is_folder_key(&i.key) {
            return Err(s3_error!(InvalidArgument, "a key ending in '/' names a folder"));
        }
        let path = names::object_path(&i.bucket, &i.key)?;
        let meta = StoredHeaders {
            content_type: i.content_type,
            content_encoding: i.content_encoding,
            content_disposition: i.content_disposition,
            content_language: i.content_language,
            cache_control: i.cache_control,
            expires: i.expires,
            metadata: i.metadata,
        }
        .into_meta();
        let upload_id: UploadId = rand::random();
        let cmd = ShardCommand::CreateMultipart { upload_id, user_id: user.clone(), path, meta, now_ms: now_ms() };
        crate::ops::command(&self.dp, &user, cmd).await.or_s3()?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(hex::encode(upload_id)),
            ..Default::default()
        }))
    }

    async fn put_part(&self, user: &str, upload_id: UploadId, number: u32, content: &StoredContent) -> S3Result<()> {
        content.keep_alive(&self.dp).await.or_s3()?;
        let part = PartRecord {
            part_number: number,
            size: content.size,
            md5: content.md5,
            sha256: content.sha256,
            chunks: content.chunks.clone(),
            uploaded_at_ms: now_ms(),
        };
        let cmd = ShardCommand::PutPart { upload_id, user_id: user.into(), part };
        match crate::ops::command(&self.dp, user, cmd).await {
            Ok(_) => Ok(()),
            Err(RouterError::NotFound(_)) => Err(s3_error!(NoSuchUpload, "the upload was completed or aborted")),
            Err(e) => Err(to_s3(e)),
        }
    }

    pub(super) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let number = part_number(i.part_number)?;
        if i.content_length.is_some_and(|l| l > MAX_PUT_BYTES) {
            return Err(s3_error!(EntityTooLarge, "a part is at most 5 GiB"));
        }
        let (upload_id, _) = self.upload_of(&user, &i.bucket, &i.key, &i.upload_id).await?;
        let checksum = body::declared_checksum!(i);
        let expected = ExpectedDigests::from_request(&req.headers, req.trailing_headers, i.content_md5, checksum);
        let (content, computed) = body::receive(&self.dp, expected, i.body).await?;
        self.put_part(&user, upload_id, number, &content).await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(hex::encode(content.md5))),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy_op(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let number = part_number(i.part_number)?;
        let (upload_id, _) = self.upload_of(&user, &i.bucket, &i.key, &i.upload_id).await?;
        let Resolved { file: source, etag: source_etag, .. } = self.copy_source(&user, &i.copy_source).await?;
        let range = match i.copy_source_range.as_deref() {
            Some(r) => {
                let parsed = Range::parse(r).map_err(|_| s3_error!(InvalidArgument, "bad x-amz-copy-source-range"))?;
                let range = parsed
                    .check(source.size)
                    .map_err(|_| s3_error!(InvalidRange, "the range is outside the source"))?;
                Some((range.start, range.end))
            }
            None => None,
        };
        let whole_md5 = hex::decode(source_etag.value()).ok().and_then(|b| <[u8; 16]>::try_from(b).ok());
        let content = match (range, whole_md5) {
            // The whole of a single-part object: its chunks, MD5 and SHA-256 are the part's.
            (None, Some(md5)) if source.meta.part_sizes.is_empty() => StoredContent::from_version(
                source.chunks.iter().map(|(h, size)| ChunkRef { hash: h.0, size: *size }).collect(),
                source.size,
                source.content_sha256,
                md5,
            ),
            // Otherwise the bytes go through the data path again; chunks that already
            // exist are deduplicated, so only the range's edges are stored anew.
            _ => {
                let body = download::stream_file(self.dp.clone(), source.clone(), range);
                upload::store_content(&self.dp, Box::pin(body)).await.or_s3()?
            }
        };
        if content.size > MAX_PUT_BYTES as u64 {
            return Err(s3_error!(EntityTooLarge, "a part is at most 5 GiB"));
        }
        self.put_part(&user, upload_id, number, &content).await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(hex::encode(content.md5))),
                last_modified: Some(timestamp(now_ms())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let versioning = self.versioning(&user, &i.bucket).await?;
        let (upload_id, _) = self.upload_of(&user, &i.bucket, &i.key, &i.upload_id).await?;
        let requested = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(MalformedXML, "the part list is empty"));
        }
        let stored = self.all_parts(&user, upload_id).await?;
        let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
        for p in &requested {
            let number = part_number(p.part_number.ok_or_else(|| s3_error!(MalformedXML, "a part has no number"))?)?;
            if chosen.last().is_some_and(|last| last.part_number >= number) {
                return Err(s3_error!(InvalidPartOrder, "parts must be listed in ascending order"));
            }
            let part = stored
                .iter()
                .find(|s| s.part_number == number)
                .filter(|s| p.e_tag.as_ref().is_none_or(|e| e.value().trim_matches('"') == hex::encode(s.md5)))
                .ok_or_else(|| s3_error!(InvalidPart, "part {number} was not uploaded or its ETag differs"))?;
            chosen.push(part);
        }
        if let Some(small) = chosen[..chosen.len() - 1].iter().find(|p| p.size < MIN_PART_BYTES) {
            return Err(s3_error!(EntityTooSmall, "part {} is smaller than 5 MiB", small.part_number));
        }
        let etag = multipart_etag(&chosen.iter().map(|p| p.md5).collect::<Vec<_>>());
        let cmd = ShardCommand::CompleteMultipart(CompleteMultipart {
            upload_id,
            user_id: user.clone(),
            parts: chosen.iter().map(|p| ChosenPart { part_number: p.part_number, sha256: p.sha256 }).collect(),
            etag: etag.clone(),
            content_sha256: composite_sha256(&chosen.iter().map(|p| p.sha256).collect::<Vec<_>>()),
            created_by: user.clone(),
            device_id: S3_DEVICE.into(),
            policy: ConflictPolicy::LastWriterWins,
            now_ms: now_ms(),
        });
        let version = match crate::ops::command(&self.dp, &user, cmd).await {
            Ok(tessera_meta::model::ShardResponse::Committed(c)) => c.version,
            Ok(other) => return unexpected(other),
            Err(RouterError::NotFound(m)) => return Err(s3_error!(InvalidPart, "{m}")),
            Err(e) => return Err(to_s3(e)),
        };
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            location: Some(format!("/{}/{}", i.bucket, i.key)),
            bucket: Some(i.bucket),
            key: Some(i.key),
            e_tag: Some(ETag::Strong(etag)),
            version_id: Self::shown_version(versioning, version),
            ..Default::default()
        }))
    }

    pub(super) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let (upload_id, _) = self.upload_of(&user, &i.bucket, &i.key, &i.upload_id).await?;
        match crate::ops::command(&self.dp, &user, ShardCommand::AbortMultipart { upload_id, user_id: user.clone() })
            .await
        {
            Ok(_) => Ok(S3Response::new(AbortMultipartUploadOutput::default())),
            Err(RouterError::NotFound(_)) => Err(s3_error!(NoSuchUpload, "the upload was completed or aborted")),
            Err(e) => Err(to_s3(e)),
        }
    }

    /// Aborts every pending upload whose path starts with `prefix` (a bucket being deleted).
    pub(super) async fn abort_uploads_under(&self, user: &str, prefix: &str) -> S3Result<()> {
        loop {
            let q = ShardQuery::ListMultipart { user_id: user.into(), prefix: prefix.into(), after: None, limit: PAGE };
            let page = match crate::ops::query(&self.dp, user, q).await.or_s3()? {
                QueryResponse::MultipartUploads(p) => p,
                other => return unexpected(other),
            };
            if page.uploads.is_empty() {
                return Ok(());
            }
            for u in page.uploads {
                let cmd = ShardCommand::AbortMultipart { upload_id: u.upload_id, user_id: user.into() };
                match crate::ops::command(&self.dp, user, cmd).await {
                    Ok(_) | Err(RouterError::NotFound(_)) => {}
                    Err(e) => return Err(to_s3(e)),
                }
            }
        }
    }

    pub(super) async fn list_parts_op(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let (upload_id, _) = self.upload_of(&user, &i.bucket, &i.key, &i.upload_id).await?;
        let limit = i.max_parts.map_or(PAGE, |n| usize::try_from(n).unwrap_or(0).clamp(1, PAGE));
        let after = u32::try_from(i.part_number_marker.unwrap_or(0)).unwrap_or(0);
        let q = ShardQuery::ListParts { upload_id, user_id: user.clone(), after, limit };
        let page = match crate::ops::query(&self.dp, &user, q).await.or_s3()? {
            QueryResponse::Parts(p) => p,
            other => return unexpected(other),
        };
        let owner = Owner { id: Some(user.clone()), display_name: Some(user.clone()) };
        let parts = page
            .parts
            .iter()
            .map(|p| Part {
                part_number: Some(p.part_number as i32),
                size: i64::try_from(p.size).ok(),
                e_tag: Some(ETag::Strong(hex::encode(p.md5))),
                last_modified: Some(timestamp(p.uploaded_at_ms)),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            part_number_marker: i.part_number_marker,
            next_part_number_marker: page.next_after.map(|n| n as i32),
            max_parts: Some(limit as i32),
            is_truncated: Some(page.next_after.is_some()),
            parts: Some(parts),
            initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
            owner: Some(owner),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_op(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        self.bucket(&user, &i.bucket).await?;
        if i.delimiter.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(s3_error!(NotImplemented, "listing uploads with a delimiter is not supported"));
        }
        let limit = i.max_uploads.map_or(PAGE, |n| usize::try_from(n).unwrap_or(0).clamp(1, PAGE));
        let prefix = format!("/{}/{}", i.bucket, i.prefix.as_deref().unwrap_or(""));
        let after = match (i.key_marker.as_deref().filter(|k| !k.is_empty()), i.upload_id_marker.as_deref()) {
            (Some(key), marker) => {
                let path = names::object_path(&i.bucket, key)?;
                // Without an upload-id marker, every upload of the marker key is skipped.
                let id = match marker.filter(|m| !m.is_empty()) {
                    Some(m) => parse_upload_id(m)?,
                    None => [0xFF; 16],
                };
                Some((path, id))
            }
            (None, _) => None,
        };
        let q = ShardQuery::ListMultipart { user_id: user.clone(), prefix, after, limit };
        let page = match crate::ops::query(&self.dp, &user, q).await.or_s3()? {
            QueryResponse::MultipartUploads(p) => p,
            other => return unexpected(other),
        };
        let owner = Owner { id: Some(user.clone()), display_name: Some(user.clone()) };
        let uploads = page
            .uploads
            .iter()
            .map(|u| MultipartUpload {
                key: Some(names::key_of(&i.bucket, &u.path)),
                upload_id: Some(hex::encode(u.upload_id)),
                initiated: Some(timestamp(u.initiated_at_ms)),
                initiator: Some(Initiator { id: owner.id.clone(), display_name: owner.display_name.clone() }),
                owner: Some(owner.clone()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect();
        let truncated = page.next_after.is_some();
        let (next_key, next_id) =
            page.next_after.map(|(p, id)| (names::key_of(&i.bucket, &p), hex::encode(id))).unzip();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: i.prefix,
            key_marker: i.key_marker,
            upload_id_marker: i.upload_id_marker,
            next_key_marker: next_key,
            next_upload_id_marker: next_id,
            max_uploads: Some(limit as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }
}
