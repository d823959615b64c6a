//! `MetaDb`: the one RocksDB of a `tessera-meta` process, shared by all its
//! Raft groups. Column families separate kinds of data; inside each, keys
//! start with the group id (8 bytes, big-endian) so groups never overlap and
//! a group's range can be scanned, snapshotted or dropped on its own.
//!
//! * `raft_log`:  group ‖ log index → entry
//! * `raft_meta`: group ‖ tag → vote, committed id, last purged id
//! * `sm`:        group ‖ 0x00 ‖ model key → value; group ‖ 0xFF ‖ tag holds
//!   the applied log id and membership (written with the data)
//! * `snapshot`:  group → the last built or installed snapshot

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, DB};

use super::GroupId;

pub const CF_LOG: &str = "raft_log";
pub const CF_META: &str = "raft_meta";
pub const CF_SM: &str = "sm";
pub const CF_SNAPSHOT: &str = "snapshot";

#[derive(Clone)]
pub struct MetaDb {
    pub db: Arc<DB>,
}

impl MetaDb {
    pub fn open(path: &Path) -> Result<Self, rocksdb::Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_paranoid_checks(true);
        let cfs = [CF_LOG, CF_META, CF_SM, CF_SNAPSHOT]
            .into_iter()
            .map(|name| {
                let mut o = Options::default();
                o.set_compression_type(rocksdb::DBCompressionType::Lz4);
                ColumnFamilyDescriptor::new(name, o)
            })
            .collect::<Vec<_>>();
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Handle of a column family created in [`open`](Self::open).
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // The four families are created (create_missing_column_families) by
        // `open` before a `MetaDb` exists, so the lookup cannot fail.
        #[allow(clippy::expect_used)]
        self.db.cf_handle(name).expect("column family created at open")
    }
}

/// `group ‖ suffix`.
pub fn group_key(group: GroupId, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + suffix.len());
    k.extend_from_slice(&group.to_be_bytes());
    k.extend_from_slice(suffix);
    k
}

/// First key after every key of `group`.
pub fn group_end(group: GroupId) -> Vec<u8> {
    match group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xFF; 9],
    }
}
