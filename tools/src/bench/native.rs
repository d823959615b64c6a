//! `tessera bench native`: the load generator for the native gRPC API.

use bytes::Bytes;
use clap::Args;
use futures::StreamExt;
use tessera_proto::api as pb;
use tessera_router::client::TesseraClient;

use super::{content, Load, LoadArgs, Workload};
use crate::remote::connect;

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

pub async fn run(json: bool, args: NativeArgs) -> anyhow::Result<()> {
    let load = Load::new(&args.load)?;
    let client = connect().await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let size = load.size;
    if load.workload == Workload::Get {
        for i in 0..load.concurrency {
            put(&client, format!("/bench/{run}/seed-{i}"), content(size, i as u64)).await?;
        }
    }
    let shared = content(size, 42);
    // Content new to the cluster on every run, so "put" never measures dedup hits.
    let fresh: u64 = rand::random();
    load.run(json, "native", move |op| {
        let (client, run, shared) = (client.clone(), run.clone(), shared.clone());
        async move {
            match op.workload {
                Workload::Put => {
                    put(&client, format!("/bench/{run}/{}", op.seq), content(size, fresh.wrapping_add(op.seq))).await
                }
                Workload::Dedup => put(&client, format!("/bench/{run}/{}", op.seq), shared).await,
                Workload::Get => get(&client, format!("/bench/{run}/seed-{}", op.worker)).await.map(|_| ()),
            }
        }
    })
    .await
}
