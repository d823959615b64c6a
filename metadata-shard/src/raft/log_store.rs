//! `LogStore`: one Raft group's log and vote in the shared RocksDB.
//!
//! Appends are written with a synced WAL before openraft is told they are
//! flushed, so an entry a leader counts toward a quorum survives kill -9.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::{group_end, group_key, MetaDb, CF_LOG, CF_META};
use super::{GroupId, NodeId, StorageError, TypeConfig};

const META_VOTE: &[u8] = b"vote";
const META_COMMITTED: &[u8] = b"committed";
const META_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: MetaDb,
    group: GroupId,
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(v)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(b)
}

fn synced() -> WriteOptions {
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    wo
}

impl LogStore {
    pub fn new(db: MetaDb, group: GroupId) -> Self {
        Self { db, group }
    }

    fn log_key(&self, index: u64) -> Vec<u8> {
        group_key(self.group, &index.to_be_bytes())
    }

    fn get_meta<T: DeserializeOwned>(&self, tag: &[u8]) -> Result<Option<T>, StorageError> {
        let raw =
            self.db.db.get_cf(self.db.cf(CF_META), group_key(self.group, tag)).map_err(|e| StorageIOError::read(&e))?;
        raw.map(|b| decode(&b).map_err(|e| StorageIOError::read(&e).into())).transpose()
    }

    fn put_meta<T: Serialize>(&self, tag: &[u8], v: &T) -> Result<(), StorageError> {
        let bytes = encode(v).map_err(|e| StorageIOError::write(&e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_META), group_key(self.group, tag), bytes);
        self.db.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    /// The last log id known committed, as persisted by openraft.
    pub fn committed(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(META_COMMITTED)?.flatten())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, StorageError> {
        let end = group_end(self.group);
        let mut iter = self.db.db.iterator_cf(self.db.cf(CF_LOG), IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(Ok((k, v))) if k.starts_with(&self.group.to_be_bytes()) => {
                let entry: Entry<TypeConfig> = decode(&v).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
            Some(Err(e)) => Err(StorageIOError::read_logs(&e).into()),
            _ => Ok(None),
        }
    }

    /// Deletes log entries with index in [from, to).
    fn delete_range(&self, from: u64, to: Option<u64>) -> Result<(), StorageError> {
        let start = self.log_key(from);
        let end = match to {
            Some(t) => self.log_key(t),
            None => group_end(self.group),
        };
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.db.cf(CF_LOG), start, end);
        self.db.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => 0,
        };
        let start_key = self.log_key(start);
        let mut out = Vec::new();
        for item in self.db.db.iterator_cf(self.db.cf(CF_LOG), IteratorMode::From(&start_key, Direction::Forward)) {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            if !k.starts_with(&self.group.to_be_bytes()) || k.len() != 16 {
                break;
            }
            let mut idx = [0u8; 8];
            idx.copy_from_slice(&k[8..16]);
            let index = u64::from_be_bytes(idx);
            if !range.contains(&index) {
                break;
            }
            out.push(decode(&v).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId<NodeId>> = self.get_meta(META_PURGED)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(META_VOTE, vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(META_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError> {
        self.put_meta(META_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(META_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = encode(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(self.db.cf(CF_LOG), self.log_key(entry.log_id.index), bytes);
        }
        let result = self.db.db.write_opt(batch, &synced());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        self.delete_range(log_id.index, None)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError> {
        // Record the purge point first: if we crash in between, the entries
        // below it are merely garbage, never a hole in the log.
        self.put_meta(META_PURGED, &log_id)?;
        self.delete_range(0, Some(log_id.index + 1))
    }
}
