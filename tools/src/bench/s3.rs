//! `tessera bench s3`: the load generator for any S3 endpoint (Tessera, MinIO, Garage,
//! Ceph RGW...), signed with SigV4 and `UNSIGNED-PAYLOAD` so the client spends no time
//! hashing bodies. Objects go to one bucket (created if missing) under a per-run prefix.

use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::sigv4::{self, Credentials, UNSIGNED_PAYLOAD};
use super::{content, Load, LoadArgs, Workload};

#[derive(Args, Debug)]
pub struct S3Args {
    #[command(flatten)]
    load: LoadArgs,
    /// The S3 endpoint, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "tessera-bench")]
    bucket: String,
}

#[derive(Clone)]
struct S3Client {
    http: Client<HttpConnector, Full<Bytes>>,
    endpoint: String,
    host: String,
    access_key: String,
    secret_key: String,
    region: String,
}

impl S3Client {
    fn new(args: &S3Args) -> anyhow::Result<Self> {
        let endpoint = args.endpoint.trim_end_matches('/').to_owned();
        let host = endpoint
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("the endpoint must be http://HOST:PORT"))?
            .to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Self {
            http: Client::builder(TokioExecutor::new()).build(connector),
            endpoint,
            host,
            access_key: args.access_key.clone(),
            secret_key: args.secret_key.clone(),
            region: args.region.clone(),
        })
    }

    /// A request to `path` with its SigV4 headers, ready for a body.
    fn signed(&self, method: &str, path: &str) -> anyhow::Result<http::request::Builder> {
        self.signed_query(method, path, &[])
    }

    fn signed_query(&self, method: &str, path: &str, query: &[(&str, &str)]) -> anyhow::Result<http::request::Builder> {
        let date = sigv4::amz_date(time::OffsetDateTime::now_utc());
        let path = sigv4::uri_encode(path, true);
        let query: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let query_string = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    sigv4::uri_encode(k, false)
                } else {
                    format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        let headers = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), UNSIGNED_PAYLOAD.to_owned()),
            ("x-amz-date".to_owned(), date.clone()),
        ];
        let creds = Credentials { access_key: &self.access_key, secret_key: &self.secret_key, region: &self.region };
        let auth = sigv4::authorization(method, &path, &query, &headers, UNSIGNED_PAYLOAD, &creds);
        let uri = if query_string.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query_string}", self.endpoint)
        };
        Ok(http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("x-amz-date", date)
            .header("authorization", auth))
    }

    /// Sends one signed request; returns the status and the number of body bytes read.
    async fn send(&self, method: &str, path: &str, body: Bytes) -> anyhow::Result<(u16, u64)> {
        let req = self.signed(method, path)?.body(Full::new(body))?;
        let resp = self.http.request(req).await?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                n += data.len() as u64;
            }
        }
        Ok((status, n))
    }

    /// A signed request with a query; returns the status, the headers and the body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(u16, http::HeaderMap, Bytes)> {
        let req = self.signed_query(method, path, query)?.body(Full::new(body))?;
        let resp = self.http.request(req).await?;
        let (parts, body) = resp.into_parts();
        Ok((parts.status.as_u16(), parts.headers, body.collect().await?.to_bytes()))
    }

    /// CreateMultipartUpload, one UploadPart per `part_size` bytes, Complete.
    async fn multipart(&self, key: &str, data: Bytes, part_size: u64) -> anyhow::Result<()> {
        let (status, _, body) = self.call("POST", key, &[("uploads", "")], Bytes::new()).await?;
        let text = String::from_utf8_lossy(&body);
        let upload_id = xml_value(&text, "UploadId")
            .ok_or_else(|| anyhow::anyhow!("CreateMultipartUpload {key}: HTTP {status}, no UploadId"))?;
        let mut complete = String::from("<CompleteMultipartUpload>");
        for (i, at) in (0..data.len()).step_by(part_size as usize).enumerate() {
            let number = (i + 1).to_string();
            let part = data.slice(at..(at + part_size as usize).min(data.len()));
            let q = [("partNumber", number.as_str()), ("uploadId", upload_id.as_str())];
            let (status, headers, _) = self.call("PUT", key, &q, part).await?;
            let etag = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if status != 200 || etag.is_empty() {
                anyhow::bail!("UploadPart {number} of {key}: HTTP {status}");
            }
            complete.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"));
        }
        complete.push_str("</CompleteMultipartUpload>");
        let (status, _, body) =
            self.call("POST", key, &[("uploadId", upload_id.as_str())], Bytes::from(complete)).await?;
        if status != 200 || String::from_utf8_lossy(&body).contains("<Error>") {
            anyhow::bail!("CompleteMultipartUpload {key}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    /// ListObjectsV2 of up to 1000 keys under `prefix`; fails unless `expect` came back.
    async fn list(&self, bucket: &str, prefix: &str, expect: usize) -> anyhow::Result<()> {
        let q = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")];
        let (status, _, body) = self.call("GET", &format!("/{bucket}"), &q, Bytes::new()).await?;
        let keys = String::from_utf8_lossy(&body).matches("<Key>").count();
        if status != 200 || keys != expect {
            anyhow::bail!("ListObjectsV2 {prefix}: HTTP {status}, {keys} keys (expected {expect})");
        }
        Ok(())
    }

    async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        match self.send("PUT", key, data).await? {
            (200, _) => Ok(()),
            (status, _) => anyhow::bail!("PUT {key}: HTTP {status}"),
        }
    }

    /// Whether `key` exists with `size` bytes.
    async fn has(&self, key: &str, size: u64) -> anyhow::Result<bool> {
        let req = self.signed("HEAD", key)?.body(Full::new(Bytes::new()))?;
        let resp = self.http.request(req).await?;
        let len = resp.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        Ok(resp.status() == http::StatusCode::OK && len == Some(size))
    }

    async fn get(&self, key: &str, size: u64) -> anyhow::Result<()> {
        match self.send("GET", key, Bytes::new()).await? {
            (200, n) if n == size => Ok(()),
            (200, n) => anyhow::bail!("GET {key}: {n} bytes, expected {size}"),
            (status, _) => anyhow::bail!("GET {key}: HTTP {status}"),
        }
    }
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_owned())
}

