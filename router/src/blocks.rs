//! `BlockPool`: the router's connections to block nodes and its mirrors of
//! their Bloom filters of held chunks.
//!
//! A mirror starts from a snapshot and is kept current with deltas; a node
//! that restarted (new incarnation) is re-snapshotted. Dedup asks the mirrors
//! first: a "no" is certain and saves an RPC, a "maybe" is confirmed with an
//! exact `BatchHas`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_block::bloom::BloomMirror;
use tessera_block::BlockClient;
use tessera_proto::block::get_bloom_response::Content;
use tessera_proto::ChunkHash;

use crate::placement::BlockNodeInfo;

/// How long a node that failed at the transport level is tried last. The
/// routers' periodic Bloom refresh asks every node, which renews or clears it.
const SUSPECT_FOR: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct BlockPool {
    clients: Mutex<HashMap<String, BlockClient>>,
    mirrors: Mutex<HashMap<String, Arc<Mutex<BloomMirror>>>>,
    /// Nodes that recently timed out or refused connections, until when.
    suspects: Mutex<HashMap<String, Instant>>,
}

impl BlockPool {
    /// A client for `node` (connections are made lazily and reused).
    pub fn client(&self, node: &BlockNodeInfo) -> Result<BlockClient, tonic::transport::Error> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&node.endpoint) {
            return Ok(c.clone());
        }
        let c = BlockClient::connect_lazy(node.endpoint.clone())?;
        clients.insert(node.endpoint.clone(), c.clone());
        Ok(c)
    }

    /// Records the result of a call to `node`: transport failures (no answer, no
    /// connection) make it a suspect for a few seconds, so reads go to other
    /// fragments first instead of waiting on it; any answer clears that.
    pub fn note_result<T>(&self, node: &BlockNodeInfo, result: &Result<T, tonic::Status>) {
        use tonic::Code;
        let mut suspects = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Err(s)
                if matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown) =>
            {
                suspects.insert(node.endpoint.clone(), Instant::now() + SUSPECT_FOR);
            }
            _ => {
                suspects.remove(&node.endpoint);
            }
        }
    }

    /// True while `node` is a suspect (see [`note_result`](Self::note_result)).
    pub fn is_suspect(&self, node: &BlockNodeInfo) -> bool {
        let suspects = self.suspects.lock().unwrap_or_else(|p| p.into_inner());
        suspects.get(&node.endpoint).is_some_and(|until| *until > Instant::now())
    }

    /// False only when `node` certainly does not hold `chunk` (per its mirror);
    /// true when it may, or when no mirror exists yet.
    pub fn may_hold(&self, node: &BlockNodeInfo, chunk: &ChunkHash) -> bool {
        let mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        match mirrors.get(&node.endpoint) {
            Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()).may_contain(chunk),
            None => true,
        }
    }

    /// Records that `node` now holds `chunk` (after a successful put), so the
    /// mirror never answers "no" for it before the next delta arrives.
    pub fn note_stored(&self, node: &BlockNodeInfo, chunk: &ChunkHash) {
        let mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = mirrors.get(&node.endpoint) {
            m.lock().unwrap_or_else(|p| p.into_inner()).filter.insert(chunk.as_bytes());
        }
    }

    /// Brings the mirror of `node` up to date (snapshot or delta).
    pub async fn refresh_mirror(&self, node: &BlockNodeInfo) -> Result<(), tonic::Status> {
        let client = self.client(node).map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let existing = self.mirrors.lock().unwrap_or_else(|p| p.into_inner()).get(&node.endpoint).cloned();
        let (since, incarnation) = match &existing {
            Some(m) => {
                let m = m.lock().unwrap_or_else(|p| p.into_inner());
                (Some(m.sequence), m.incarnation.clone())
            }
            None => (None, String::new()),
        };
        let resp = client.get_bloom(since, &incarnation).await;
        self.note_result(node, &resp);
        let resp = resp?;
        match resp.content {
            Some(Content::Snapshot(bytes)) => {
                let mirror = BloomMirror::from_snapshot(resp.incarnation, resp.sequence, &bytes)
                    .map_err(|e| tonic::Status::data_loss(format!("bad Bloom snapshot: {e}")))?;
                self.mirrors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(node.endpoint.clone(), Arc::new(Mutex::new(mirror)));
            }
            Some(Content::Delta(delta)) => {
                if let Some(m) = existing {
                    let added: Vec<ChunkHash> =
                        delta.added.iter().filter_map(|b| ChunkHash::from_slice(b).ok()).collect();
                    m.lock().unwrap_or_else(|p| p.into_inner()).apply_delta(resp.sequence, &added);
                }
            }
            None => {}
        }
        Ok(())
    }
}
