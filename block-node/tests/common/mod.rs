//! Starting real `tessera-block` processes for the tests in this directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tessera_block::client::FragmentCode;
use tessera_block::{BlockClient, FragmentKey};
use tessera_proto::ChunkHash;
use tessera_tests::{read_addr_file, ProcessGuard};

pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct BlockProcess {
    pub guard: ProcessGuard,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl BlockProcess {
    /// Starts `tessera-block` on `data_dir` with port 0 and waits for its address.
    pub fn start(work: &Path, data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let addr_file = work.join(format!("addr-{}", rand_suffix()));
        let _ = std::fs::remove_file(&addr_file);
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--addr-file".into(),
            addr_file.display().to_string(),
            "--node-id".into(),
            "test-block".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = work.join(format!("block-{}.log", rand_suffix()));
        let mut guard =
            ProcessGuard::spawn("tessera-block", Path::new(env!("CARGO_BIN_EXE_tessera-block")), &args, &log)?;
        let addr = read_addr_file(&addr_file, START_TIMEOUT, &mut guard)?;
        Ok(Self { guard, addr, data_dir: data_dir.to_path_buf() })
    }

    pub async fn client(&self) -> BlockClient {
        BlockClient::connect(format!("http://{}", self.addr)).await.expect("connect to block node")
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn chunk(i: u64) -> ChunkHash {
    use sha2::Digest;
    ChunkHash(sha2::Sha256::digest(i.to_le_bytes()).into())
}

pub fn code(len: usize) -> FragmentCode {
    FragmentCode { data_shards: 4, parity_shards: 2, chunk_len: len as u64 * 4 }
}

pub async fn put(client: &BlockClient, key: &FragmentKey, data: &[u8]) -> Result<bool, tonic::Status> {
    client.put_fragment(key, code(data.len()), Bytes::copy_from_slice(data)).await
}

pub use tessera_tests::http_get;
