//! Download: a version's chunk list → each chunk rebuilt from any k of its
//! fragments → SHA-256 checked → streamed in order with read-ahead.
//!
//! Each chunk is read by [`crate::chunk_read`] (degraded and hedged reads live
//! there). A chunk that cannot be rebuilt, or whose hash does not match, ends
//! the stream with an error: wrong bytes are never returned.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tessera_meta::model::versions::FileRef;
use tessera_meta::model::{EntryKind, ObjectMeta, QueryResponse, ShardQuery};
use tessera_proto::ChunkHash;

pub use crate::chunk_read::read_chunk;
use crate::codec::hash::{CompositeHasher, ContentHasher};
use crate::datapath::DataPath;
use crate::error::RouterError;

/// A file version as the download path needs it.
#[derive(Debug, Clone)]
pub struct FileVersion {
    pub path: String,
    pub version: u64,
    pub size: u64,
    pub content_sha256: [u8; 32],
    pub chunks: Vec<(ChunkHash, u64)>,
    pub modified_at_ms: i64,
    pub meta: ObjectMeta,
}

/// The whole-content check: plain SHA-256, or the composite one of a multipart upload.
enum WholeContentHasher {
    Plain(ContentHasher),
    Composite(CompositeHasher),
}

impl WholeContentHasher {
    fn for_file(file: &FileVersion) -> Self {
        if file.meta.part_sizes.is_empty() {
            Self::Plain(ContentHasher::default())
        } else {
            Self::Composite(CompositeHasher::new(&file.meta.part_sizes))
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Plain(h) => h.update(data),
            Self::Composite(h) => h.update(data),
        }
    }

    fn finish(self) -> [u8; 32] {
        match self {
            Self::Plain(h) => h.finish(),
            Self::Composite(h) => h.finish(),
        }
    }
}

async fn shard_query(dp: &DataPath, user_id: &str, q: ShardQuery) -> Result<QueryResponse, RouterError> {
    crate::ops::query(dp, user_id, q).await
}

/// Looks up the current (or a given) version of a file.
pub async fn resolve(
    dp: &DataPath,
    user_id: &str,
    path: &str,
    version: Option<u64>,
) -> Result<FileVersion, RouterError> {
    let entry = match shard_query(
        dp,
        user_id,
        ShardQuery::Stat { user_id: user_id.into(), path: path.into(), include_deleted: version.is_some() },
    )
    .await?
    {
        QueryResponse::Entry(e) => e,
        other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    };
    let EntryKind::File(state) = &entry.kind else {
        return Err(RouterError::WrongKind(format!("{path} is a folder")));
    };
    let wanted = version.unwrap_or(state.version);
    let record = match shard_query(
        dp,
        user_id,
        ShardQuery::GetVersion { user_id: user_id.into(), file: FileRef::Path(path.into()), version: wanted },
    )
    .await?
    {
        QueryResponse::Version(v) => v,
        other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
    };
    Ok(FileVersion {
        path: entry.path.clone(),
        version: record.version,
        size: record.size,
        content_sha256: record.content_sha256,
        chunks: record.chunks.iter().map(|c| (ChunkHash(c.hash), c.size)).collect(),
        modified_at_ms: record.created_at_ms,
        meta: record.meta,
    })
}

/// Streams `file` (or bytes `range.0..range.1` of it) in order, reading up to
/// `parallel_chunks` chunks ahead. When the whole file is read, its SHA-256
/// is checked too; a mismatch ends the stream with an error.
pub fn stream_file(
    dp: Arc<DataPath>,
    file: FileVersion,
    range: Option<(u64, u64)>,
) -> impl Stream<Item = Result<Bytes, RouterError>> + Send + 'static {
    let (start, end) = range.unwrap_or((0, file.size));
    let whole = start == 0 && end == file.size;
    // Chunks that overlap the range, with the slice of each to send.
    let mut offset = 0u64;
    let mut parts = Vec::new();
    for (hash, size) in &file.chunks {
        let (c_start, c_end) = (offset, offset + size);
        offset = c_end;
        if c_end <= start || c_start >= end {
            continue;
        }
        let from = start.saturating_sub(c_start) as usize;
        let to = (end.min(c_end) - c_start) as usize;
        parts.push((*hash, *size, from, to));
    }
    let read_ahead = dp.config.parallel_chunks.max(1);
    let expected = file.content_sha256;
    let chunks = futures::stream::iter(parts)
        .map(move |(hash, size, from, to)| {
            let dp = dp.clone();
            async move { read_chunk(&dp, hash, size).await.map(|b| b.slice(from..to)) }
        })
        .buffered(read_ahead);
    let mut hasher = whole.then(|| WholeContentHasher::for_file(&file));
    let mut failed = false;
    let mut verified = false;
    chunks.map(Some).chain(futures::stream::once(async { None })).filter_map(move |item| {
        let out = match item {
            _ if failed || verified => None,
            Some(Ok(bytes)) => {
                if let Some(h) = hasher.as_mut() {
                    h.update(&bytes);
                }
                Some(Ok(bytes))
            }
            Some(Err(e)) => {
                failed = true;
                Some(Err(e))
            }
            None => {
                verified = true;
                match hasher.take().map(WholeContentHasher::finish) {
                    Some(actual) if actual != expected => {
                        Some(Err(RouterError::Integrity("file content does not match its SHA-256".into())))
                    }
                    _ => None,
                }
            }
        };
        futures::future::ready(out)
    })
}
