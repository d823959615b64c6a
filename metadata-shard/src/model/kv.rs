//! The key-value abstraction the data model runs on, plus two implementations:
//! [`MemKv`] (tests, tools) and [`Overlay`] (buffered writes with read-your-writes, so a
//! command's effects become one atomic batch — or nothing, when the command fails).

use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The storage engine failed (I/O, corruption reported by the engine, ...).
    #[error("storage engine: {0}")]
    Backend(String),
}

/// Key-value pairs in key order, as returned by [`KvRead::scan`].
pub type KvPairs = Vec<(Vec<u8>, Vec<u8>)>;

pub trait KvRead {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Entries with start <= key < end in key order, at most `limit`
    /// (none when start >= end).
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError>;
}

pub trait KvWrite: KvRead {
    fn put(&mut self, key: &[u8], value: &[u8]);
    fn delete(&mut self, key: &[u8]);
}

impl<T: KvRead + ?Sized> KvRead for &T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        (**self).get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        (**self).scan(start, end, limit)
    }
}

fn range_bounds<'k>(start: &'k [u8], end: &'k [u8]) -> (Bound<&'k [u8]>, Bound<&'k [u8]>) {
    (Bound::Included(start), Bound::Excluded(end))
}

/// An in-memory store. Its contents are exposed so tests can compare two replicas byte
/// for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemKv {
    pub map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvRead for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .map
            .range::<[u8], _>(range_bounds(start, end))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl KvWrite for MemKv {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.map.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.map.remove(key);
    }
}

/// Buffered writes over a read-only base. Reads see the buffered writes (deletions hide
/// base entries); nothing reaches the base until the caller takes [`Overlay::into_writes`].
pub struct Overlay<'a, R: KvRead + ?Sized> {
    base: &'a R,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, R: KvRead + ?Sized> Overlay<'a, R> {
    pub fn new(base: &'a R) -> Self {
        Self { base, writes: BTreeMap::new() }
    }

    /// The buffered writes in key order (`None` = delete), ready for one atomic batch.
    pub fn into_writes(self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        self.writes.into_iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The keys written so far, in key order.
    pub fn written_keys(&self) -> Vec<Vec<u8>> {
        self.writes.keys().cloned().collect()
    }
}

impl<R: KvRead + ?Sized> KvRead for Overlay<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match self.writes.get(key) {
            Some(buffered) => Ok(buffered.clone()),
            None => self.base.get(key),
        }
    }

    /// Merges base and buffer in key order. The base is read in batches: a batch that
    /// comes back full bounds the part of the buffer merged with it, so buffered
    /// deletions can never make the result miss base keys beyond the batch.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<KvPairs, KvError> {
        let mut out = Vec::new();
        if limit == 0 || start >= end {
            return Ok(out);
        }
        let batch_size = limit.clamp(16, 1024);
        let mut cursor = start.to_vec();
        loop {
            let base_batch = self.base.scan(&cursor, end, batch_size)?;
            let base_full = base_batch.len() == batch_size;
            // Upper bound (exclusive) of the key span this batch covers.
            let span_end = match (base_full, base_batch.last()) {
                (true, Some((last, _))) => {
                    let mut after_last = last.clone();
                    after_last.push(0);
                    after_last
                }
                _ => end.to_vec(),
            };
            let mut buffered = self.writes.range::<[u8], _>(range_bounds(&cursor, &span_end)).peekable();
            let mut base_iter = base_batch.into_iter().peekable();
            loop {
                if out.len() == limit {
                    return Ok(out);
                }
                let take_buffered = match (base_iter.peek(), buffered.peek()) {
                    (None, None) => break,
                    (Some(_), None) => false,
                    (None, Some(_)) => true,
                    (Some((bk, _)), Some((wk, _))) => wk.as_slice() <= bk.as_slice(),
                };
                if take_buffered {
                    if let Some((wk, wv)) = buffered.next() {
                        // A buffered write shadows the base entry with the same key.
                        if base_iter.peek().is_some_and(|(bk, _)| bk == wk) {
                            base_iter.next();
                        }
                        if let Some(v) = wv {
                            out.push((wk.clone(), v.clone()));
                        }
                    }
                } else if let Some(entry) = base_iter.next() {
                    out.push(entry);
                }
            }
            if !base_full {
                return Ok(out);
            }
            cursor = span_end;
        }
    }
}

impl<R: KvRead + ?Sized> KvWrite for Overlay<'_, R> {
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }
    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
}
