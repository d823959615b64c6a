//! `StateMachineStore`: one Raft group's applied state in the shared RocksDB.
//!
//! Each entry's data changes and the new applied log id (and membership) go
//! into one `WriteBatch`, so after a crash the state is exactly "applied up
//! to X" and replay resumes from X + 1. Snapshots are a consistent RocksDB
//! snapshot of the group's key range, serialized and kept in the `snapshot`
//! column family so they survive restarts; openraft sends them to lagging
//! replicas in chunks.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::Deserialize;

use super::db::{group_end, group_key, MetaDb, CF_SM, CF_SNAPSHOT};
use super::{GroupId, NodeId, StorageError, TypeConfig};
use crate::command::{Applier, GroupResponse};

/// Model keys live under `group ‖ DATA`; bookkeeping under `group ‖ META`.
const DATA: u8 = 0x00;
const META: u8 = 0xFF;
const APPLIED: &[u8] = &[META, b'a'];
const MEMBERSHIP: &[u8] = &[META, b'm'];
/// `META ‖ 'r' ‖ request id` → the response given to that request.
const REQUEST: u8 = b'r';
/// `META ‖ 'i' ‖ log index` → request id, to forget old ids in log order.
const REQUEST_AT: u8 = b'i';
/// Request ids are remembered for this many log entries: far longer than a
/// client keeps retrying one request.
const DEDUP_WINDOW: u64 = 100_000;

type Membership = StoredMembership<NodeId, openraft::BasicNode>;
/// Key/value pairs read from a group's state.
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;
type DumpPairs<'a> = Vec<(&'a [u8], &'a [u8])>;

/// A consistent copy of a group's key range.
struct Dump {
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    data: Vec<u8>,
}

struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

/// Read access to a group's committed model state (keys without the prefix).
pub struct GroupView<'a> {
    db: &'a MetaDb,
    group: GroupId,
}

