//! Assembles a block node (store, Bloom filter, metrics, gRPC service) and
//! runs it on a listener, either as the `tessera-block` process or embedded
//! in another process (tests, benchmarks, `tessera dev`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tessera_proto::block::block_store_server::BlockStoreServer;
use tessera_proto::listener::{self, HealthCheck};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;

use crate::bloom::HeldChunks;
use crate::config::BlockConfig;
use crate::error::StoreError;
use crate::metrics::BlockMetrics;
use crate::service::{BlockService, DATA_PIECE};
use crate::store::FragmentStore;

/// Largest gRPC request message the node accepts (fragment data comes in
/// pieces of `DATA_PIECE`; batch calls are capped by `MAX_BATCH`).
pub const MAX_REQUEST: usize = DATA_PIECE + (1 << 20);
/// Largest response message: a Bloom snapshot for many millions of chunks.
pub const MAX_RESPONSE: usize = 512 << 20;

pub struct BlockNode {
    service: BlockService,
    registry: Arc<Registry>,
    read_flush: Duration,
}

impl BlockNode {
    /// Opens the data dir and rebuilds the Bloom filter from the index.
    pub fn open(config: &BlockConfig) -> Result<Self, StoreError> {
        let started = Instant::now();
        let mut held = HeldChunks::new(config.bloom_expected_chunks, config.bloom_delta_window);
        let store = FragmentStore::open(&config.data_dir, config.max_fragment_bytes, config.min_free_bytes, |key| {
            held.insert(&key.chunk)
        })?;
        tracing::info!(
            fragments = store.fragment_count(),
            bytes = store.fragment_bytes(),
            bloom_items = held.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "block store opened"
        );
        let mut registry = Registry::default();
        let metrics = BlockMetrics::new(&mut registry);
        metrics.bloom_items.set(held.len() as i64);
        let service = BlockService {
            store: Arc::new(store),
            bloom: Arc::new(Mutex::new(held)),
            metrics,
            node_id: config.node_id.clone(),
            zone: config.zone.clone(),
        };
        service.refresh_gauges();
        // At least 1 ms: a zero period would make the flush task spin.
        let read_flush = Duration::from_millis(config.read_flush_ms.max(1));
        Ok(Self { service, registry: Arc::new(registry), read_flush })
    }

    pub fn store(&self) -> &Arc<FragmentStore> {
        &self.service.store
    }

    fn routes(&self) -> Routes {
        Routes::new(
            BlockStoreServer::new(self.service.clone())
                .max_decoding_message_size(MAX_REQUEST)
                .max_encoding_message_size(MAX_RESPONSE),
        )
    }

    fn health(&self) -> HealthCheck {
        let store = self.service.store.clone();
        Arc::new(move || store.disk_space().map(|_| ()).map_err(|e| e.to_string()))
    }

    /// Serves until `shutdown` resolves, then flushes the store (pending read
    /// times included). Read times are also flushed every `read_flush_ms` meanwhile.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let http = listener::observability_routes(self.registry.clone(), self.health());
        let flusher = tokio::spawn(flush_reads_every(self.service.clone(), self.read_flush));
        let served = listener::serve(listener, self.routes(), http, shutdown).await;
        flusher.abort();
        served?;
        let store = self.service.store.clone();
        tokio::task::spawn_blocking(move || store.flush()).await??;
        tracing::info!("block node stopped");
        Ok(())
    }

    /// Binds `config.listen` and serves in a background task.
    pub async fn start(config: &BlockConfig) -> anyhow::Result<RunningBlockNode> {
        let node = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || BlockNode::open(&config)).await??
        };
        let (tcp, addr) = listener::bind(&config.listen).await?;
        let store = node.store().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(node.serve(tcp, async {
            let _ = rx.await;
        }));
        Ok(RunningBlockNode { addr, store, shutdown: Some(tx), task })
    }
}

/// Writes the read times recorded in memory every `period` (see `reads.rs`).
async fn flush_reads_every(service: BlockService, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: nothing has been read yet
    loop {
        tick.tick().await;
        match service.flush_reads().await {
            Ok(0) => {}
            Ok(records) => tracing::debug!(records, "read times flushed"),
            Err(e) => tracing::warn!(error = %e, "writing read times failed; retried at the next flush"),
        }
    }
}

/// A block node served in this process.
pub struct RunningBlockNode {
    pub addr: SocketAddr,
    pub store: Arc<FragmentStore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningBlockNode {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: in-flight requests finish, then the store is flushed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }
}
