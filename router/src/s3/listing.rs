//! ListObjects (v1 and v2) and ListObjectVersions. Every page is one range scan of the
//! shard's sorted entry index from where the last page ended (continuation tokens are
//! the last key returned), so a bucket of millions of keys streams page by page and
//! nothing is ever loaded whole.

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use tessera_meta::model::versions::FileRef;
use tessera_meta::model::{BucketVersioning, Entry, ObjectPage, QueryResponse, ShardQuery, VersionPage};

use super::error::{to_s3, OrS3};
use super::names::{self, etag, timestamp, VersionRef};
use super::S3Gateway;
use crate::error::RouterError;

const DEFAULT_MAX_KEYS: i32 = 1000;

/// What `encoding-type=url` leaves alone (as S3 does): unreserved characters and '/'.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(encoding_type: Option<&EncodingType>) -> S3Result<Self> {
        match encoding_type.map(|e| e.as_str()) {
            None => Ok(Self(false)),
            Some(EncodingType::URL) => Ok(Self(true)),
            Some(other) => Err(s3_error!(InvalidArgument, "unknown encoding-type {other:?}")),
        }
    }

    fn key(&self, key: String) -> String {
        if self.0 {
            utf8_percent_encode(&key, KEY_ENCODE).to_string()
        } else {
            key
        }
    }

    fn opt(&self, value: Option<String>) -> Option<String> {
        value.map(|v| self.key(v))
    }
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(DEFAULT_MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(n.min(DEFAULT_MAX_KEYS) as usize),
    }
}

fn delimiter_char(delimiter: Option<&str>) -> S3Result<Option<char>> {
    match delimiter {
        None | Some("") => Ok(None),
        Some(d) => {
            let mut chars = d.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(Some(c)),
                _ => Err(s3_error!(NotImplemented, "only single-character delimiters are supported")),
            }
        }
    }
}

fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))
}

/// One page of the bucket's objects (or common prefixes) after `start_after` (a key).
struct KeyPage {
    objects: Vec<Entry>,
    prefixes: Vec<String>,
    /// The last key or prefix returned, when more follow.
    next: Option<String>,
}

impl S3Gateway {
    async fn key_page(
        &self,
        user: &str,
        bucket: &str,
        prefix: &str,
        delimiter: Option<char>,
        start_after: Option<&str>,
        limit: usize,
        include_deleted: bool,
    ) -> S3Result<KeyPage> {
        if limit == 0 {
            return Ok(KeyPage { objects: Vec::new(), prefixes: Vec::new(), next: None });
        }
        let base = format!("/{bucket}/");
        let q = ShardQuery::ListObjects {
            user_id: user.into(),
            prefix: format!("{base}{prefix}"),
            delimiter,
            start_after: start_after.map(|k| format!("{base}{k}")),
            limit,
            include_deleted,
        };
        let page: ObjectPage = match crate::ops::query(&self.dp, user, q).await.or_s3()? {
            QueryResponse::Objects(p) => p,
            other => return Err(to_s3(RouterError::Metadata(format!("unexpected answer {other:?}")))),
        };
        Ok(KeyPage {
            objects: page.entries,
            prefixes: page.common_prefixes.iter().map(|p| names::key_of(bucket, p)).collect(),
            next: page.next_start_after.map(|p| names::key_of(bucket, &p)),
        })
    }

