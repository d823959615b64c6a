//! Request ids: one id per client request, carried as `x-request-id` from the
//! router to metadata and block nodes and put on every log line written while
//! serving it (a tracing span `request{id=…}`), so one request can be followed
//! through every process's log.
//!
//! Servers take the id from the incoming `x-request-id` (or make one) in
//! [`layer`]; while the request is served it is the task's current id, and
//! clients built with [`propagate`] as interceptor send it along.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use http_body::Frame;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RpcLabels {
    rpc: String,
    /// gRPC status code of trailers-only answers (errors, mostly); "0" otherwise.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RpcName {
    rpc: String,
}

/// `tessera_rpc_*`: every gRPC call served by this process, per method.
struct RpcMetrics {
    requests: Family<RpcLabels, Counter>,
    seconds: Family<RpcName, Histogram>,
}

fn rpc_metrics() -> &'static RpcMetrics {
    static METRICS: OnceLock<RpcMetrics> = OnceLock::new();
    METRICS.get_or_init(|| RpcMetrics {
        requests: Family::default(),
        seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
    })
}

/// A registry holding the per-RPC metrics of this process (served next to the
/// process's own registry on `/metrics`).
pub fn rpc_registry() -> Registry {
    let mut registry = Registry::default();
    let m = rpc_metrics();
    let r = registry.sub_registry_with_prefix("tessera_rpc");
    r.register("requests", "gRPC calls served, by method and status code", m.requests.clone());
    r.register("request_seconds", "Time to the response headers of gRPC calls, by method", m.seconds.clone());
    registry
}

tokio::task_local! {
    static CURRENT: String;
}

/// A fresh random id (16 hex digits).
pub fn new_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    CURRENT.scope(id, f).await
}

/// Ids from outside are kept only when short and plain, so they cannot forge
/// log lines.
fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// axum middleware for gRPC servers: adopts or makes the request id, serves the
/// request inside its span, logs it at debug level and returns the id in the
/// response headers.
pub async fn layer(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(new_id);
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", id = %id);
    let started = Instant::now();
    let resp = CURRENT.scope(id.clone(), next.run(req).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    span.in_scope(|| tracing::debug!(%path, elapsed_ms = elapsed.as_millis() as u64, "served"));
    let code = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
    let metrics = rpc_metrics();
    metrics.requests.get_or_create(&RpcLabels { rpc: path.clone(), code }).inc();
    metrics.seconds.get_or_create(&RpcName { rpc: path }).observe(elapsed.as_secs_f64());
    let (mut parts, body) = resp.into_parts();
    if let Ok(v) = id.parse() {
        parts.headers.insert(HEADER, v);
    }
    // Streamed responses (downloads) do their work while the body is polled,
    // after the handler returned: keep the id and span for that too.
    axum::response::Response::from_parts(parts, Body::new(ScopedBody::new(body, id, span)))
}

/// A response body polled with a request id current and its span entered.
pub struct ScopedBody<B> {
    inner: Pin<Box<B>>,
    id: String,
    span: tracing::Span,
}

impl<B> ScopedBody<B> {
    pub fn new(inner: B, id: String, span: tracing::Span) -> Self {
        Self { inner: Box::pin(inner), id, span }
    }
}

impl<B: http_body::Body> http_body::Body for ScopedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        CURRENT.sync_scope(this.id.clone(), || this.inner.as_mut().poll_frame(cx))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A tonic client interceptor that sends the current request id, if any.
pub type Propagate = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

pub fn propagate(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(id) = current() {
        if let Ok(v) = id.parse() {
            req.metadata_mut().insert(HEADER, v);
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_current_id_is_sent_by_clients_only_inside_its_scope() {
        let outside = propagate(tonic::Request::new(())).unwrap();
        assert!(outside.metadata().get(HEADER).is_none());
        let inside = scope("abc-1".into(), async { propagate(tonic::Request::new(())).unwrap() }).await;
        assert_eq!(inside.metadata().get(HEADER).unwrap(), "abc-1");
    }

    #[test]
    fn foreign_ids_must_be_short_and_plain() {
        assert!(acceptable("0123abcd-x_y.z"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"x".repeat(65)));
    }
}
