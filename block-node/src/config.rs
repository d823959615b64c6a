//! Block node configuration: a TOML file (unknown keys rejected) whose values
//! command-line flags may override.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Where the chosen address is written once listening (optional).
    pub addr_file: Option<PathBuf>,
    /// RocksDB data directory.
    pub data_dir: PathBuf,
    /// Stable identity of this node in the cluster.
    pub node_id: String,
    /// Failure domain (zone or rack) used for placement.
    pub zone: String,
    /// Largest fragment accepted, in bytes.
    pub max_fragment_bytes: u64,
    /// Writes are refused with RESOURCE_EXHAUSTED when the data dir's file
    /// system would have less than this many bytes free afterwards.
    pub min_free_bytes: u64,
    /// Chunk count the Bloom filter is sized for up front (it still grows past it).
    pub bloom_expected_chunks: u64,
    /// How many recent Bloom additions are kept for delta requests.
    pub bloom_delta_window: usize,
    /// How often, in milliseconds, the chunks' read times recorded in memory are
    /// written to disk in one batch (also at clean shutdown). A crash loses at
    /// most about this much of read history.
    pub read_flush_ms: u64,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            addr_file: None,
            data_dir: PathBuf::from("tessera-block-data"),
            node_id: "block-1".into(),
            zone: "default".into(),
            max_fragment_bytes: 64 << 20,
            min_free_bytes: 256 << 20,
            bloom_expected_chunks: 1_000_000,
            bloom_delta_window: 1 << 20,
            read_flush_ms: 30_000,
        }
    }
}

impl tessera_proto::config::ListenerConfig for BlockConfig {
    fn listen_mut(&mut self) -> &mut String {
        &mut self.listen
    }

    fn addr_file_mut(&mut self) -> &mut Option<PathBuf> {
        &mut self.addr_file
    }
}