    fn object_of(bucket: &str, e: &Entry, enc: &Encoder) -> Object {
        let state = e.file();
        Object {
            key: Some(enc.key(names::key_of(bucket, &e.path))),
            size: state.and_then(|s| i64::try_from(s.size).ok()),
            e_tag: state.map(|s| etag(&s.etag, &s.content_sha256)),
            last_modified: Some(timestamp(e.modified_at_ms)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            ..Default::default()
        }
    }

    pub(super) async fn list_objects_v2_op(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let user = self.user(&req).await?;
        let i = req.input;
        self.bucket(&user, &i.bucket).await?;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let limit = max_keys(i.max_keys)?;
        let delimiter = delimiter_char(i.delimiter.as_deref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let after = match &i.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => i.start_after.clone(),
        };
        let page = self.key_page(&user, &i.bucket, &prefix, delimiter, after.as_deref(), limit, false).await?;
        let key_count = (page.objects.len() + page.prefixes.len()) as i32;
        let owner = i.fetch_owner.unwrap_or(false).then(|| Owner { id: Some(user.clone()), display_name: Some(user) });
        let contents = page
            .objects
            .iter()
            .map(|e| Object { owner: owner.clone(), ..Self::object_of(&i.bucket, e, &enc) })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.key(prefix)),
            delimiter: enc.opt(i.delimiter),
            max_keys: Some(limit as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.next.is_some()),
            continuation_token: i.continuation_token,
            next_continuation_token: page.next.as_deref().map(encode_token),
            start_after: enc.opt(i.start_after),
            contents: Some(contents),
            common_prefixes: Some(
                page.prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.key(p)) }).collect(),
            ),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_op(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        self.bucket(&user, &i.bucket).await?;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let limit = max_keys(i.max_keys)?;
        let delimiter = delimiter_char(i.delimiter.as_deref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let page = self.key_page(&user, &i.bucket, &prefix, delimiter, i.marker.as_deref(), limit, false).await?;
        let owner = Owner { id: Some(user.clone()), display_name: Some(user) };
        let contents = page
            .objects
            .iter()
            .map(|e| Object { owner: Some(owner.clone()), ..Self::object_of(&i.bucket, e, &enc) })
            .collect();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.key(prefix)),
            delimiter: enc.opt(i.delimiter),
            marker: Some(enc.key(i.marker.unwrap_or_default())),
            max_keys: Some(limit as i32),
            is_truncated: Some(page.next.is_some()),
            next_marker: enc.opt(page.next),
            contents: Some(contents),
            common_prefixes: Some(
                page.prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.key(p)) }).collect(),
            ),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    async fn versions_of(&self, user: &str, path: &str, before: Option<u64>, limit: usize) -> S3Result<VersionPage> {
        let q = ShardQuery::ListVersions { user_id: user.into(), file: FileRef::Path(path.into()), before, limit };
        match crate::ops::query(&self.dp, user, q).await.or_s3()? {
            QueryResponse::Versions(p) => Ok(p),
            other => Err(to_s3(RouterError::Metadata(format!("unexpected answer {other:?}")))),
        }
    }

    pub(super) async fn list_object_versions_op(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let user = self.user(&req).await?;
        let i = req.input;
        let versioning = self.versioning(&user, &i.bucket).await?;
        let enc = Encoder::new(i.encoding_type.as_ref())?;
        let limit = max_keys(i.max_keys)?;
        let delimiter = delimiter_char(i.delimiter.as_deref())?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let owner = Owner { id: Some(user.clone()), display_name: Some(user.clone()) };
        let mut out = VersionListing::default();
        // A page that ended inside a key's history resumes there.
        let mut after_key = i.key_marker.clone().filter(|k| !k.is_empty());
        if let (Some(key), Some(marker)) = (&after_key, i.version_id_marker.as_deref().filter(|m| !m.is_empty())) {
            let before = match VersionRef::parse(marker)? {
                VersionRef::Version(n) => n,
                VersionRef::DeleteMarker(n) => n + 1,
                VersionRef::Null => 0,
            };
            let path = names::object_path(&i.bucket, key)?;
            if before > 0 {
                self.add_versions(&user, &path, key, Some(before), false, limit, &mut out, &owner).await?;
            }
        }
        while out.count() < limit && out.next.is_none() {
            let page = self
                .key_page(&user, &i.bucket, &prefix, delimiter, after_key.as_deref(), limit - out.count(), true)
                .await?;
            out.prefixes.extend(page.prefixes);
            for entry in &page.objects {
                let key = names::key_of(&i.bucket, &entry.path);
                if versioning == BucketVersioning::Unversioned {
                    if !entry.deleted {
                        out.push_version(Self::null_version(&i.bucket, entry, &owner), &key, limit);
                    }
                } else {
                    if entry.deleted {
                        out.push_marker(entry, &key, &owner, limit);
                    }
                    self.add_versions(&user, &entry.path, &key, None, !entry.deleted, limit, &mut out, &owner).await?;
                }
                if out.next.is_some() {
                    break;
                }
            }
            match page.next {
                Some(next) if out.next.is_none() => after_key = Some(next),
                _ => break,
            }
        }
        let truncated = out.next.is_some();
        let (next_key, next_version) = out.next.take().unzip();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket.clone()),
            prefix: Some(enc.key(prefix)),
            delimiter: enc.opt(i.delimiter),
            key_marker: enc.opt(i.key_marker),
            version_id_marker: i.version_id_marker,
            max_keys: Some(limit as i32),
            is_truncated: Some(truncated),
            next_key_marker: enc.opt(next_key),
            next_version_id_marker: next_version,
            versions: Some(
                out.versions
                    .into_iter()
                    .map(|mut v| {
                        v.key = enc.opt(v.key);
                        v
                    })
                    .collect(),
            ),
            delete_markers: Some(
                out.markers
                    .into_iter()
                    .map(|mut m| {
                        m.key = enc.opt(m.key);
                        m
                    })
                    .collect(),
            ),
            common_prefixes: Some(
                out.prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(enc.key(p)) }).collect(),
            ),
            encoding_type: i.encoding_type,
            ..Default::default()
        }))
    }

    fn null_version(bucket: &str, e: &Entry, owner: &Owner) -> ObjectVersion {
        let object = Self::object_of(bucket, e, &Encoder(false));
        ObjectVersion {
            key: object.key,
            size: object.size,
            e_tag: object.e_tag,
            last_modified: object.last_modified,
            is_latest: Some(true),
            version_id: Some(names::NULL_VERSION.into()),
            owner: Some(owner.clone()),
            storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
            ..Default::default()
        }
    }

    /// Appends the kept versions of one file older than `before`, newest first, until
    /// the page is full.
    #[allow(clippy::too_many_arguments)]
    async fn add_versions(
        &self,
        user: &str,
        path: &str,
        key: &str,
        mut before: Option<u64>,
        latest_first: bool,
        limit: usize,
        out: &mut VersionListing,
        owner: &Owner,
    ) -> S3Result<()> {
        let mut latest = latest_first;
        while out.next.is_none() {
            let room = limit.saturating_sub(out.count()).clamp(1, 1000);
            let page = self.versions_of(user, path, before, room).await?;
            for v in &page.versions {
                let version = ObjectVersion {
                    key: Some(key.to_owned()),
                    size: i64::try_from(v.size).ok(),
                    e_tag: Some(etag(&v.etag, &v.content_sha256)),
                    last_modified: Some(timestamp(v.created_at_ms)),
                    is_latest: Some(latest),
                    version_id: Some(names::version_id(v.version)),
                    owner: Some(owner.clone()),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                };
                latest = false;
                out.push_version(version, key, limit);
                if out.next.is_some() {
                    return Ok(());
                }
            }
            match page.next_before {
                Some(next) => before = Some(next),
                None => return Ok(()),
            }
        }
        Ok(())
    }
}

