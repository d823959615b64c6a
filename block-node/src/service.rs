//! The `BlockStore` gRPC service: validates requests, runs RocksDB work on the
//! blocking pool, keeps the Bloom filter and metrics current.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{Stream, StreamExt};
use tessera_proto::block::block_store_server::BlockStore;
use tessera_proto::block::{self as pb, get_bloom_response, get_fragment_response, put_fragment_request};
use tessera_proto::ChunkHash;
use tonic::{Request, Response, Status, Streaming};

use crate::bloom::{BloomUpdate, HeldChunks};
use crate::error::StoreError;
use crate::fragment::{FragmentKey, FragmentMeta};
use crate::metrics::BlockMetrics;
use crate::store::{DeleteOutcome, FragmentStore, PutOutcome};

/// Size of the data pieces a fragment is streamed in.
pub const DATA_PIECE: usize = 1 << 20;
/// Most hashes accepted in one BatchHas or Delete call.
pub const MAX_BATCH: usize = 10_000;

#[derive(Clone)]
pub struct BlockService {
    pub(crate) store: Arc<FragmentStore>,
    pub(crate) bloom: Arc<Mutex<HeldChunks>>,
    pub(crate) metrics: BlockMetrics,
    pub(crate) node_id: String,
    pub(crate) zone: String,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Storage(format!("worker failed: {e}")))?
}

impl BlockService {
    fn finish<T>(&self, op: &'static str, started: Instant, result: Result<T, StoreError>) -> Result<T, Status> {
        let status = match &result {
            Ok(_) => "ok",
            Err(e) => {
                if matches!(e, StoreError::Corrupt(_)) {
                    self.metrics.corrupt_reads.inc();
                }
                e.label()
            }
        };
        self.metrics.observe(op, status, started.elapsed().as_secs_f64());
        result.map_err(|e| {
            if !matches!(e, StoreError::NotFound(_)) {
                tracing::warn!(op, error = %e, "request failed");
            }
            Status::from(e)
        })
    }

    /// Writes the pending read times and accounts for the flush in the metrics.
    pub(crate) async fn flush_reads(&self) -> Result<u64, StoreError> {
        let store = self.store.clone();
        let written = blocking(move || store.flush_reads()).await;
        if let Ok(n) = written {
            if n > 0 {
                self.metrics.read_flushes.inc();
                self.metrics.read_records_written.inc_by(n);
            }
        }
        self.metrics.read_records_pending.set(self.store.read_log().pending() as i64);
        written
    }

    pub(crate) fn refresh_gauges(&self) {
        self.metrics.fragments.set(self.store.fragment_count() as i64);
        self.metrics.fragment_bytes.set(self.store.fragment_bytes() as i64);
        if let Ok(space) = self.store.disk_space() {
            self.metrics.disk_free_bytes.set(space.free as i64);
        }
    }

    fn bloom_insert(&self, chunk: &ChunkHash) {
        if let Ok(mut bloom) = self.bloom.lock() {
            bloom.insert(chunk);
            self.metrics.bloom_items.set(bloom.len() as i64);
        }
    }

    async fn put_inner(&self, mut stream: Streaming<pb::PutFragmentRequest>) -> Result<bool, StoreError> {
        let first = stream
            .message()
            .await
            .map_err(|e| StoreError::InvalidArgument(format!("reading request: {e}")))?
            .ok_or_else(|| StoreError::InvalidArgument("empty PutFragment stream".into()))?;
        let Some(put_fragment_request::Part::Header(header)) = first.part else {
            return Err(StoreError::InvalidArgument("first PutFragment message must be the header".into()));
        };
        let key = header
            .key
            .as_ref()
            .ok_or_else(|| StoreError::InvalidArgument("header has no key".into()))
            .and_then(|k| FragmentKey::from_wire(&k.chunk_hash, k.index))?;
        let k = u8::try_from(header.data_shards).ok().filter(|k| *k > 0);
        let m = u8::try_from(header.parity_shards).ok();
        let (Some(k), Some(m)) = (k, m) else {
            return Err(StoreError::InvalidArgument(format!(
                "invalid code {}+{}",
                header.data_shards, header.parity_shards
            )));
        };
        if u32::from(key.index) >= u32::from(k) + u32::from(m) {
            return Err(StoreError::InvalidArgument(format!("fragment index {} is outside a {k}+{m} code", key.index)));
        }
        // Refuse oversized fragments and full disks before reading the body.
        self.store.check_admission(header.fragment_len)?;
        let expected = header.fragment_len as usize;
        let mut data = Vec::with_capacity(expected);
        while let Some(msg) =
            stream.message().await.map_err(|e| StoreError::InvalidArgument(format!("reading fragment data: {e}")))?
        {
            match msg.part {
                Some(put_fragment_request::Part::Data(piece)) => {
                    if data.len() + piece.len() > expected {
                        return Err(StoreError::InvalidArgument(format!(
                            "fragment carries more than the announced {expected} bytes"
                        )));
                    }
                    data.extend_from_slice(&piece);
                }
                _ => return Err(StoreError::InvalidArgument("unexpected second header".into())),
            }
        }
        if data.len() != expected {
            return Err(StoreError::InvalidArgument(format!(
                "fragment truncated: announced {expected} bytes, received {}",
                data.len()
            )));
        }
        self.metrics.bytes_in.inc_by(data.len() as u64);
        let crc = header.crc32c.unwrap_or_else(|| crc32c::crc32c(&data));
        let meta = FragmentMeta {
            data_shards: k,
            parity_shards: m,
            chunk_len: header.chunk_len,
            fragment_len: header.fragment_len,
            crc32c: crc,
            stored_at: 0,
        };
        let store = self.store.clone();
        let outcome = blocking(move || store.put(&key, meta, &data)).await?;
        self.bloom_insert(&key.chunk);
        self.refresh_gauges();
        Ok(outcome == PutOutcome::AlreadyPresent)
    }
}

