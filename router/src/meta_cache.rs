//! `MetaCache`: the router's cache of metadata reads (stats, version chunk
//! lists, folder pages, bucket settings), so repeated lookups do not each go
//! through Raft.
//!
//! Entries are kept per user and are valid as of a change-log cursor. A
//! watcher task long-polls the user's change log from that cursor and drops
//! all of the user's entries on any change, whoever made it. Writes through
//! this router drop them at once. A read that raced with an invalidation is
//! not cached (a per-user generation number detects it), so the cache never
//! serves an entry older than this router's own last write, and entries older
//! than another router's write live only until its change reaches the
//! watcher (one long-poll round trip).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tessera_meta::model::{QueryResponse, ShardQuery};

use crate::cluster_view::ClusterView;
use crate::error::RouterError;

/// Users whose entries are kept; the least recently used beyond it are dropped.
const MAX_USERS: usize = 10_000;
/// Entries per user.
const MAX_ENTRIES: usize = 4_096;
/// A user's cache (and watcher) ends after this long without a lookup.
const IDLE: Duration = Duration::from_secs(300);
const POLL_WAIT: Duration = Duration::from_secs(25);

#[derive(Default)]
struct UserCache {
    generation: u64,
    entries: HashMap<String, QueryResponse>,
    last_used: Option<Instant>,
}

#[derive(Default)]
pub struct MetaCache {
    users: Mutex<HashMap<String, UserCache>>,
    pub hits: Counter,
    pub misses: Counter,
}

/// The cache key of a query, or `None` for queries that are not cached.
fn key_of(q: &ShardQuery) -> Option<String> {
    match q {
        ShardQuery::Stat { path, include_deleted, .. } => Some(format!("stat\0{path}\0{include_deleted}")),
        ShardQuery::GetVersion { file, version, .. } => Some(format!("version\0{file:?}\0{version}")),
        ShardQuery::ListFolder { path, start_after, limit, include_deleted, .. } => {
            Some(format!("list\0{path}\0{start_after:?}\0{limit}\0{include_deleted}"))
        }
        // Setting changes are logged, so the watcher drops these like any entry.
        ShardQuery::BucketConfig { path, .. } => Some(format!("bucket\0{path}")),
        _ => None,
    }
}

impl MetaCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserCache>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every entry of `user` (after a write through this router).
    pub fn invalidate(&self, user: &str) {
        if let Some(u) = self.lock().get_mut(user) {
            u.generation += 1;
            u.entries.clear();
        }
    }

    /// Answers `q` for `user` from the cache, or reads it (linearizably) and
    /// caches the answer.
    pub async fn query(
        &self,
        view: &Arc<ClusterView>,
        user: &str,
        q: ShardQuery,
    ) -> Result<QueryResponse, RouterError> {
        let Some(key) = key_of(&q) else { return view.shard_query(user, q, Duration::ZERO).await };
        let generation = {
            let mut users = self.lock();
            if let Some(u) = users.get_mut(user) {
                u.last_used = Some(Instant::now());
                if let Some(hit) = u.entries.get(&key) {
                    self.hits.inc();
                    return Ok(hit.clone());
                }
                Some(u.generation)
            } else {
                None
            }
        };
        self.misses.inc();
        let generation = match generation {
            Some(g) => g,
            None => self.watch(view, user).await?,
        };
        let answer = view.shard_query(user, q, Duration::ZERO).await?;
        let mut users = self.lock();
        if let Some(u) = users.get_mut(user) {
            if u.generation == generation && u.entries.len() < MAX_ENTRIES {
                u.entries.insert(key, answer.clone());
            }
        }
        Ok(answer)
    }

    /// Starts caching `user`: reads the change-log head first (so no change
    /// after it can be missed), then a watcher long-polls from there.
    async fn watch(&self, view: &Arc<ClusterView>, user: &str) -> Result<u64, RouterError> {
        let head = match view.shard_query(user, ShardQuery::ChangeHead { user_id: user.into() }, Duration::ZERO).await?
        {
            QueryResponse::Cursor(c) => c,
            other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        };
        {
            let mut users = self.lock();
            if let Some(u) = users.get(user) {
                return Ok(u.generation);
            }
            if users.len() >= MAX_USERS {
                if let Some(oldest) = users.iter().min_by_key(|(_, u)| u.last_used).map(|(k, _)| k.clone()) {
                    users.remove(&oldest);
                }
            }
            users.insert(user.to_owned(), UserCache { last_used: Some(Instant::now()), ..UserCache::default() });
        }
        tokio::spawn(watcher(Arc::downgrade(view), user.to_owned(), head));
        Ok(0)
    }
}

async fn watcher(view: Weak<ClusterView>, user: String, mut cursor: u64) {
    loop {
        let Some(v) = view.upgrade() else { return };
        let idle = v.cache.lock().get(&user).and_then(|u| u.last_used).is_none_or(|t| t.elapsed() > IDLE);
        if idle {
            v.cache.lock().remove(&user);
            return;
        }
        let q =
            ShardQuery::ReadChanges { user_id: user.clone(), after_cursor: cursor, limit: 1000, exclude_device: None };
        match v.shard_query(&user, q, POLL_WAIT).await {
            Ok(QueryResponse::Changes(p)) => {
                if p.next_cursor > cursor {
                    cursor = p.next_cursor;
                    v.cache.invalidate(&user);
                }
            }
            _ => {
                // Cannot follow the log: stop caching this user.
                v.cache.lock().remove(&user);
                return;
            }
        }
    }
}
