//! Tests of the data model through its public surface (`apply`, `query` and the typed
//! query functions), on `MemKv`.

mod changelog_tests;
mod chunk_tier_tests;
mod kv_tests;
mod namespace_tests;
mod random_tests;
mod s3_tests;
mod share_tests;
mod shared_feed_tests;
mod user_move_tests;
mod version_tests;

use super::*;

pub(super) const ALICE: &str = "alice";
pub(super) const BOB: &str = "bob";
/// 2024-03-01T00:00:00Z
pub(super) const T0: i64 = 1_709_251_200_000;

pub(super) fn cfg() -> ShardConfig {
    ShardConfig::default()
}

pub(super) fn run(kv: &mut MemKv, cmd: ShardCommand) -> ShardResponse {
    apply(kv, &cmd, &cfg()).unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"))
}

pub(super) fn try_run(kv: &mut MemKv, cmd: ShardCommand) -> Result<ShardResponse, ModelError> {
    apply(kv, &cmd, &cfg())
}

/// A distinct fake SHA-256 per number.
pub(super) fn hash(n: u64) -> Hash32 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    h[31] = 0xAB;
    h
}

pub(super) fn chunk(n: u64) -> ChunkRef {
    ChunkRef { hash: hash(n), size: 100 + n }
}

pub(super) fn commit_cmd(
    path: &str,
    chunks: &[ChunkRef],
    content: u64,
    base: Option<u64>,
    device: &str,
) -> CommitVersion {
    CommitVersion {
        user_id: ALICE.into(),
        path: path.into(),
        size: chunks.iter().map(|c| c.size).sum(),
        content_sha256: hash(1_000_000 + content),
        chunks: chunks.to_vec(),
        device_id: device.into(),
        created_by: ALICE.into(),
        base_version: base,
        policy: ConflictPolicy::ConflictCopy,
        now_ms: T0,
        meta: Default::default(),
    }
}

pub(super) fn commit(kv: &mut MemKv, path: &str, chunks: &[ChunkRef], content: u64) -> CommitOutcome {
    match run(kv, ShardCommand::CommitVersion(commit_cmd(path, chunks, content, None, "dev1"))) {
        ShardResponse::Committed(outcome) => outcome,
        other => panic!("unexpected {other:?}"),
    }
}

pub(super) fn mkdir(kv: &mut MemKv, path: &str) {
    run(
        kv,
        ShardCommand::CreateFolder { user_id: ALICE.into(), path: path.into(), device_id: "dev1".into(), now_ms: T0 },
    );
}

pub(super) fn delete(kv: &mut MemKv, path: &str) -> DeleteOutcome {
    match run(
        kv,
        ShardCommand::Delete { user_id: ALICE.into(), path: path.into(), device_id: "dev1".into(), now_ms: T0 },
    ) {
        ShardResponse::Deleted(outcome) => outcome,
        other => panic!("unexpected {other:?}"),
    }
}

pub(super) fn stat(kv: &MemKv, path: &str) -> Result<Entry, ModelError> {
    namespace::stat(kv, ALICE, path, false)
}

pub(super) fn refcount(kv: &MemKv, n: u64) -> u64 {
    chunks::refcount(kv, &hash(n)).unwrap()
}

/// Every event of `user` after `after`, read in small pages.
pub(super) fn all_changes(kv: &MemKv, user: &str, after: u64) -> Vec<ChangeEvent> {
    let mut events = Vec::new();
    let mut cursor = after;
    loop {
        let page = changelog::read_changes(kv, user, cursor, 7, None).unwrap();
        events.extend(page.events);
        cursor = page.next_cursor;
        if !page.has_more {
            return events;
        }
    }
}

/// Hashes whose drop to zero the zero-ref log recorded, in log order.
pub(super) fn zero_log(kv: &MemKv) -> Vec<Hash32> {
    chunks::zero_refs_after(kv, 0, usize::MAX - 1).unwrap().items.into_iter().map(|z| z.hash).collect()
}

/// splitmix64: a tiny seeded generator, so random tests are reproducible.
pub(super) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