fn header_of(key: &FragmentKey, meta: &FragmentMeta) -> pb::FragmentHeader {
    pb::FragmentHeader {
        key: Some(pb::FragmentKey { chunk_hash: key.chunk.as_bytes().to_vec().into(), index: key.index.into() }),
        data_shards: meta.data_shards.into(),
        parity_shards: meta.parity_shards.into(),
        chunk_len: meta.chunk_len,
        fragment_len: meta.fragment_len,
        crc32c: Some(meta.crc32c),
    }
}

#[tonic::async_trait]
impl BlockStore for BlockService {
    async fn put_fragment(
        &self,
        request: Request<Streaming<pb::PutFragmentRequest>>,
    ) -> Result<Response<pb::PutFragmentResponse>, Status> {
        let started = Instant::now();
        let result = self.put_inner(request.into_inner()).await;
        let already_present = self.finish("put_fragment", started, result)?;
        Ok(Response::new(pb::PutFragmentResponse { already_present }))
    }

    type GetFragmentStream = BoxStream<pb::GetFragmentResponse>;

    async fn get_fragment(
        &self,
        request: Request<pb::GetFragmentRequest>,
    ) -> Result<Response<Self::GetFragmentStream>, Status> {
        let started = Instant::now();
        let result = async {
            let key = request
                .get_ref()
                .key
                .as_ref()
                .ok_or_else(|| StoreError::InvalidArgument("request has no key".into()))
                .and_then(|k| FragmentKey::from_wire(&k.chunk_hash, k.index))?;
            let store = self.store.clone();
            let background = request.get_ref().background;
            let (meta, data) = blocking(move || if background { store.get(&key) } else { store.read(&key) }).await?;
            Ok((key, meta, bytes::Bytes::from(data)))
        }
        .await;
        let (key, meta, data) = self.finish("get_fragment", started, result)?;
        self.metrics.read_records_pending.set(self.store.read_log().pending() as i64);
        self.metrics.bytes_out.inc_by(data.len() as u64);
        let header =
            pb::GetFragmentResponse { part: Some(get_fragment_response::Part::Header(header_of(&key, &meta))) };
        let pieces: Vec<bytes::Bytes> =
            (0..data.len()).step_by(DATA_PIECE).map(|at| data.slice(at..(at + DATA_PIECE).min(data.len()))).collect();
        let body = futures::stream::iter(
            pieces
                .into_iter()
                .map(|piece| Ok(pb::GetFragmentResponse { part: Some(get_fragment_response::Part::Data(piece)) })),
        );
        let stream = futures::stream::once(async { Ok(header) }).chain(body);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn batch_has(&self, request: Request<pb::BatchHasRequest>) -> Result<Response<pb::BatchHasResponse>, Status> {
        let started = Instant::now();
        let hashes = request.into_inner().chunk_hashes;
        let store = self.store.clone();
        let result = blocking(move || {
            if hashes.len() > MAX_BATCH {
                return Err(StoreError::InvalidArgument(format!(
                    "{} hashes in one call; the limit is {MAX_BATCH}",
                    hashes.len()
                )));
            }
            let mut chunks = Vec::with_capacity(hashes.len());
            for raw in hashes {
                let hash = ChunkHash::from_slice(&raw).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
                let indices = store.held_indices_touching(&hash)?.into_iter().map(u32::from).collect();
                chunks.push(pb::HeldFragments { chunk_hash: raw, indices });
            }
            Ok(pb::BatchHasResponse { chunks })
        })
        .await;
        Ok(Response::new(self.finish("batch_has", started, result)?))
    }

    async fn delete_fragments(
        &self,
        request: Request<pb::DeleteFragmentsRequest>,
    ) -> Result<Response<pb::DeleteFragmentsResponse>, Status> {
        let started = Instant::now();
        let store = self.store.clone();
        let request = request.into_inner();
        let result = blocking(move || {
            if request.keys.len() > MAX_BATCH {
                return Err(StoreError::InvalidArgument(format!(
                    "{} keys in one call; the limit is {MAX_BATCH}",
                    request.keys.len()
                )));
            }
            let keys = request
                .keys
                .iter()
                .map(|k| FragmentKey::from_wire(&k.chunk_hash, k.index))
                .collect::<Result<Vec<_>, _>>()?;
            match (request.untouched_for_ms, request.unstored_for_ms) {
                (Some(_), Some(_)) => {
                    Err(StoreError::InvalidArgument("untouched_for_ms and unstored_for_ms cannot be combined".into()))
                }
                (Some(window), None) => store.delete_untouched(&keys, window),
                (None, Some(window)) => store.delete_unstored(&keys, window),
                (None, None) => store.delete(&keys).map(|(deleted, bytes_freed)| DeleteOutcome {
                    deleted,
                    bytes_freed,
                    kept_recent: 0,
                }),
            }
        })
        .await;
        let outcome = self.finish("delete_fragments", started, result)?;
        self.metrics.fragments_deleted.inc_by(outcome.deleted);
        self.refresh_gauges();
        Ok(Response::new(pb::DeleteFragmentsResponse {
            deleted: outcome.deleted,
            bytes_freed: outcome.bytes_freed,
            kept_recent: outcome.kept_recent,
        }))
    }

    async fn list_fragments(
        &self,
        request: Request<pb::ListFragmentsRequest>,
    ) -> Result<Response<pb::ListFragmentsResponse>, Status> {
        let started = Instant::now();
        let store = self.store.clone();
        let request = request.into_inner();
        let result = blocking(move || {
            let limit = request.limit as usize;
            if limit == 0 || limit > MAX_BATCH {
                return Err(StoreError::InvalidArgument(format!("limit must be 1..={MAX_BATCH}, got {limit}")));
            }
            let after = request.after.map(|k| FragmentKey::from_wire(&k.chunk_hash, k.index)).transpose()?;
            let (listed, has_more) = store.list(after.as_ref(), limit)?;
            let fragments = listed
                .into_iter()
                .map(|f| pb::ListedFragment {
                    key: Some(crate::client::wire_key(&f.key)),
                    fragment_len: f.fragment_len,
                    last_touch_ms: f.last_touch_ms,
                    stored_ms: f.stored_ms,
                    last_read_ms: f.last_read_ms,
                })
                .collect();
            Ok(pb::ListFragmentsResponse { fragments, has_more })
        })
        .await;
        Ok(Response::new(self.finish("list_fragments", started, result)?))
    }

    async fn stats(&self, _: Request<pb::StatsRequest>) -> Result<Response<pb::StatsResponse>, Status> {
        let started = Instant::now();
        let result = self.store.disk_space();
        let space = self.finish("stats", started, result)?;
        let (bloom_items, bloom_sequence) = match self.bloom.lock() {
            Ok(b) => (b.len() as u64, b.sequence()),
            Err(_) => (0, 0),
        };
        self.refresh_gauges();
        Ok(Response::new(pb::StatsResponse {
            node_id: self.node_id.clone(),
            zone: self.zone.clone(),
            fragments: self.store.fragment_count(),
            fragment_bytes: self.store.fragment_bytes(),
            disk_free_bytes: space.free,
            disk_total_bytes: space.total,
            bloom_items,
            bloom_sequence,
        }))
    }

    async fn scrub(&self, _: Request<pb::ScrubRequest>) -> Result<Response<pb::ScrubResponse>, Status> {
        let started = Instant::now();
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        metrics.scrub_running.set(1);
        let result = blocking(move || {
            let mut last = 0u64;
            store.scrub(|examined, _| {
                metrics.scrub_examined.inc_by(examined - last);
                last = examined;
            })
        })
        .await;
        self.metrics.scrub_running.set(0);
        let report = self.finish("scrub", started, result)?;
        self.metrics.scrub_corrupt.inc_by(report.corrupt.len() as u64);
        let corrupt = report
            .corrupt
            .into_iter()
            .map(|(key, reason)| pb::CorruptFragment {
                key: key
                    .map(|k| pb::FragmentKey { chunk_hash: k.chunk.as_bytes().to_vec().into(), index: k.index.into() }),
                reason,
            })
            .collect();
        Ok(Response::new(pb::ScrubResponse {
            examined: report.examined,
            bytes_examined: report.bytes_examined,
            corrupt,
        }))
    }

    async fn get_bloom(&self, request: Request<pb::GetBloomRequest>) -> Result<Response<pb::GetBloomResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let result = match self.bloom.lock() {
            Ok(bloom) => bloom
                .update_since(req.since_sequence, &req.incarnation)
                .map(|u| (bloom.incarnation().to_owned(), u))
                .map_err(|e| StoreError::Storage(format!("serializing the Bloom filter: {e}"))),
            Err(_) => Err(StoreError::Storage("Bloom filter lock poisoned".into())),
        };
        let (incarnation, update) = self.finish("get_bloom", started, result)?;
        let (sequence, content) = match update {
            BloomUpdate::Snapshot { sequence, bytes } => {
                (sequence, get_bloom_response::Content::Snapshot(bytes.into()))
            }
            BloomUpdate::Delta { sequence, added } => (
                sequence,
                get_bloom_response::Content::Delta(pb::BloomDelta {
                    added: added.iter().map(|h| h.as_bytes().to_vec().into()).collect(),
                }),
            ),
        };
        Ok(Response::new(pb::GetBloomResponse { incarnation, sequence, content: Some(content) }))
    }
}
