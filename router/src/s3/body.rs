//! Request bodies of PUT and UploadPart: the byte stream the data path chunks, and the
//! integrity checks S3 clients ask for — `Content-MD5`, `x-amz-checksum-*` in headers
//! or in an aws-chunked trailer. Checks run after the last byte and before anything is
//! committed, so a body that fails one stores chunks nobody references (GC takes them)
//! and changes no file.

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::{Checksum, StreamingBlob};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result, TrailingHeaders};

use super::error::to_s3;
use crate::error::RouterError;

/// What the client said the body hashes to.
#[derive(Default)]
pub struct ExpectedDigests {
    pub content_md5: Option<String>,
    pub checksum: Checksum,
    /// Checksums announced in `x-amz-trailer`, to be read once the body has ended.
    pub trailer: Option<TrailingHeaders>,
    pub trailer_names: Vec<String>,
}

impl ExpectedDigests {
    pub fn from_request(
        headers: &HeaderMap,
        trailer: Option<TrailingHeaders>,
        content_md5: Option<String>,
        checksum: Checksum,
    ) -> Self {
        let trailer_names = headers
            .get_all("x-amz-trailer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        Self { content_md5, checksum, trailer, trailer_names }
    }

    fn wants(&self, header: &str, given: &Option<String>) -> bool {
        given.is_some() || self.trailer_names.iter().any(|n| n == header)
    }

    fn hasher(&self) -> ChecksumHasher {
        let c = &self.checksum;
        let mut h = ChecksumHasher::default();
        if self.wants("x-amz-checksum-crc32", &c.checksum_crc32) {
            h.crc32 = Some(Default::default());
        }
        if self.wants("x-amz-checksum-crc32c", &c.checksum_crc32c) {
            h.crc32c = Some(Default::default());
        }
        if self.wants("x-amz-checksum-crc64nvme", &c.checksum_crc64nvme) {
            h.crc64nvme = Some(Default::default());
        }
        if self.wants("x-amz-checksum-sha1", &c.checksum_sha1) {
            h.sha1 = Some(s3s::crypto::Sha1::new());
        }
        if self.wants("x-amz-checksum-sha256", &c.checksum_sha256) {
            h.sha256 = Some(s3s::crypto::Sha256::new());
        }
        h
    }
}

/// The checksums a PutObject or UploadPart input declares in its headers.
macro_rules! declared_checksum {
    ($input:expr) => {
        s3s::dto::Checksum {
            checksum_crc32: $input.checksum_crc32,
            checksum_crc32c: $input.checksum_crc32c,
            checksum_crc64nvme: $input.checksum_crc64nvme,
            checksum_sha1: $input.checksum_sha1,
            checksum_sha256: $input.checksum_sha256,
            ..Default::default()
        }
    };
}
pub(crate) use declared_checksum;

/// Most bytes of a refused request's body read and dropped, so a small request
/// refused before its body was read leaves the HTTP/1.1 connection ready for the
/// client's next request; larger bodies are left to the server to close.
const DISCARD_LIMIT: i64 = 1 << 20;

/// Reads and drops the body of a request answered with an error before it was read.
pub async fn discard(body: Option<StreamingBlob>, content_length: Option<i64>) {
    if content_length.is_some_and(|l| l > DISCARD_LIMIT) {
        return;
    }
    let Some(mut body) = body else { return };
    let mut seen = 0usize;
    while let Some(Ok(piece)) = body.next().await {
        seen += piece.len();
        if seen as i64 > DISCARD_LIMIT {
            return;
        }
    }
}

/// Stores a request body's chunks and checks it against what the client declared;
/// returns the stored content (not yet part of any version) and the checksums
/// computed, for the response.
pub async fn receive(
    dp: &Arc<crate::datapath::DataPath>,
    expected: ExpectedDigests,
    body: Option<StreamingBlob>,
) -> S3Result<(crate::upload::StoredContent, Checksum)> {
    let checked = CheckedBody::new(expected);
    let content = crate::upload::store_content(dp, checked.stream(body)).await.map_err(|e| checked.explain(e))?;
    let computed = checked.verify(&content.md5)?;
    Ok((content, computed))
}

/// A request body being read, with the checksums it must match.
struct CheckedBody {
    expected: ExpectedDigests,
    hasher: Arc<Mutex<ChecksumHasher>>,
    /// Why reading the body failed, as the S3 error the client should see.
    failure: Arc<Mutex<Option<S3Error>>>,
}

/// The S3 error for a body that could not be read: a bad aws-chunked signature, or a
/// body that ended before its length (the stream error's text is all `s3s` exposes).
fn body_failure(e: &dyn std::fmt::Display) -> S3Error {
    let text = e.to_string();
    if text.contains("SignatureMismatch") {
        s3_error!(SignatureDoesNotMatch, "a chunk signature of the body does not match")
    } else {
        S3Error::with_message(S3ErrorCode::IncompleteBody, format!("the request body could not be read: {text}"))
    }
}

impl CheckedBody {
    fn new(expected: ExpectedDigests) -> Self {
        let hasher = Arc::new(Mutex::new(expected.hasher()));
        Self { expected, hasher, failure: Arc::default() }
    }

