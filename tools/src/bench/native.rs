//! `tessera bench native`: the load generator for the native gRPC API.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;
use tessera_router::codec::chunker::chunk_reader;
use tessera_router::codec::hash::ContentHasher;
use tessera_router::codec::ChunkerParams;

use super::{content, edit_one_percent, Load, LoadArgs, Workload};
use crate::remote::connect;
use crate::resumable::put_chunk_messages;

#[derive(Args, Debug)]
pub struct NativeArgs {
    #[command(flatten)]
    load: LoadArgs,
}

async fn put(client: &TesseraClient, path: String, data: Bytes) -> anyhow::Result<()> {
    let header = pb::PutHeader { path, base_version: None, device_id: "bench".into(), on_conflict: 0 };
    let pieces: Vec<Bytes> =
        (0..data.len()).step_by(1 << 20).map(|at| data.slice(at..(at + (1 << 20)).min(data.len()))).collect();
    client.put(header, futures::stream::iter(pieces)).await?;
    Ok(())
}

async fn get(client: &TesseraClient, path: String) -> anyhow::Result<u64> {
    let (_, data) = client.get(pb::GetRequest { path, version: None, range_start: None, range_end: None }).await?;
    let mut data = Box::pin(data);
    let mut n = 0u64;
    while let Some(piece) = data.next().await {
        n += piece?.len() as u64;
    }
    Ok(n)
}

/// Uploads `data` as a sync client does: chunked and hashed here, an upload
/// session opened with the chunk list, only the chunks the cluster lacks sent,
/// then committed. Returns the bytes sent.
async fn session_put(client: &TesseraClient, path: String, data: Bytes) -> anyhow::Result<u64> {
    let scan = data.clone();
    let (chunks, sha) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
        let mut chunks = Vec::new();
        let mut whole = ContentHasher::default();
        chunk_reader(&scan[..], ChunkerParams::default(), |c| {
            whole.update(&c.data);
            chunks.push((c.offset as usize, c.data.len(), c.hash.0));
            Ok(())
        })?;
        Ok((chunks, whole.finish()))
    })
    .await??;
    let mut raw = client.raw();
    let session_id = Bytes::copy_from_slice(&rand::random::<[u8; 16]>());
    let status = raw
        .open_session(pb::OpenSessionRequest {
            session_id: session_id.clone(),
            path,
            chunks: chunks
                .iter()
                .map(|(_, size, hash)| pb::SessionChunk { hash: Bytes::copy_from_slice(hash), size: *size as u64 })
                .collect(),
            base_version: None,
            device_id: "bench".into(),
        })
        .await?
        .into_inner();
    let mut sent = 0u64;
    let mut done = std::collections::HashSet::new();
    for (offset, size, hash) in &chunks {
        if !status.missing.iter().any(|m| m[..] == hash[..]) || !done.insert(*hash) {
            continue;
        }
        let pieces = put_chunk_messages(&session_id, hash, data.slice(*offset..offset + size));
        raw.put_chunk(futures::stream::iter(pieces)).await?;
        sent += *size as u64;
    }
    raw.commit_session(pb::CommitSessionRequest {
        session_id,
        content_sha256: Bytes::copy_from_slice(&sha),
        on_conflict: 0,
    })
    .await?;
    Ok(sent)
}

async fn list(client: &TesseraClient, path: &str, expect: usize) -> anyhow::Result<()> {
    let page =
        client.raw().list(pb::ListRequest { path: path.into(), start_after: String::new(), limit: 1000 }).await?;
    let n = page.into_inner().entries.len();
    if n != expect {
        anyhow::bail!("listing {path}: {n} entries, expected {expect}");
    }
    Ok(())
}

/// Entries a listing run lists (written once, kept across runs).
const LIST_ENTRIES: usize = 1000;

pub async fn run(json: bool, args: NativeArgs) -> anyhow::Result<()> {
    let load = Load::new(&args.load)?;
    let client = connect().await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let size = load.size;
    // Content new to the cluster on every run, so "put" never measures dedup hits.
    let fresh: u64 = rand::random();
    if matches!(load.workload, Workload::Get | Workload::Mixed) {
        for i in 0..load.concurrency {
            put(&client, format!("/bench/{run}/seed-{i}"), content(size, i as u64)).await?;
        }
    }
    if load.workload == Workload::List {
        let last = format!("/bench/list/{:04}", LIST_ENTRIES - 1);
        let present = client.raw().stat(pb::StatRequest { path: last }).await.is_ok();
        if !present {
            let puts = (0..LIST_ENTRIES).map(|i| {
                let client = client.clone();
                async move { put(&client, format!("/bench/list/{i:04}"), content(16, i as u64)).await }
            });
            let results: Vec<_> = futures::stream::iter(puts).buffer_unordered(16).collect().await;
            results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        }
    }
    // Delta sync: every worker owns a file it keeps editing and uploading.
    let files: Arc<Vec<Mutex<Vec<u8>>>> = Arc::new(if load.workload == Workload::DeltaSync {
        let mut files = Vec::new();
        for i in 0..load.concurrency {
            let data = content(size, fresh.wrapping_add(i as u64));
            session_put(&client, format!("/bench/{run}/delta-{i}"), data.clone()).await?;
            files.push(Mutex::new(data.to_vec()));
        }
        files
    } else {
        Vec::new()
    });
    let shared = content(size, 42);
    let sent = load.sent.clone();
    load.run(json, "native", move |op| {
        let (client, run, shared, files, sent) =
            (client.clone(), run.clone(), shared.clone(), files.clone(), sent.clone());
        async move {
            match op.workload {
                Workload::Put => {
                    put(&client, format!("/bench/{run}/{}", op.name), content(size, fresh.wrapping_add(op.seq))).await
                }
                Workload::Dedup => put(&client, format!("/bench/{run}/{}", op.name), shared).await,
                Workload::Get => get(&client, format!("/bench/{run}/seed-{}", op.worker)).await.map(|_| ()),
                Workload::Mixed if Workload::mixed_is_put(op.seq) => {
                    put(&client, format!("/bench/{run}/{}", op.name), content(size, fresh.wrapping_add(op.seq))).await
                }
                Workload::Mixed => get(&client, format!("/bench/{run}/seed-{}", op.worker)).await.map(|_| ()),
                Workload::Multipart => {
                    let data = content(size, fresh.wrapping_add(op.seq));
                    session_put(&client, format!("/bench/{run}/{}", op.name), data).await.map(|_| ())
                }
                Workload::List => list(&client, "/bench/list", LIST_ENTRIES).await,
                Workload::DeltaSync => {
                    let data = {
                        let mut file = files[op.worker].lock().unwrap_or_else(|p| p.into_inner());
                        edit_one_percent(&mut file, fresh ^ op.seq);
                        Bytes::copy_from_slice(&file)
                    };
                    let n = session_put(&client, format!("/bench/{run}/delta-{}", op.worker), data).await?;
                    sent.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                }
            }
        }
    })
    .await
}
