//! The read-time log: when each chunk held here was last read by a client
//! (`GetFragment`), which storage tiering uses to move chunks nobody reads any
//! more to colder nodes.
//!
//! A read only updates memory: the chunk's time and a dirty mark. [`ReadLog::flush`]
//! writes every chunk read since the previous flush to the `reads` column family
//! in one `WriteBatch`, so a chunk read a thousand times between two flushes
//! costs one record write. The node flushes every `read_flush_ms` and at a clean
//! shutdown.
//!
//! The batch is not fsynced, and reads since the last flush live only in memory.
//! After a crash the chunks read during the last interval look as they did at
//! the previous flush: read earlier, or never read. Tiering may then take them
//! for colder than they are and move them a little early; no data is at risk,
//! which is why reads do not pay for a synced write.
//!
//! Record layout: key = the 32-byte chunk hash, value = u64 big-endian
//! milliseconds since the Unix epoch on the node's clock. All records are loaded
//! at open (32 + 8 bytes of payload per chunk ever read here). A delete that
//! removes the last fragment of a chunk removes its record in the same batch
//! (see [`ReadLog::forget`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};
use tessera_proto::ChunkHash;

use crate::error::StoreError;
use crate::touch::now_ms;

pub const CF_READS: &str = "reads";

#[derive(Default)]
struct State {
    /// Last read per chunk: the persisted time, or a newer one from memory.
    last: HashMap<ChunkHash, u64>,
    /// Chunks read since the last flush.
    dirty: HashSet<ChunkHash>,
}

pub struct ReadLog {
    state: Mutex<State>,
    /// Held by a flush from taking the dirty set to writing it, and by a delete
    /// from forgetting chunks to writing its batch, so a flush never writes back
    /// a record that a delete has just removed.
    flushing: Mutex<()>,
    flushes: AtomicU64,
    records_written: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain numbers and sets: a panic elsewhere cannot leave them half-updated.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn decode_record(key: &[u8], value: &[u8]) -> Result<(ChunkHash, u64), StoreError> {
    let chunk = ChunkHash::from_slice(key).map_err(|e| StoreError::Corrupt(format!("read record key: {e}")))?;
    let ms: [u8; 8] = value
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("read record of {chunk} has {} bytes, expected 8", value.len())))?;
    Ok((chunk, u64::from_be_bytes(ms)))
}