/// Objects a listing run lists (written once, kept across runs).
const LIST_OBJECTS: usize = 1000;

pub async fn run(json: bool, args: S3Args) -> anyhow::Result<()> {
    let load = Load::new(&args.load)?;
    let client = S3Client::new(&args)?;
    let bucket = args.bucket.clone();
    match client.send("PUT", &format!("/{bucket}"), Bytes::new()).await? {
        (200, _) | (409, _) => {}
        (status, _) => anyhow::bail!("cannot create bucket {bucket}: HTTP {status}"),
    }
    let run = format!("{:08x}", rand::random::<u32>());
    let size = load.size;
    // Objects for gets are kept across runs, so a run with `--count 0` can write them
    // first and the measured run (and its CPU figures) covers reads only.
    if matches!(load.workload, Workload::Get | Workload::Mixed) {
        for i in 0..load.concurrency {
            let key = format!("/{bucket}/seed/{size}/{i}");
            if !client.has(&key, size).await? {
                client.put(&key, content(size, i as u64)).await?;
            }
        }
    }
    if load.workload == Workload::List {
        let marker = format!("/{bucket}/list/{:04}", LIST_OBJECTS - 1);
        if !client.has(&marker, 16).await? {
            let puts = (0..LIST_OBJECTS).map(|i| {
                let client = client.clone();
                let key = format!("/{bucket}/list/{i:04}");
                async move { client.put(&key, content(16, i as u64)).await }
            });
            let results: Vec<_> = futures::stream::iter(puts).buffer_unordered(16).collect().await;
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        }
    }
    if load.workload == Workload::DeltaSync {
        anyhow::bail!("delta-sync is a native workload (tessera bench native); S3 has no partial upload");
    }
    let part_size = load.part_size;
    let shared = content(size, 42);
    // Content new to the cluster on every run, so "put" never measures dedup hits.
    let fresh: u64 = rand::random();
    load.run(json, "s3", move |op| {
        let (client, run, shared, bucket) = (client.clone(), run.clone(), shared.clone(), bucket.clone());
        async move {
            match op.workload {
                Workload::Put => {
                    client.put(&format!("/{bucket}/{run}/{}", op.name), content(size, fresh.wrapping_add(op.seq))).await
                }
                Workload::Dedup => client.put(&format!("/{bucket}/{run}/{}", op.name), shared).await,
                Workload::Get => client.get(&format!("/{bucket}/seed/{size}/{}", op.worker), size).await,
                Workload::Mixed if Workload::mixed_is_put(op.seq) => {
                    client.put(&format!("/{bucket}/{run}/{}", op.name), content(size, fresh.wrapping_add(op.seq))).await
                }
                Workload::Mixed => client.get(&format!("/{bucket}/seed/{size}/{}", op.worker), size).await,
                Workload::Multipart => {
                    let data = content(size, fresh.wrapping_add(op.seq));
                    client.multipart(&format!("/{bucket}/{run}/{}", op.name), data, part_size).await
                }
                Workload::List => client.list(&bucket, "list/", LIST_OBJECTS).await,
                Workload::DeltaSync => unreachable!("refused above"),
            }
        }
    })
    .await
}
