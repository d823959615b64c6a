//! The S3 listener: HTTP/1.1 and HTTP/2 (hyper), SigV4 through `s3s`, a request id on
//! every response (header `x-amz-request-id`, and `<RequestId>` in error bodies), and
//! request counts and latencies for `/metrics`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::Body;
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::Instrument;

use super::S3Gateway;
use crate::auth::Authenticator;
use crate::datapath::DataPath;

/// `[s3]` in the router's TOML config (unknown keys rejected).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Where the S3 API listens; empty turns the gateway off.
    pub listen: String,
    pub addr_file: Option<PathBuf>,
    /// The region reported to clients (GetBucketLocation, HeadBucket).
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`bucket.DOMAIN`); path-style
    /// requests work either way.
    pub domain: Option<String>,
    /// Largest accepted difference between a signature's time and the router's clock.
    pub max_clock_skew_secs: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            addr_file: None,
            region: "us-east-1".into(),
            domain: None,
            max_clock_skew_secs: 15 * 60,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

/// S3 request metrics, exported as `tessera_router_s3_*`.
#[derive(Clone)]
pub struct S3Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
}

impl Default for S3Metrics {
    fn default() -> Self {
        Self { requests: Family::default(), latency: Histogram::new(exponential_buckets(0.0005, 2.0, 18)) }
    }
}

impl S3Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("tessera_router_s3");
        r.register("requests", "S3 requests by HTTP method and status", self.requests.clone());
        r.register("request_seconds", "S3 request latency until the response head", self.latency.clone());
    }
}

fn build_service(gateway: S3Gateway, auth: Arc<Authenticator>, cfg: &S3Config) -> anyhow::Result<S3Service> {
    let mut builder = S3ServiceBuilder::new(gateway);
    builder.set_auth(super::service::GatewayAuth(auth));
    if let Some(domain) = &cfg.domain {
        let host = s3s::host::SingleDomain::new(domain).map_err(|e| anyhow::anyhow!("s3.domain {domain:?}: {e}"))?;
        builder.set_host(host);
    }
    let mut config = s3s::config::S3Config::default();
    config.presigned_url_max_skew_time_secs = cfg.max_clock_skew_secs;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
    Ok(builder.build())
}

/// Puts the request id into an S3 error body (they are small and already buffered).
fn with_request_id(body: Body, request_id: &str) -> Body {
    match body.bytes() {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            match text.rfind("</Error>") {
                Some(at) if !text.contains("<RequestId>") => {
                    Body::from(format!("{}<RequestId>{request_id}</RequestId>{}", &text[..at], &text[at..]))
                }
                _ => Body::from(bytes),
            }
        }
        None => body,
    }
}

async fn handle(
    service: S3Service,
    metrics: S3Metrics,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let request_id = tessera_proto::request_id::new_id();
    let method = req.method().to_string();
    // The same id goes to metadata and block nodes with every call made for this request.
    let span = tracing::info_span!("request", id = %request_id, s3 = %method, path = %req.uri().path());
    let call = service.call(req.map(Body::from)).instrument(span.clone());
    let mut resp = match tessera_proto::request_id::scope(request_id.clone(), call).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(error = ?e, "S3 request could not be served");
            let mut r = http::Response::new(Body::empty());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        let (parts, body) = resp.into_parts();
        resp = http::Response::from_parts(parts, with_request_id(body, &request_id));
    }
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    span.in_scope(|| {
        tracing::debug!(status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "served")
    });
    // GET bodies are produced while hyper polls them, after this returns.
    let resp =
        resp.map(|body| Body::http_body_unsync(tessera_proto::request_id::ScopedBody::new(body, request_id, span)));
    metrics.requests.get_or_create(&RequestLabels { method, status: resp.status().as_u16() }).inc();
    metrics.latency.observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// A running S3 listener.
pub struct S3Listener {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl S3Listener {
    /// Stops accepting, lets open requests finish (up to 30 s), then returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        let _ = (&mut self.task).await;
    }
}

pub async fn start(
    dp: Arc<DataPath>,
    auth: Arc<Authenticator>,
    cfg: &S3Config,
    metrics: S3Metrics,
) -> anyhow::Result<S3Listener> {
    let gateway = S3Gateway { dp, auth: auth.clone(), region: cfg.region.clone() };
    let service = build_service(gateway, auth, cfg)?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for S3 on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &cfg.addr_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, addr.to_string())?;
        std::fs::rename(&tmp, path)?;
    }
    tracing::info!(%addr, "S3 gateway listening");
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = ConnBuilder::new(TokioExecutor::new());
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = rx.changed() => break,
            };
            let (stream, _) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "S3 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let metrics = metrics.clone();
            let conn = builder.serve_connection(
                TokioIo::new(stream),
                service_fn(move |req| handle(service.clone(), metrics.clone(), req)),
            );
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
    });
    Ok(S3Listener { addr, stop: Some(tx), task })
}
