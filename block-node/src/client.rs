//! `BlockClient`: typed access to one block node over gRPC, used by routers,
//! tools, tests and benchmarks.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use tessera_proto::block::block_store_client::BlockStoreClient;
use tessera_proto::block::{self as pb, get_fragment_response, put_fragment_request};
use tessera_proto::request_id::{propagate, Propagate};
use tessera_proto::ChunkHash;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::fragment::FragmentKey;
use crate::node::{MAX_REQUEST, MAX_RESPONSE};
use crate::service::DATA_PIECE;
pub use crate::store::ListedFragment;

/// The erasure code a fragment belongs to, and the chunk it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentCode {
    pub data_shards: u8,
    pub parity_shards: u8,
    pub chunk_len: u64,
}

type Intercepted = InterceptedService<Channel, Propagate>;

/// Every call carries the current request id (see `tessera_proto::request_id`).
#[derive(Clone)]
pub struct BlockClient {
    inner: BlockStoreClient<Intercepted>,
    channel: Channel,
}

pub fn wire_key(key: &FragmentKey) -> pb::FragmentKey {
    pb::FragmentKey { chunk_hash: Bytes::copy_from_slice(key.chunk.as_bytes()), index: key.index.into() }
}

/// Deadline of small requests (presence, stats, deletes, Bloom filters). A node
/// that does not answer in time counts as down: a hung or partitioned node must
/// not stall an upload, a read or a repair forever.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of one fragment transfer (≤ 64 MiB) either way.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<T>(limit: Duration, what: &str, call: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!("{what}: no answer within {} s", limit.as_secs()))),
    }
}

/// Fragments are megabytes: large flow-control windows and frames keep
/// transfers from stalling on HTTP/2 bookkeeping.
fn tuned_endpoint(endpoint: String) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(endpoint)?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3))
        // Pings find a peer that stopped answering (frozen process, lost
        // route) even on an idle connection, so the next call does not hang.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(32 << 20)
        .max_frame_size(1 << 20))
}