    /// The error to answer when storing the body failed: the body's own failure if
    /// reading it was the cause, otherwise the storage error.
    fn explain(&self, e: RouterError) -> S3Error {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| to_s3(e))
    }

    /// The body as the data path reads it. A missing body is an empty one.
    fn stream(
        &self,
        body: Option<StreamingBlob>,
    ) -> impl Stream<Item = Result<Bytes, RouterError>> + Send + Unpin + 'static {
        let (hasher, failure) = (self.hasher.clone(), self.failure.clone());
        let body = body.map(|b| b.boxed()).unwrap_or_else(|| futures::stream::empty().boxed());
        body.map(move |piece| match piece {
            Ok(bytes) => {
                hasher.lock().unwrap_or_else(|p| p.into_inner()).update(&bytes);
                Ok(bytes)
            }
            Err(e) => {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(body_failure(&e));
                Err(RouterError::InvalidArgument(format!("request body could not be read: {e}")))
            }
        })
    }

    /// Compares what was sent with what the client declared; `md5` is the body's MD5.
    /// Returns the checksums computed, for the response.
    fn verify(self, md5: &[u8; 16]) -> S3Result<Checksum> {
        if let Some(declared) = &self.expected.content_md5 {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(declared.trim())
                .map_err(|_| s3_error!(InvalidDigest, "Content-MD5 is not base64"))?;
            if raw.len() != 16 {
                return Err(s3_error!(InvalidDigest, "Content-MD5 is not 16 bytes"));
            }
            if raw != md5 {
                return Err(s3_error!(BadDigest, "the body's MD5 does not match Content-MD5"));
            }
        }
        let hasher = std::mem::take(&mut *self.hasher.lock().unwrap_or_else(|p| p.into_inner()));
        let computed = hasher.finalize();
        let mut declared = self.expected.checksum.clone();
        if let Some(trailer) = self.expected.trailer.as_ref().and_then(|t| t.take()) {
            let get = |name: &str| trailer.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            declared.checksum_crc32 = declared.checksum_crc32.or_else(|| get("x-amz-checksum-crc32"));
            declared.checksum_crc32c = declared.checksum_crc32c.or_else(|| get("x-amz-checksum-crc32c"));
            declared.checksum_crc64nvme = declared.checksum_crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
            declared.checksum_sha1 = declared.checksum_sha1.or_else(|| get("x-amz-checksum-sha1"));
            declared.checksum_sha256 = declared.checksum_sha256.or_else(|| get("x-amz-checksum-sha256"));
        }
        let pairs = [
            ("CRC32", &declared.checksum_crc32, &computed.checksum_crc32),
            ("CRC32C", &declared.checksum_crc32c, &computed.checksum_crc32c),
            ("CRC64NVME", &declared.checksum_crc64nvme, &computed.checksum_crc64nvme),
            ("SHA1", &declared.checksum_sha1, &computed.checksum_sha1),
            ("SHA256", &declared.checksum_sha256, &computed.checksum_sha256),
        ];
        for (name, declared, computed) in pairs {
            if let (Some(d), Some(c)) = (declared, computed) {
                if d.trim() != c {
                    return Err(s3_error!(BadDigest, "the body's {name} checksum does not match the one sent"));
                }
            }
        }
        Ok(computed)
    }
}
