//! The listener every Tessera process serves on: gRPC services plus plain HTTP
//! `/metrics` (Prometheus text format) and `/health` on one TCP port.
//!
//! Binding port 0 is allowed; the chosen address is printed on stdout as
//! `listening on ADDR` and optionally written (atomically) to an address file,
//! which is how tests and `tessera cluster up` find a process.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

/// Reports whether the process can serve requests (for `/health`).
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Binds `listen` (e.g. `127.0.0.1:0`) and returns the listener and its real address.
pub async fn bind(listen: &str) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Prints the address and writes it to `addr_file` (write to a temp file, then
/// rename, so a reader never sees a partial address).
pub fn announce(addr: SocketAddr, addr_file: Option<&Path>) -> io::Result<()> {
    println!("listening on {addr}");
    if let Some(path) = addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}

/// HTTP routes for `/metrics` and `/health`.
pub fn observability_routes(registry: Arc<Registry>, health: HealthCheck) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    use prometheus_client::encoding::text::{encode_eof, encode_registry};
                    let mut body = String::new();
                    let rpc = crate::request_id::rpc_registry();
                    let encoded = encode_registry(&mut body, &registry)
                        .and_then(|()| encode_registry(&mut body, &rpc))
                        .and_then(|()| encode_eof(&mut body));
                    match encoded {
                        Ok(()) => {
                            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
                                .into_response()
                        }
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                    }
                }
            }),
        )
        .route(
            "/health",
            get(move || {
                let health = health.clone();
                async move {
                    match health() {
                        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}\n")),
                    }
                }
            }),
        )
}

/// Serves `grpc` and `http` routes on `listener` until `shutdown` resolves,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    grpc: Routes,
    http: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let router = grpc.into_axum_router().layer(axum::middleware::from_fn(crate::request_id::layer)).merge(http);
    tonic::transport::Server::builder()
        .accept_http1(true)
        .tcp_nodelay(true)
        // Fragments are megabytes: large HTTP/2 windows keep loopback and LAN
        // transfers from stalling on flow control.
        .initial_stream_window_size(8 << 20)
        .initial_connection_window_size(32 << 20)
        .max_frame_size(Some(1 << 20))
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(no_delay(listener), shutdown)
        .await
}

/// Accepted connections with Nagle's algorithm off. tonic's `tcp_nodelay` covers
/// only listeners it binds itself; on ours, a small response written in several
/// pieces (gRPC headers, message, trailers) waited for the peer's delayed ACK,
/// ~40 ms per small RPC.
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = io::Result<tokio::net::TcpStream>> + Send + 'static {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot turn off Nagle's algorithm");
            }
        }
        conn
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers the process still stops on the default
            // action; wait forever rather than shutting down at once.
            std::future::pending::<()>().await
        }
    }
    tracing::info!("shutdown signal received");
}

/// A server running in a background task, stoppable from its owner.
pub struct ServerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl ServerHandle {
    /// Asks the server to stop (in-flight requests finish).
    pub fn trigger_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the server has stopped.
    pub async fn join(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await??;
        Ok(())
    }
}

/// Serves in a background task until `shutdown` resolves or the handle's
/// [`ServerHandle::trigger_stop`] is called.
pub fn spawn(
    listener: TcpListener,
    grpc: Routes,
    http: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> ServerHandle {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = rx => {}
        }
    };
    ServerHandle { stop: Some(tx), task: tokio::spawn(serve(listener, grpc, http, stop)) }
}
