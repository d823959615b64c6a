//! `FragmentStore`: fragments on RocksDB, durable on acknowledge, verified on read.
//!
//! Two column families: `index` (key → [`FragmentMeta`], small, scanned at
//! start to rebuild counters and the Bloom filter) and `fragments` (key → bytes,
//! with BlobDB so large values live in blob files instead of being rewritten by
//! compaction). Both are written in one `WriteBatch` with a synced WAL, so a
//! fragment is either fully present with its metadata or absent, and an
//! acknowledged put survives kill -9 and power loss.
//!
//! A third column family, `reads`, holds the chunks' last read times, written
//! in unsynced batches by [`ReadLog`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use tessera_proto::ChunkHash;

use crate::error::StoreError;
use crate::fragment::{FragmentKey, FragmentMeta, KEY_LEN};
use crate::reads::{ReadLog, CF_READS};
use crate::touch::TouchLog;

const CF_INDEX: &str = "index";
const CF_FRAGMENTS: &str = "fragments";
/// Writes to the same chunk stripe are serialized so counters stay exact when
/// two routers store the same fragment at once, and so a conditional delete and
/// an exact presence check of one chunk never interleave.
const WRITE_STRIPES: usize = 64;

/// Result of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    AlreadyPresent,
}

/// Capacity figures of the data dir's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskSpace {
    pub free: u64,
    pub total: u64,
}

/// Outcome of a scrub pass.
#[derive(Debug, Default)]
pub struct ScrubReport {
    pub examined: u64,
    pub bytes_examined: u64,
    pub corrupt: Vec<(Option<FragmentKey>, String)>,
}

pub struct FragmentStore {
    db: DB,
    data_dir: PathBuf,
    max_fragment_bytes: u64,
    min_free_bytes: u64,
    fragments: AtomicU64,
    bytes: AtomicU64,
    stripes: Vec<Mutex<()>>,
    touches: TouchLog,
    reads: ReadLog,
}

/// Outcome of [`FragmentStore::delete_untouched`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: u64,
    pub bytes_freed: u64,
    /// Fragments kept because their chunk was touched within the window.
    pub kept_recent: u64,
}

