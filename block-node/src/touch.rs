//! When each chunk held here was last *touched*: stored, or found present by an
//! exact `BatchHas` (a dedup hit, a repair check). Garbage collection deletes a
//! fragment only if its chunk was not touched for a given time, checked under the
//! same lock as the deletion, so a chunk an upload has just relied on survives.
//!
//! Kept in memory only: after a restart every held chunk counts as touched when the
//! node opened its store, which can only delay a deletion, never allow an early one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_proto::ChunkHash;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub struct TouchLog {
    opened_at_ms: u64,
    last: Mutex<HashMap<ChunkHash, u64>>,
}

impl TouchLog {
    pub fn new() -> Self {
        Self { opened_at_ms: now_ms(), last: Mutex::new(HashMap::new()) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<ChunkHash, u64>> {
        // The map holds plain numbers: a panic elsewhere cannot leave it half-updated.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn touch(&self, chunk: &ChunkHash) {
        self.map().insert(*chunk, now_ms());
    }

    /// Milliseconds since the epoch of the last touch (at least the store's opening).
    pub fn last_touch_ms(&self, chunk: &ChunkHash) -> u64 {
        self.map().get(chunk).copied().unwrap_or(self.opened_at_ms).max(self.opened_at_ms)
    }

    /// True when `chunk` was not touched within the last `window_ms`.
    pub fn untouched_for(&self, chunk: &ChunkHash, window_ms: u64) -> bool {
        now_ms().saturating_sub(self.last_touch_ms(chunk)) >= window_ms
    }

    /// Forgets a chunk whose last fragment here was deleted.
    pub fn forget(&self, chunk: &ChunkHash) {
        self.map().remove(chunk);
    }
}

impl Default for TouchLog {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_resets_the_age() {
        let log = TouchLog::new();
        let chunk = ChunkHash([1; 32]);
        // Everything counts as touched when the store opened.
        assert!(!log.untouched_for(&chunk, 60_000));
        assert!(log.untouched_for(&chunk, 0));
        log.touch(&chunk);
        assert!(log.last_touch_ms(&chunk) >= log.opened_at_ms);
        assert!(!log.untouched_for(&chunk, 60_000));
    }
}