impl ReadLog {
    /// Loads every persisted read time from the `reads` column family of `db`.
    pub fn load(db: &DB) -> Result<Self, StoreError> {
        let cf = reads_cf(db)?;
        let mut last = HashMap::new();
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            let (chunk, ms) = decode_record(&k, &v)?;
            last.insert(chunk, ms);
        }
        Ok(Self {
            state: Mutex::new(State { last, dirty: HashSet::new() }),
            flushing: Mutex::new(()),
            flushes: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
        })
    }

    /// Records that `chunk` was read now (memory only, until the next flush).
    pub fn record(&self, chunk: &ChunkHash) {
        let now = now_ms();
        let mut state = lock(&self.state);
        let t = state.last.entry(*chunk).or_insert(now);
        // The clock may step back; a read time never does.
        *t = (*t).max(now);
        state.dirty.insert(*chunk);
    }

    /// Milliseconds since the epoch of the chunk's last read here; 0 = never
    /// (since its fragments were last all deleted).
    pub fn last_read_ms(&self, chunk: &ChunkHash) -> u64 {
        lock(&self.state).last.get(chunk).copied().unwrap_or(0)
    }

    /// Chunks read since the last flush: the records the next flush writes.
    pub fn pending(&self) -> u64 {
        lock(&self.state).dirty.len() as u64
    }

    /// Flushes that wrote at least one record since open.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Records written by flushes since open.
    pub fn records_written(&self) -> u64 {
        self.records_written.load(Ordering::Relaxed)
    }

    /// Writes the read times of the chunks read since the last flush in one
    /// unsynced batch; returns how many records it wrote. On failure the chunks
    /// stay dirty for the next flush.
    pub fn flush(&self, db: &DB) -> Result<u64, StoreError> {
        let _flushing = lock(&self.flushing);
        let entries: Vec<(ChunkHash, u64)> = {
            let mut state = lock(&self.state);
            let dirty = std::mem::take(&mut state.dirty);
            dirty.into_iter().filter_map(|c| state.last.get(&c).map(|t| (c, *t))).collect()
        };
        if entries.is_empty() {
            return Ok(0);
        }
        let written = reads_cf(db).and_then(|cf| {
            let mut batch = WriteBatch::default();
            for (chunk, ms) in &entries {
                batch.put_cf(cf, chunk.as_bytes(), ms.to_be_bytes());
            }
            // Default options: through the WAL, without fsync (see the module doc).
            db.write_opt(batch, &WriteOptions::default()).map_err(StoreError::from)
        });
        if let Err(e) = written {
            let mut state = lock(&self.state);
            for (chunk, _) in &entries {
                if state.last.contains_key(chunk) {
                    state.dirty.insert(*chunk);
                }
            }
            return Err(e);
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.records_written.fetch_add(entries.len() as u64, Ordering::Relaxed);
        Ok(entries.len() as u64)
    }

    /// Stops flushes until the guard is dropped. A delete holds it from
    /// [`forget`](Self::forget) until its batch is written.
    pub fn pause_flushes(&self) -> MutexGuard<'_, ()> {
        lock(&self.flushing)
    }

    /// Forgets `chunk` (its last fragment here is being deleted) and adds the
    /// deletion of its record to `batch`. The caller holds
    /// [`pause_flushes`](Self::pause_flushes) until `batch` is written. Should the
    /// write fail, the chunk's reads since the last flush are lost: it looks
    /// colder, never hotter.
    pub fn forget(&self, db: &DB, batch: &mut WriteBatch, chunk: &ChunkHash) -> Result<(), StoreError> {
        batch.delete_cf(reads_cf(db)?, chunk.as_bytes());
        let mut state = lock(&self.state);
        state.last.remove(chunk);
        state.dirty.remove(chunk);
        Ok(())
    }

    /// The persisted read time of `chunk`, ignoring memory (for tests and tools).
    pub fn persisted_ms(db: &DB, chunk: &ChunkHash) -> Result<Option<u64>, StoreError> {
        match db.get_pinned_cf(reads_cf(db)?, chunk.as_bytes())? {
            Some(v) => Ok(Some(decode_record(chunk.as_bytes(), &v)?.1)),
            None => Ok(None),
        }
    }

    /// Number of persisted records (for tests and tools; scans the column family).
    pub fn persisted_count(db: &DB) -> Result<u64, StoreError> {
        let mut n = 0;
        for item in db.iterator_cf(reads_cf(db)?, IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }
}

fn reads_cf(db: &DB) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(CF_READS).ok_or_else(|| StoreError::Corrupt(format!("column family {CF_READS} is missing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> DB {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        DB::open_cf(&opts, dir, [CF_READS]).unwrap()
    }

    #[test]
    fn many_reads_between_flushes_write_one_record_that_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = ChunkHash([4; 32]);
        let before = now_ms();
        {
            let db = open(dir.path());
            let log = ReadLog::load(&db).unwrap();
            assert_eq!(log.last_read_ms(&chunk), 0);
            for _ in 0..1000 {
                log.record(&chunk);
            }
            assert_eq!(log.pending(), 1);
            assert!(log.last_read_ms(&chunk) >= before);
            assert_eq!(ReadLog::persisted_ms(&db, &chunk).unwrap(), None, "nothing written before a flush");
            assert_eq!(log.flush(&db).unwrap(), 1);
            assert_eq!(log.flush(&db).unwrap(), 0, "nothing read since");
            assert_eq!((log.flushes(), log.records_written(), log.pending()), (1, 1, 0));
            assert_eq!(ReadLog::persisted_count(&db).unwrap(), 1);
        }
        let db = open(dir.path());
        let log = ReadLog::load(&db).unwrap();
        let t = log.last_read_ms(&chunk);
        assert!(t >= before && t <= now_ms(), "{t} not in [{before}, now]");
        let mut batch = WriteBatch::default();
        {
            let _paused = log.pause_flushes();
            log.forget(&db, &mut batch, &chunk).unwrap();
            db.write(batch).unwrap();
        }
        assert_eq!(log.last_read_ms(&chunk), 0);
        assert_eq!(ReadLog::persisted_ms(&db, &chunk).unwrap(), None);
    }
}