/// One fragment as listed by [`FragmentStore::list`] (and by
/// `BlockClient::list_fragments`). Times are milliseconds since the Unix epoch
/// on the node's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedFragment {
    pub key: FragmentKey,
    pub fragment_len: u64,
    /// Last touch of the chunk (stored, or found by an exact `BatchHas`).
    pub last_touch_ms: u64,
    /// When this copy was written, from its index entry (second precision). A
    /// re-put of an intact identical fragment keeps it; a re-put that replaces
    /// the stored copy (damaged, or different bytes) sets it anew.
    pub stored_ms: u64,
    /// Last client read of any fragment of the chunk here; 0 = never read since
    /// the chunk was stored here (after all its fragments were deleted, anew).
    pub last_read_ms: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl FragmentStore {
    /// Opens (or creates) the store. `on_fragment` sees every stored fragment's
    /// key once, which is how the Bloom filter is rebuilt at start.
    pub fn open(
        data_dir: &Path,
        max_fragment_bytes: u64,
        min_free_bytes: u64,
        mut on_fragment: impl FnMut(&FragmentKey),
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Storage(format!("cannot create {}: {e}", data_dir.display())))?;
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_paranoid_checks(true);
        db_opts.increase_parallelism(2);
        db_opts.set_max_background_jobs(2);

        let mut index_opts = Options::default();
        index_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);

        let mut frag_opts = Options::default();
        frag_opts.set_enable_blob_files(true);
        frag_opts.set_min_blob_size(4096);
        frag_opts.set_blob_file_size(256 << 20);
        // Fragments are mostly incompressible coded data; the cold tier will
        // choose compression per chunk instead.
        frag_opts.set_blob_compression_type(rocksdb::DBCompressionType::None);
        frag_opts.set_enable_blob_gc(true);
        frag_opts.set_write_buffer_size(64 << 20);

        let db = DB::open_cf_descriptors(
            &db_opts,
            data_dir,
            vec![
                ColumnFamilyDescriptor::new(CF_INDEX, index_opts),
                ColumnFamilyDescriptor::new(CF_FRAGMENTS, frag_opts),
                // Hashes and times: incompressible, small.
                ColumnFamilyDescriptor::new(CF_READS, Options::default()),
            ],
        )?;
        let reads = ReadLog::load(&db)?;
        let store = Self {
            db,
            data_dir: data_dir.to_path_buf(),
            max_fragment_bytes,
            min_free_bytes,
            fragments: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stripes: (0..WRITE_STRIPES).map(|_| Mutex::new(())).collect(),
            touches: TouchLog::new(),
            reads,
        };
        let (mut count, mut bytes) = (0u64, 0u64);
        store.for_each_fragment(|key, meta| {
            count += 1;
            bytes += meta.fragment_len;
            on_fragment(key);
        })?;
        store.fragments.store(count, Ordering::Relaxed);
        store.bytes.store(bytes, Ordering::Relaxed);
        Ok(store)
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Corrupt(format!("column family {name} is missing")))
    }

    fn stripe_of(&self, chunk: &ChunkHash) -> usize {
        chunk.as_bytes()[0] as usize % WRITE_STRIPES
    }

    fn stripe(&self, chunk: &ChunkHash) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.stripes[self.stripe_of(chunk)].lock().map_err(|_| StoreError::Storage("lock poisoned".into()))
    }

    /// Visits the metadata of every stored fragment in key order.
    pub fn for_each_fragment(&self, mut f: impl FnMut(&FragmentKey, &FragmentMeta)) -> Result<(), StoreError> {
        let cf = self.cf(CF_INDEX)?;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            f(&FragmentKey::decode(&k)?, &FragmentMeta::decode(&v)?);
        }
        Ok(())
    }

    pub fn max_fragment_bytes(&self) -> u64 {
        self.max_fragment_bytes
    }

    /// Rejects a fragment of `len` bytes before any of it is received.
    pub fn check_admission(&self, len: u64) -> Result<(), StoreError> {
        if len > self.max_fragment_bytes {
            return Err(StoreError::TooLarge { size: len, limit: self.max_fragment_bytes });
        }
        let space = self.disk_space()?;
        if space.free < self.min_free_bytes.saturating_add(len) {
            return Err(StoreError::DiskFull(format!(
                "{} bytes free in {}, below the reserve of {} bytes",
                space.free,
                self.data_dir.display(),
                self.min_free_bytes
            )));
        }
        Ok(())
    }

    /// Stores a fragment durably. `meta.crc32c` must match `data`.
    pub fn put(&self, key: &FragmentKey, meta: FragmentMeta, data: &[u8]) -> Result<PutOutcome, StoreError> {
        if data.len() as u64 != meta.fragment_len {
            return Err(StoreError::InvalidArgument(format!(
                "fragment announced {} bytes but carried {}",
                meta.fragment_len,
                data.len()
            )));
        }
        let actual = crc32c::crc32c(data);
        if actual != meta.crc32c {
            return Err(StoreError::InvalidArgument(format!(
                "fragment checksum mismatch in transit: sent {:08x}, received data has {actual:08x}",
                meta.crc32c
            )));
        }
        self.check_admission(meta.fragment_len)?;
        let encoded_key = key.encode();
        let _guard = self.stripe(&key.chunk)?;
        self.touches.touch(&key.chunk);
        let index = self.cf(CF_INDEX)?;
        let frags = self.cf(CF_FRAGMENTS)?;
        let previous = match self.db.get_pinned_cf(index, encoded_key)? {
            Some(v) => Some(FragmentMeta::decode(&v)?),
            None => None,
        };
        if let Some(prev) = previous {
            // Same content address and same checksum: only the stored time is
            // rewritten (a tiering move's conditional delete spares copies
            // written again since it began), unless the stored copy is damaged,
            // in which case it is replaced.
            if prev.crc32c == meta.crc32c
                && prev.fragment_len == meta.fragment_len
                && self.read_verified(key, &prev).is_ok()
            {
                let now = now_secs();
                if prev.stored_at != now || self.reads.last_read_ms(&key.chunk) > 0 {
                    let mut batch = WriteBatch::default();
                    batch.put_cf(index, encoded_key, FragmentMeta { stored_at: now, ..prev }.encode());
                    self.forget_reads_on_arrival(&mut batch, &key.chunk)?;
                    let mut wo = WriteOptions::default();
                    wo.set_sync(true);
                    self.db.write_opt(batch, &wo)?;
                }
                return Ok(PutOutcome::AlreadyPresent);
            }
        }
        let stored = FragmentMeta { stored_at: now_secs(), ..meta };
        let mut batch = WriteBatch::default();
        batch.put_cf(index, encoded_key, stored.encode());
        batch.put_cf(frags, encoded_key, data);
        self.forget_reads_on_arrival(&mut batch, &key.chunk)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        match previous {
            Some(prev) => {
                self.bytes.fetch_sub(prev.fragment_len, Ordering::Relaxed);
                self.bytes.fetch_add(stored.fragment_len, Ordering::Relaxed);
            }
            None => {
                self.fragments.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(stored.fragment_len, Ordering::Relaxed);
            }
        }
        Ok(PutOutcome::Stored)
    }

    /// Stores many new fragments in one synced batch (bulk loads such as
    /// rebalance). Unlike [`put`](Self::put) it does not look for existing
    /// copies: keys must not be stored yet.
    pub fn put_new_batch(&self, items: &[(FragmentKey, FragmentMeta, &[u8])]) -> Result<(), StoreError> {
        let index = self.cf(CF_INDEX)?;
        let frags = self.cf(CF_FRAGMENTS)?;
        let mut batch = WriteBatch::default();
        let mut bytes = 0u64;
        for (key, meta, data) in items {
            if data.len() as u64 != meta.fragment_len || crc32c::crc32c(data) != meta.crc32c {
                return Err(StoreError::InvalidArgument(format!(
                    "{} #{}: length or checksum does not match the data",
                    key.chunk, key.index
                )));
            }
            if self.meta(key)?.is_some() {
                return Err(StoreError::InvalidArgument(format!("{} #{} is already stored", key.chunk, key.index)));
            }
            let stored = FragmentMeta { stored_at: now_secs(), ..*meta };
            self.touches.touch(&key.chunk);
            batch.put_cf(index, key.encode(), stored.encode());
            batch.put_cf(frags, key.encode(), data);
            bytes += meta.fragment_len;
        }
        self.check_admission(bytes)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        self.fragments.fetch_add(items.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Reads a fragment and verifies its checksum; corrupt data is an error,
    /// never returned.
    pub fn get(&self, key: &FragmentKey) -> Result<(FragmentMeta, Vec<u8>), StoreError> {
        let meta = self.meta(key)?.ok_or_else(|| StoreError::NotFound(format!("{} #{}", key.chunk, key.index)))?;
        let data = self.read_verified(key, &meta)?;
        Ok((meta, data))
    }

    /// [`get`](Self::get) for a client: a successful read is recorded in the
    /// read-time log.
    pub fn read(&self, key: &FragmentKey) -> Result<(FragmentMeta, Vec<u8>), StoreError> {
        let out = self.get(key)?;
        // Recorded under the chunk's lock and only while the fragment is still
        // here: a delete that ran since the read must not be followed by a
        // record of a chunk this node no longer holds.
        let _guard = self.stripe(&key.chunk)?;
        if matches!(self.meta(key), Ok(Some(_))) {
            self.reads.record(&key.chunk);
        }
        Ok(out)
    }

    pub fn meta(&self, key: &FragmentKey) -> Result<Option<FragmentMeta>, StoreError> {
        match self.db.get_pinned_cf(self.cf(CF_INDEX)?, key.encode())? {
            Some(v) => Ok(Some(FragmentMeta::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn read_verified(&self, key: &FragmentKey, meta: &FragmentMeta) -> Result<Vec<u8>, StoreError> {
        let data = self
            .db
            .get_pinned_cf(self.cf(CF_FRAGMENTS)?, key.encode())?
            .ok_or_else(|| StoreError::Corrupt(format!("{} #{}: fragment bytes are missing", key.chunk, key.index)))?;
        if data.len() as u64 != meta.fragment_len {
            return Err(StoreError::Corrupt(format!(
                "{} #{}: expected {} bytes, found {}",
                key.chunk,
                key.index,
                meta.fragment_len,
                data.len()
            )));
        }
        let crc = crc32c::crc32c(&data);
        if crc != meta.crc32c {
            return Err(StoreError::Corrupt(format!(
                "{} #{}: checksum {crc:08x} does not match stored {:08x}",
                key.chunk, key.index, meta.crc32c
            )));
        }
        Ok(data.to_vec())
    }

    /// Fragment indices of `chunk` held here (exact, from the index).
    pub fn held_indices(&self, chunk: &ChunkHash) -> Result<Vec<u8>, StoreError> {
        let cf = self.cf(CF_INDEX)?;
        let prefix = chunk.as_bytes();
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(cf, IteratorMode::From(prefix, rocksdb::Direction::Forward));
        for item in iter {
            let (k, _) = item?;
            if k.len() != KEY_LEN || &k[..32] != prefix {
                break;
            }
            out.push(k[32]);
        }
        Ok(out)
    }

    /// Fragment indices of `chunk` held here, touching the chunk first (an exact
    /// presence check is what a dedup decision relies on; see [`TouchLog`]).
    pub fn held_indices_touching(&self, chunk: &ChunkHash) -> Result<Vec<u8>, StoreError> {
        self.touches.touch(chunk);
        // Taken after the touch: a conditional delete that checked the age before
        // the touch has finished by the time this reads, so the answer is never
        // "held" for a fragment about to disappear.
        let _guard = self.stripe(chunk)?;
        let held = self.held_indices(chunk)?;
        if held.is_empty() {
            // Nothing to protect; dropping the entry keeps the log to held chunks. A
            // put touches under this same lock, so no newer touch is lost.
            self.touches.forget(chunk);
        }
        Ok(held)
    }

    /// A chunk stored (again) here has not been read here since: its read time
    /// goes, so storage tiering sees "read since it arrived" only for reads
    /// after this put. Without pausing flushes (puts must not serialize on it):
    /// a flush racing this may leave the old time on disk, seen only after a
    /// restart, where it can cause one needless promotion.
    fn forget_reads_on_arrival(&self, batch: &mut WriteBatch, chunk: &ChunkHash) -> Result<(), StoreError> {
        if self.reads.last_read_ms(chunk) > 0 {
            self.reads.forget(&self.db, batch, chunk)?;
        }
        Ok(())
    }

    /// Deletes fragments; returns (fragments deleted, bytes freed).
    pub fn delete(&self, keys: &[FragmentKey]) -> Result<(u64, u64), StoreError> {
        let outcome = self.delete_where(keys, |_, _| true)?;
        Ok((outcome.deleted, outcome.bytes_freed))
    }

    /// Deletes the fragments whose chunk was not touched within `window_ms`
    /// (garbage collection); the check and the deletion happen under the chunk's lock.
    pub fn delete_untouched(&self, keys: &[FragmentKey], window_ms: u64) -> Result<DeleteOutcome, StoreError> {
        self.delete_where(keys, |key, _| self.touches.untouched_for(&key.chunk, window_ms))
    }

    /// Deletes the fragments not stored within `window_ms` (a tiering move's
    /// removal of the copy it moved away from: a fragment written since, by a
    /// mover bringing the chunk back, stays). Stored times have second
    /// precision, so a fragment stored up to a second before the window may be
    /// kept too; callers' margins cover that.
    pub fn delete_unstored(&self, keys: &[FragmentKey], window_ms: u64) -> Result<DeleteOutcome, StoreError> {
        let now = crate::touch::now_ms();
        self.delete_where(keys, |_, meta| now.saturating_sub(meta.stored_at.saturating_mul(1000)) >= window_ms)
    }

    /// Deletes in one synced batch the `keys` whose chunk passes `allowed`, holding
    /// the locks of every chunk involved (taken in stripe order, so two deletes
    /// cannot deadlock) from the check to the write.
    fn delete_where(
        &self,
        keys: &[FragmentKey],
        allowed: impl Fn(&FragmentKey, &FragmentMeta) -> bool,
    ) -> Result<DeleteOutcome, StoreError> {
        let index = self.cf(CF_INDEX)?;
        let frags = self.cf(CF_FRAGMENTS)?;
        let mut stripes: Vec<usize> = keys.iter().map(|k| self.stripe_of(&k.chunk)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _guards = stripes
            .iter()
            .map(|&i| self.stripes[i].lock().map_err(|_| StoreError::Storage("lock poisoned".into())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outcome = DeleteOutcome::default();
        let mut batch = WriteBatch::default();
        let mut doomed = std::collections::HashSet::new();
        for key in keys {
            if doomed.contains(key) {
                continue;
            }
            let Some(meta) = self.meta(key)? else { continue };
            if !allowed(key, &meta) {
                outcome.kept_recent += 1;
                continue;
            }
            batch.delete_cf(index, key.encode());
            batch.delete_cf(frags, key.encode());
            doomed.insert(*key);
            outcome.deleted += 1;
            outcome.bytes_freed += meta.fragment_len;
        }
        if doomed.is_empty() {
            return Ok(outcome);
        }
        // Chunks left without any fragment here (exact: puts wait on the locks
        // held) lose their read record in the same batch.
        let chunks: std::collections::HashSet<ChunkHash> = doomed.iter().map(|k| k.chunk).collect();
        let mut emptied = Vec::new();
        for chunk in chunks {
            if self.held_indices(&chunk)?.into_iter().all(|i| doomed.contains(&FragmentKey::new(chunk, i))) {
                emptied.push(chunk);
            }
        }
        let _paused = self.reads.pause_flushes();
        for chunk in &emptied {
            self.reads.forget(&self.db, &mut batch, chunk)?;
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        self.fragments.fetch_sub(outcome.deleted, Ordering::Relaxed);
        self.bytes.fetch_sub(outcome.bytes_freed, Ordering::Relaxed);
        for chunk in &emptied {
            self.touches.forget(chunk);
        }
        Ok(outcome)
    }

    /// Up to `limit` fragments after `after` in key order (what a GC sweep walks),
    /// and whether more follow.
    pub fn list(&self, after: Option<&FragmentKey>, limit: usize) -> Result<(Vec<ListedFragment>, bool), StoreError> {
        let cf = self.cf(CF_INDEX)?;
        let start = after.map(|k| k.encode());
        let mode = match &start {
            Some(k) => IteratorMode::From(k, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            let (k, v) = item?;
            let key = FragmentKey::decode(&k)?;
            if Some(&key) == after {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            let meta = FragmentMeta::decode(&v)?;
            out.push(ListedFragment {
                key,
                fragment_len: meta.fragment_len,
                last_touch_ms: self.touches.last_touch_ms(&key.chunk),
                stored_ms: meta.stored_at.saturating_mul(1000),
                last_read_ms: self.reads.last_read_ms(&key.chunk),
            });
        }
        Ok((out, false))
    }

    /// Verifies every fragment's checksum. `progress` is called after each one
    /// with (examined, bytes examined).
    pub fn scrub(&self, mut progress: impl FnMut(u64, u64)) -> Result<ScrubReport, StoreError> {
        let mut report = ScrubReport::default();
        let cf = self.cf(CF_INDEX)?;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    // The index itself is damaged: report it and stop, there is
                    // no reliable position to continue from.
                    report.corrupt.push((None, e.to_string()));
                    break;
                }
            };
            report.examined += 1;
            let key = match FragmentKey::decode(&k) {
                Ok(key) => key,
                Err(e) => {
                    report.corrupt.push((None, e.to_string()));
                    continue;
                }
            };
            match FragmentMeta::decode(&v).and_then(|meta| self.read_verified(&key, &meta).map(|_| meta.fragment_len)) {
                Ok(len) => report.bytes_examined += len,
                Err(e) => report.corrupt.push((Some(key), e.to_string())),
            }
            progress(report.examined, report.bytes_examined);
        }
        Ok(report)
    }

    pub fn fragment_count(&self) -> u64 {
        self.fragments.load(Ordering::Relaxed)
    }

    pub fn fragment_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn disk_space(&self) -> Result<DiskSpace, StoreError> {
        let stats = fs4::statvfs(&self.data_dir)
            .map_err(|e| StoreError::Storage(format!("statvfs {}: {e}", self.data_dir.display())))?;
        Ok(DiskSpace { free: stats.available_space(), total: stats.total_space() })
    }

    /// Writes the read times recorded since the last call (see [`ReadLog`]);
    /// returns the number of records written.
    pub fn flush_reads(&self) -> Result<u64, StoreError> {
        self.reads.flush(&self.db)
    }

    /// The read-time log (pending records, flush counters).
    pub fn read_log(&self) -> &ReadLog {
        &self.reads
    }

    /// The chunk's read time as persisted, ignoring unflushed reads.
    pub fn persisted_read_ms(&self, chunk: &ChunkHash) -> Result<Option<u64>, StoreError> {
        ReadLog::persisted_ms(&self.db, chunk)
    }

    /// Number of persisted read records (scans them).
    pub fn persisted_read_records(&self) -> Result<u64, StoreError> {
        ReadLog::persisted_count(&self.db)
    }

    /// Writes pending read times, then flushes memtables so a clean shutdown
    /// leaves no WAL to replay.
    pub fn flush(&self) -> Result<(), StoreError> {
        if let Err(e) = self.flush_reads() {
            // Only read times are at stake; the fragments' memtables still get flushed.
            tracing::warn!(error = %e, "writing read times failed");
        }
        self.db.flush_cf(self.cf(CF_INDEX)?)?;
        self.db.flush_cf(self.cf(CF_FRAGMENTS)?)?;
        self.db.flush_cf(self.cf(CF_READS)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_for(data: &[u8]) -> FragmentMeta {
        FragmentMeta {
            data_shards: 4,
            parity_shards: 2,
            chunk_len: data.len() as u64 * 4,
            fragment_len: data.len() as u64,
            crc32c: crc32c::crc32c(data),
            stored_at: 0,
        }
    }

    fn key(i: u8, index: u8) -> FragmentKey {
        FragmentKey::new(ChunkHash([i; 32]), index)
    }

    #[test]
    fn counters_and_index_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FragmentStore::open(dir.path(), 1 << 20, 0, |_| {}).unwrap();
            let a = vec![1u8; 5000];
            let b = vec![2u8; 10];
            store.put_new_batch(&[(key(1, 0), meta_for(&a), &a), (key(1, 1), meta_for(&b), &b)]).unwrap();
            assert_eq!(store.put(&key(2, 3), meta_for(&b), &b).unwrap(), PutOutcome::Stored);
            assert_eq!(store.put(&key(2, 3), meta_for(&b), &b).unwrap(), PutOutcome::AlreadyPresent);
            // A batch may not silently overwrite.
            assert!(store.put_new_batch(&[(key(1, 0), meta_for(&a), &a)]).is_err());
            assert_eq!(store.held_indices(&ChunkHash([1; 32])).unwrap(), vec![0, 1]);
            assert!(store.held_indices(&ChunkHash([3; 32])).unwrap().is_empty());
        }
        let mut seen = Vec::new();
        let store = FragmentStore::open(dir.path(), 1 << 20, 0, |k| seen.push(*k)).unwrap();
        assert_eq!(seen, vec![key(1, 0), key(1, 1), key(2, 3)]);
        assert_eq!(store.fragment_count(), 3);
        assert_eq!(store.fragment_bytes(), 5020);
        assert_eq!(store.delete(&[key(1, 0), key(9, 9)]).unwrap(), (1, 5000));
        assert_eq!(store.fragment_count(), 2);
        assert!(matches!(store.get(&key(1, 0)), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn checksum_and_length_mismatches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path(), 100, 0, |_| {}).unwrap();
        let data = vec![5u8; 50];
        let mut bad = meta_for(&data);
        bad.crc32c ^= 1;
        assert!(matches!(store.put(&key(1, 0), bad, &data), Err(StoreError::InvalidArgument(_))));
        let mut short = meta_for(&data);
        short.fragment_len = 49;
        assert!(matches!(store.put(&key(1, 0), short, &data), Err(StoreError::InvalidArgument(_))));
        let big = vec![0u8; 101];
        assert!(matches!(store.put(&key(1, 0), meta_for(&big), &big), Err(StoreError::TooLarge { .. })));
        assert_eq!(store.fragment_count(), 0);
        assert!(matches!(store.get(&key(1, 0)), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn garbage_collection_deletes_only_untouched_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path(), 1 << 20, 0, |_| {}).unwrap();
        let data = vec![7u8; 100];
        for i in 1..=3 {
            store.put(&key(i, 0), meta_for(&data), &data).unwrap();
            store.put(&key(i, 1), meta_for(&data), &data).unwrap();
        }
        // Just stored: touched now, so a one-minute window keeps everything.
        let all: Vec<_> = (1..=3).flat_map(|i| [key(i, 0), key(i, 1)]).collect();
        let kept = store.delete_untouched(&all, 60_000).unwrap();
        assert_eq!(kept, DeleteOutcome { deleted: 0, bytes_freed: 0, kept_recent: 6 });
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Chunk 2 is found by an exact check (a dedup hit): touched again.
        assert_eq!(store.held_indices_touching(&ChunkHash([2; 32])).unwrap(), vec![0, 1]);
        let outcome = store.delete_untouched(&all, 200).unwrap();
        assert_eq!(outcome, DeleteOutcome { deleted: 4, bytes_freed: 400, kept_recent: 2 });
        assert_eq!(store.held_indices(&ChunkHash([2; 32])).unwrap(), vec![0, 1]);
        assert!(store.held_indices(&ChunkHash([1; 32])).unwrap().is_empty());
        assert_eq!(store.fragment_count(), 2);
        assert_eq!(store.get(&key(2, 1)).unwrap().1, data);
    }

    #[test]
    fn listing_pages_through_every_fragment_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FragmentStore::open(dir.path(), 1 << 20, 0, |_| {}).unwrap();
        let data = vec![1u8; 10];
        let mut expected = Vec::new();
        for i in [9u8, 3, 200, 4] {
            for index in [2u8, 0] {
                store.put(&key(i, index), meta_for(&data), &data).unwrap();
                expected.push(key(i, index));
            }
        }
        expected.sort();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = store.list(after.as_ref(), 3).unwrap();
            assert!(page.len() <= 3);
            seen.extend(page.iter().map(|f| f.key));
            after = page.last().map(|f| f.key);
            if !more {
                break;
            }
        }
        assert_eq!(seen, expected);
        assert!(store.list(None, 100).unwrap().0.iter().all(|f| f.fragment_len == 10));
    }

    #[test]
    fn a_chunk_found_by_an_exact_check_survives_a_concurrent_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(FragmentStore::open(dir.path(), 1 << 20, 0, |_| {}).unwrap());
        let data = vec![3u8; 64];
        let chunks: Vec<ChunkHash> = (0..400u32)
            .map(|i| {
                let mut h = [0u8; 32];
                h[..4].copy_from_slice(&i.to_le_bytes());
                ChunkHash(h)
            })
            .collect();
        for c in &chunks {
            store.put(&FragmentKey::new(*c, 0), meta_for(&data), &data).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(60));
        let checker = {
            let (store, chunks) = (store.clone(), chunks.clone());
            std::thread::spawn(move || {
                chunks
                    .iter()
                    .filter(|c| !store.held_indices_touching(c).unwrap().is_empty())
                    .copied()
                    .collect::<Vec<_>>()
            })
        };
        let keys: Vec<FragmentKey> = chunks.iter().map(|c| FragmentKey::new(*c, 0)).collect();
        let mut deleted = 0;
        for batch in keys.chunks(7) {
            deleted += store.delete_untouched(batch, 30).unwrap().deleted;
        }
        let seen_held = checker.join().unwrap();
        // Whatever the interleaving: an answer "held" means the fragment stays.
        for c in &seen_held {
            assert_eq!(store.held_indices(c).unwrap(), vec![0], "chunk reported held was deleted");
        }
        assert_eq!(deleted + seen_held.len() as u64, 400, "every chunk is either deleted or was seen held");
    }
}