/// A ListObjectVersions page being filled.
#[derive(Default)]
struct VersionListing {
    versions: Vec<ObjectVersion>,
    markers: Vec<DeleteMarkerEntry>,
    prefixes: Vec<String>,
    /// (key, version id) to resume from when the page is full.
    next: Option<(String, String)>,
}

impl VersionListing {
    fn count(&self) -> usize {
        self.versions.len() + self.markers.len() + self.prefixes.len()
    }

    fn full_after(&mut self, key: &str, id: &str, limit: usize) {
        if self.count() >= limit {
            self.next = Some((key.to_owned(), id.to_owned()));
        }
    }

    fn push_version(&mut self, v: ObjectVersion, key: &str, limit: usize) {
        let id = v.version_id.clone().unwrap_or_default();
        self.versions.push(v);
        self.full_after(key, &id, limit);
    }

    /// A deleted file's delete marker is its latest "version".
    fn push_marker(&mut self, e: &Entry, key: &str, owner: &Owner, limit: usize) {
        let id = names::delete_marker_id(e.file().map(|s| s.version).unwrap_or(0));
        self.markers.push(DeleteMarkerEntry {
            key: Some(key.to_owned()),
            version_id: Some(id.clone()),
            is_latest: Some(true),
            last_modified: Some(timestamp(e.modified_at_ms)),
            owner: Some(owner.clone()),
        });
        self.full_after(key, &id, limit);
    }
}