impl BlockClient {
    /// Connects to `endpoint` (`http://host:port`).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let channel = tuned_endpoint(endpoint.into())?.connect().await?;
        Ok(Self::from_channel(channel))
    }

    /// A client whose connection is made on first use.
    pub fn connect_lazy(endpoint: impl Into<String>) -> Result<Self, tonic::transport::Error> {
        let channel = tuned_endpoint(endpoint.into())?.connect_lazy();
        Ok(Self::from_channel(channel))
    }

    pub fn from_channel(channel: Channel) -> Self {
        Self {
            inner: BlockStoreClient::with_interceptor(channel.clone(), propagate as Propagate)
                .max_decoding_message_size(MAX_RESPONSE)
                .max_encoding_message_size(MAX_REQUEST),
            channel,
        }
    }

    /// Stores a fragment; returns true when the node already held it.
    pub async fn put_fragment(&self, key: &FragmentKey, code: FragmentCode, data: Bytes) -> Result<bool, Status> {
        let header = pb::FragmentHeader {
            key: Some(wire_key(key)),
            data_shards: code.data_shards.into(),
            parity_shards: code.parity_shards.into(),
            chunk_len: code.chunk_len,
            fragment_len: data.len() as u64,
            crc32c: Some(crc32c::crc32c(&data)),
        };
        let mut messages = Vec::with_capacity(1 + data.len() / DATA_PIECE + 1);
        messages.push(pb::PutFragmentRequest { part: Some(put_fragment_request::Part::Header(header)) });
        let mut at = 0;
        while at < data.len() {
            let end = (at + DATA_PIECE).min(data.len());
            messages.push(pb::PutFragmentRequest { part: Some(put_fragment_request::Part::Data(data.slice(at..end))) });
            at = end;
        }
        let mut inner = self.inner.clone();
        let resp =
            within(TRANSFER_TIMEOUT, "put fragment", inner.put_fragment(futures::stream::iter(messages))).await?;
        Ok(resp.into_inner().already_present)
    }

    /// Reads a fragment, verifying its checksum on arrival too.
    pub async fn get_fragment(&self, key: &FragmentKey) -> Result<(FragmentCode, Vec<u8>), Status> {
        within(TRANSFER_TIMEOUT, "get fragment", self.fetch_fragment(key, false)).await
    }

    /// As [`get_fragment`](Self::get_fragment), for repair and tiering moves: the
    /// node does not record it as a read of the chunk.
    pub async fn get_fragment_background(&self, key: &FragmentKey) -> Result<(FragmentCode, Vec<u8>), Status> {
        within(TRANSFER_TIMEOUT, "get fragment", self.fetch_fragment(key, true)).await
    }

    async fn fetch_fragment(&self, key: &FragmentKey, background: bool) -> Result<(FragmentCode, Vec<u8>), Status> {
        let req = pb::GetFragmentRequest { key: Some(wire_key(key)), background };
        let mut stream = self.inner.clone().get_fragment(req).await?.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::data_loss("empty fragment stream"))?;
        let Some(get_fragment_response::Part::Header(header)) = first.part else {
            return Err(Status::data_loss("fragment stream did not start with a header"));
        };
        let len = usize::try_from(header.fragment_len)
            .map_err(|_| Status::data_loss("fragment length does not fit in memory"))?;
        let mut data = Vec::with_capacity(len);
        while let Some(msg) = stream.message().await? {
            if let Some(get_fragment_response::Part::Data(piece)) = msg.part {
                data.extend_from_slice(&piece);
            }
        }
        if data.len() != len {
            return Err(Status::data_loss(format!("fragment truncated: {} of {len} bytes", data.len())));
        }
        if let Some(crc) = header.crc32c {
            if crc32c::crc32c(&data) != crc {
                return Err(Status::data_loss("fragment checksum mismatch in transit"));
            }
        }
        let code = FragmentCode {
            data_shards: u8::try_from(header.data_shards).unwrap_or(0),
            parity_shards: u8::try_from(header.parity_shards).unwrap_or(0),
            chunk_len: header.chunk_len,
        };
        Ok((code, data))
    }

    /// For each hash, the fragment indices the node holds (same order).
    pub async fn batch_has(&self, hashes: &[ChunkHash]) -> Result<Vec<Vec<u8>>, Status> {
        let req =
            pb::BatchHasRequest { chunk_hashes: hashes.iter().map(|h| Bytes::copy_from_slice(h.as_bytes())).collect() };
        let mut inner = self.inner.clone();
        let resp = within(CONTROL_TIMEOUT, "batch has", inner.batch_has(req)).await?.into_inner();
        if resp.chunks.len() != hashes.len() {
            return Err(Status::new(Code::Internal, "BatchHas answered a different number of chunks"));
        }
        Ok(resp
            .chunks
            .into_iter()
            .map(|c| c.indices.into_iter().filter_map(|i| u8::try_from(i).ok()).collect())
            .collect())
    }

    pub async fn delete(&self, keys: &[FragmentKey]) -> Result<pb::DeleteFragmentsResponse, Status> {
        self.delete_if(keys, None, None).await
    }

    /// Garbage collection's delete: only fragments whose chunk was not touched
    /// (stored, or found by `batch_has`) within `window` on the node's clock.
    pub async fn delete_untouched(
        &self,
        keys: &[FragmentKey],
        window: Duration,
    ) -> Result<pb::DeleteFragmentsResponse, Status> {
        self.delete_if(keys, Some(window), None).await
    }

    /// A tiering move's delete of the copy it moved away from: only fragments
    /// not stored within `window` on the node's clock.
    pub async fn delete_unstored(
        &self,
        keys: &[FragmentKey],
        window: Duration,
    ) -> Result<pb::DeleteFragmentsResponse, Status> {
        self.delete_if(keys, None, Some(window)).await
    }

    async fn delete_if(
        &self,
        keys: &[FragmentKey],
        untouched_for: Option<Duration>,
        unstored_for: Option<Duration>,
    ) -> Result<pb::DeleteFragmentsResponse, Status> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let req = pb::DeleteFragmentsRequest {
            keys: keys.iter().map(wire_key).collect(),
            untouched_for_ms: untouched_for.map(ms),
            unstored_for_ms: unstored_for.map(ms),
        };
        let mut inner = self.inner.clone();
        Ok(within(CONTROL_TIMEOUT, "delete fragments", inner.delete_fragments(req)).await?.into_inner())
    }

    /// One page of held fragments after `after` (with their stored, touch and
    /// read times), and whether more follow.
    pub async fn list_fragments(
        &self,
        after: Option<&FragmentKey>,
        limit: u32,
    ) -> Result<(Vec<ListedFragment>, bool), Status> {
        let req = pb::ListFragmentsRequest { after: after.map(wire_key), limit };
        let mut inner = self.inner.clone();
        let resp = within(CONTROL_TIMEOUT, "list fragments", inner.list_fragments(req)).await?.into_inner();
        let mut out = Vec::with_capacity(resp.fragments.len());
        for f in resp.fragments {
            let key = f
                .key
                .and_then(|k| FragmentKey::from_wire(&k.chunk_hash, k.index).ok())
                .ok_or_else(|| Status::new(Code::Internal, "ListFragments answered a malformed key"))?;
            out.push(ListedFragment {
                key,
                fragment_len: f.fragment_len,
                last_touch_ms: f.last_touch_ms,
                stored_ms: f.stored_ms,
                last_read_ms: f.last_read_ms,
            });
        }
        Ok((out, resp.has_more))
    }

    pub async fn stats(&self) -> Result<pb::StatsResponse, Status> {
        let mut inner = self.inner.clone();
        Ok(within(CONTROL_TIMEOUT, "stats", inner.stats(pb::StatsRequest {})).await?.into_inner())
    }

    /// Reads and verifies every fragment: minutes on a full node, so no deadline.
    pub async fn scrub(&self) -> Result<pb::ScrubResponse, Status> {
        Ok(self.inner.clone().scrub(pb::ScrubRequest {}).await?.into_inner())
    }

    pub async fn get_bloom(
        &self,
        since_sequence: Option<u64>,
        incarnation: &str,
    ) -> Result<pb::GetBloomResponse, Status> {
        let req = pb::GetBloomRequest { since_sequence, incarnation: incarnation.to_owned() };
        let mut inner = self.inner.clone();
        Ok(within(CONTROL_TIMEOUT, "get bloom", inner.get_bloom(req)).await?.into_inner())
    }

    /// Raw generated client, for protocol-level tests.
    pub fn raw(&self) -> BlockStoreClient<Channel> {
        BlockStoreClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_RESPONSE)
            .max_encoding_message_size(MAX_REQUEST)
    }
}