impl GroupView<'_> {
    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut full = group_key(self.group, &[DATA]);
        full.extend_from_slice(k);
        full
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.db.get_cf(self.db.cf(CF_SM), self.key(key))
    }

    /// Entries with `start <= key < end`, in key order, at most `limit`.
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, rocksdb::Error> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(self.key(end));
        let from = self.key(start);
        let prefix_len = 9;
        let mut out = Vec::new();
        for item in
            self.db.db.iterator_cf_opt(self.db.cf(CF_SM), ro, IteratorMode::From(&from, rocksdb::Direction::Forward))
        {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            out.push((k[prefix_len..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

#[derive(Clone)]
pub struct StateMachineStore {
    db: MetaDb,
    group: GroupId,
    applier: Arc<dyn Applier>,
}

fn io_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn io_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}

fn request_key(id: &str) -> Vec<u8> {
    let mut k = vec![META, REQUEST];
    k.extend_from_slice(id.as_bytes());
    k
}

fn request_at_key(index: u64) -> Vec<u8> {
    let mut k = vec![META, REQUEST_AT];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

impl StateMachineStore {
    /// Drops a few request ids that fell out of the dedup window (a bounded
    /// amount of work per applied entry keeps pace with new ids).
    fn forget_old_requests(&self, batch: &mut WriteBatch, index: u64) -> Result<(), StorageError> {
        let Some(bound) = index.checked_sub(DEDUP_WINDOW) else {
            return Ok(());
        };
        let cf = self.db.cf(CF_SM);
        let start = self.meta_key(&request_at_key(0));
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(self.meta_key(&request_at_key(bound)));
        for item in self.db.db.iterator_cf_opt(cf, ro, IteratorMode::From(&start, rocksdb::Direction::Forward)).take(4)
        {
            let (k, id) = item.map_err(io_read)?;
            batch.delete_cf(cf, &k);
            batch.delete_cf(cf, self.meta_key(&request_key(&String::from_utf8_lossy(&id))));
        }
        Ok(())
    }

    pub fn new(db: MetaDb, group: GroupId, applier: Arc<dyn Applier>) -> Self {
        Self { db, group, applier }
    }

    pub fn view(&self) -> GroupView<'_> {
        GroupView { db: &self.db, group: self.group }
    }

    fn meta_key(&self, tag: &[u8]) -> Vec<u8> {
        group_key(self.group, tag)
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, tag: &[u8]) -> Result<Option<T>, StorageError> {
        match self.db.db.get_cf(self.db.cf(CF_SM), self.meta_key(tag)).map_err(io_read)? {
            Some(b) => Ok(Some(serde_json::from_slice(&b).map_err(io_read)?)),
            None => Ok(None),
        }
    }

    fn applied(&self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        let applied = self.read_json::<LogId<NodeId>>(APPLIED)?;
        let membership = self.read_json::<Membership>(MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.db.write_opt(batch, &wo).map_err(io_write)
    }

    /// Serializes the group's whole key range from one RocksDB snapshot.
    fn dump(&self) -> Result<Dump, StorageError> {
        let snap = self.db.db.snapshot();
        let mut ro = ReadOptions::default();
        ro.set_snapshot(&snap);
        ro.set_iterate_upper_bound(group_end(self.group));
        let start = group_key(self.group, &[]);
        let mut data = Vec::new();
        let (mut applied, mut membership) = (None, Membership::default());
        for item in
            self.db.db.iterator_cf_opt(self.db.cf(CF_SM), ro, IteratorMode::From(&start, rocksdb::Direction::Forward))
        {
            let (k, v) = item.map_err(io_read)?;
            let suffix = &k[8..];
            if suffix == APPLIED {
                applied = Some(serde_json::from_slice(&v).map_err(io_read)?);
            } else if suffix == MEMBERSHIP {
                membership = serde_json::from_slice(&v).map_err(io_read)?;
            }
            data.extend_from_slice(&(suffix.len() as u32).to_le_bytes());
            data.extend_from_slice(suffix);
            data.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data.extend_from_slice(&v);
        }
        Ok(Dump { applied, membership, data })
    }
}

fn take_field<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], String> {
    if data.len() < 4 {
        return Err("truncated snapshot".into());
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < 4 + len {
        return Err("truncated snapshot".into());
    }
    let (item, rest) = data[4..].split_at(len);
    *data = rest;
    Ok(item)
}

/// Splits a snapshot dump into (key suffix, value) pairs.
fn parse_dump(mut data: &[u8]) -> Result<DumpPairs<'_>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let k = take_field(&mut data)?;
        let v = take_field(&mut data)?;
        out.push((k, v));
    }
    Ok(out)
}

impl StoredSnapshot {
    /// `len(meta json) ‖ meta json ‖ dump`: the dump stays raw bytes.
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let meta = serde_json::to_vec(&self.meta)?;
        let mut out = Vec::with_capacity(4 + meta.len() + self.data.len());
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    fn decode(mut bytes: &[u8]) -> Result<Self, String> {
        let meta = take_field(&mut bytes)?;
        let meta = serde_json::from_slice(meta).map_err(|e| e.to_string())?;
        Ok(Self { meta, data: bytes.to_vec() })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let Dump { applied, membership, data } = self.dump()?;
        let snapshot_id = match &applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id: applied, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let bytes = stored.encode().map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_SNAPSHOT), self.group.to_be_bytes(), bytes);
        self.write(batch, true)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership), StorageError> {
        self.applied()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<GroupResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let mut batch = WriteBatch::default();
            let response = match &entry.payload {
                EntryPayload::Blank => GroupResponse::Blank,
                EntryPayload::Normal(proposal) => {
                    let seen = match &proposal.request_id {
                        Some(id) => self.read_json::<GroupResponse>(&request_key(id))?,
                        None => None,
                    };
                    if let Some(previous) = seen {
                        // A retry of a command that was already applied.
                        previous
                    } else {
                        let (response, writes) =
                            self.applier.apply(&self.view(), &proposal.command).map_err(io_read)?;
                        if let Some(id) = &proposal.request_id {
                            batch.put_cf(
                                self.db.cf(CF_SM),
                                self.meta_key(&request_key(id)),
                                serde_json::to_vec(&response).map_err(io_write)?,
                            );
                            batch.put_cf(
                                self.db.cf(CF_SM),
                                self.meta_key(&request_at_key(entry.log_id.index)),
                                id.as_bytes(),
                            );
                        }
                        self.forget_old_requests(&mut batch, entry.log_id.index)?;
                        for (k, v) in writes {
                            let mut key = group_key(self.group, &[DATA]);
                            key.extend_from_slice(&k);
                            match v {
                                Some(v) => batch.put_cf(self.db.cf(CF_SM), key, v),
                                None => batch.delete_cf(self.db.cf(CF_SM), key),
                            }
                        }
                        response
                    }
                }
                EntryPayload::Membership(m) => {
                    let stored = Membership::new(Some(entry.log_id), m.clone());
                    batch.put_cf(
                        self.db.cf(CF_SM),
                        self.meta_key(MEMBERSHIP),
                        serde_json::to_vec(&stored).map_err(io_write)?,
                    );
                    GroupResponse::Blank
                }
            };
            batch.put_cf(
                self.db.cf(CF_SM),
                self.meta_key(APPLIED),
                serde_json::to_vec(&entry.log_id).map_err(io_write)?,
            );
            // Not synced: the log entry is already durable, and replay after a
            // crash re-applies anything past the last persisted applied id.
            self.write(batch, false)?;
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let pairs = parse_dump(&data).map_err(|e| StorageIOError::read_snapshot(None, &std::io::Error::other(e)))?;
        let cf = self.db.cf(CF_SM);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, group_key(self.group, &[]), group_end(self.group));
        for (k, v) in pairs {
            batch.put_cf(cf, group_key(self.group, k), v);
        }
        // The snapshot's own applied id and membership win over whatever the
        // dump carried.
        batch.put_cf(
            cf,
            self.meta_key(APPLIED),
            serde_json::to_vec(&meta.last_log_id.ok_or_else(|| {
                StorageIOError::read_snapshot(None, &std::io::Error::other("snapshot without a log id"))
            })?)
            .map_err(io_write)?,
        );
        batch.put_cf(cf, self.meta_key(MEMBERSHIP), serde_json::to_vec(&meta.last_membership).map_err(io_write)?);
        let stored = StoredSnapshot { meta: meta.clone(), data };
        batch.put_cf(
            self.db.cf(CF_SNAPSHOT),
            self.group.to_be_bytes(),
            stored.encode().map_err(|e| StorageIOError::write_snapshot(None, &e))?,
        );
        self.write(batch, true)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let raw = self
            .db
            .db
            .get_cf(self.db.cf(CF_SNAPSHOT), self.group.to_be_bytes())
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        match raw {
            Some(b) => {
                let stored = StoredSnapshot::decode(&b)
                    .map_err(|e| StorageIOError::read_snapshot(None, &std::io::Error::other(e)))?;
                Ok(Some(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) }))
            }
            None => Ok(None),
        }
    }
}
