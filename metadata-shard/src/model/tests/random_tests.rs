//! Seeded random command sequences: change-log cursors, replica determinism and the
//! global invariants (reference counts equal what versions and sessions hold; every
//! entry has its parent; live entries have live parents).

use std::collections::BTreeMap;

use super::*;

const USERS: [&str; 2] = [ALICE, BOB];
const DEVICES: [&str; 3] = ["laptop", "phone", "web"];
const FOLDERS: [&str; 5] = ["/a", "/a/b", "/a/b/c", "/d", "/d/e"];
const NAMES: [&str; 4] = ["x.txt", "y", "z.md", "c"];

fn random_path(rng: &mut Rng) -> String {
    if rng.below(4) == 0 {
        return rng.pick(&FOLDERS).to_string();
    }
    paths::join(rng.pick(&FOLDERS), rng.pick(&NAMES))
}

fn random_chunks(rng: &mut Rng) -> Vec<ChunkRef> {
    (0..rng.below(4)).map(|_| chunk(rng.below(12))).collect()
}

/// One random command; times advance with `step` so expiries matter. Marks chunks of
/// the session that exists in `kv`, so uploads get to commit.
fn random_command(kv: &MemKv, rng: &mut Rng, step: i64) -> ShardCommand {
    let user_index = rng.below(USERS.len() as u64);
    let user = USERS[user_index as usize].to_string();
    let device = rng.pick(&DEVICES).to_string();
    let now_ms = T0 + step * 1000;
    // Session ids per user, so most session commands name one of the user's own.
    let mut session_id = [(user_index * 3 + rng.below(3)) as u8; 16];
    let open_sessions: Vec<SessionId> =
        decode_all::<UploadSession>(kv, b'S').into_iter().filter(|s| s.user_id == user).map(|s| s.session_id).collect();
    if !open_sessions.is_empty() && rng.below(4) > 0 {
        session_id = rng.pick(&open_sessions);
    }
    match rng.below(18) {
        0..=3 => {
            let chunks = random_chunks(rng);
            let policy =
                rng.pick(&[ConflictPolicy::ConflictCopy, ConflictPolicy::LastWriterWins, ConflictPolicy::Reject]);
            ShardCommand::CommitVersion(CommitVersion {
                user_id: user.clone(),
                path: random_path(rng),
                size: chunks.iter().map(|c| c.size).sum(),
                content_sha256: hash(rng.below(6)),
                chunks,
                device_id: device,
                created_by: user,
                base_version: [None, Some(1), Some(2), Some(3)][rng.below(4) as usize],
                policy,
                now_ms,
                meta: Default::default(),
            })
        }
        4 => ShardCommand::CreateFolder { user_id: user, path: random_path(rng), device_id: device, now_ms },
        5 => ShardCommand::Move {
            user_id: user,
            from: random_path(rng),
            to: random_path(rng),
            device_id: device,
            now_ms,
        },
        6 => ShardCommand::Delete { user_id: user, path: random_path(rng), device_id: device, now_ms },
        7 => ShardCommand::RestoreVersion {
            user_id: user.clone(),
            path: random_path(rng),
            version: 1 + rng.below(3),
            created_by: user,
            device_id: device,
            now_ms,
        },
        8 => ShardCommand::PurgeDeleted { user_id: user, path: random_path(rng) },
        9 => ShardCommand::OpenSession(OpenSession {
            session_id,
            user_id: user,
            path: random_path(rng),
            chunks: random_chunks(rng),
            base_version: None,
            device_id: device,
            expires_at_ms: now_ms + 1000 * (1 + rng.below(200) as i64),
            now_ms,
        }),
        10 | 17 => {
            let hashes = match sessions::get_session(kv, &session_id, &user) {
                Ok(session) => {
                    let all = rng.below(4) > 0;
                    session.chunks.iter().map(|c| c.hash).filter(|_| all || rng.below(2) == 0).collect()
                }
                Err(_) => vec![hash(rng.below(12))],
            };
            ShardCommand::MarkChunksStored { session_id, user_id: user, hashes, now_ms }
        }
        11 | 16 => ShardCommand::CommitSession {
            session_id,
            user_id: user.clone(),
            content_sha256: hash(rng.below(6)),
            created_by: user,
            policy: ConflictPolicy::ConflictCopy,
            now_ms,
        },
        12 => match rng.below(2) {
            0 => ShardCommand::AbortSession { session_id, user_id: user },
            _ => ShardCommand::ExpireSessions { now_ms },
        },
        13 => ShardCommand::Share {
            owner: user,
            path: random_path(rng),
            grantee: "carol".into(),
            permission: Permission::Edit,
            expires_at_ms: None,
            device_id: device,
            now_ms,
        },
        14 => ShardCommand::Unshare {
            owner: user,
            path: random_path(rng),
            grantee: "carol".into(),
            device_id: device,
            now_ms,
        },
        _ => match rng.below(2) {
            0 => ShardCommand::CreateLink {
                token: [rng.below(4) as u8; 32],
                owner: user,
                path: random_path(rng),
                permission: LinkPermission::View,
                password_hash: None,
                expires_at_ms: None,
                device_id: device,
                now_ms,
            },
            _ => ShardCommand::RevokeLink { owner: user, token: [rng.below(4) as u8; 32], device_id: device, now_ms },
        },
    }
}

fn random_cfg() -> ShardConfig {
    ShardConfig { max_versions: 3, ..ShardConfig::default() }
}

/// Applies `count` random commands; returns how many succeeded.
fn run_random(kv: &mut MemKv, seed: u64, count: usize) -> usize {
    let mut rng = Rng(seed);
    let mut ok = 0;
    for step in 0..count {
        let cmd = random_command(kv, &mut rng, step as i64);
        if apply(kv, &cmd, &random_cfg()).is_ok() {
            ok += 1;
        }
    }
    ok
}

fn decode_all<T: serde::de::DeserializeOwned>(kv: &MemKv, tag: u8) -> Vec<T> {
    kv.scan(&[tag], &[tag + 1], usize::MAX).unwrap().iter().map(|(_, v)| codec::decode(v, "test").unwrap()).collect()
}

fn check_invariants(kv: &MemKv) {
    // Reference counts equal the chunk occurrences held by versions and sessions.
    let mut expected: BTreeMap<Hash32, u64> = BTreeMap::new();
    for version in decode_all::<VersionRecord>(kv, b'V') {
        for c in version.chunks {
            *expected.entry(c.hash).or_default() += 1;
        }
    }
    for session in decode_all::<UploadSession>(kv, b'S') {
        for c in session.chunks {
            *expected.entry(c.hash).or_default() += 1;
        }
    }
    let stored: BTreeMap<Hash32, u64> = kv
        .scan(b"C", b"D", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k[1..].try_into().unwrap(), u64::from_be_bytes(v.try_into().unwrap())))
        .collect();
    assert_eq!(stored, expected);
    // The namespace tree is connected and deleted folders hold only deleted entries.
    let entries = decode_all::<Entry>(kv, b'E');
    assert!(!entries.is_empty());
    for user in USERS {
        for entry in namespace_entries(kv, user) {
            let parent = paths::parent(&entry.path).unwrap();
            let parent_entry =
                namespace::load(kv, user, parent).unwrap().unwrap_or_else(|| panic!("{} has no parent", entry.path));
            assert!(parent_entry.is_folder());
            assert!(entry.deleted || !parent_entry.deleted, "{} is live below a deleted folder", entry.path);
            if let Some(file) = entry.file() {
                let kept = versions::list_versions(kv, user, &FileRef::Path(entry.path.clone()), None, 100).unwrap();
                let numbers: Vec<u64> = kept.versions.iter().map(|v| v.version).collect();
                let expected: Vec<u64> = (file.oldest_version..=file.version).rev().collect();
                assert_eq!(numbers, expected);
                assert!(numbers.len() <= 3);
            }
        }
    }
}

fn namespace_entries(kv: &MemKv, user: &str) -> Vec<Entry> {
    let (start, end) = keys::entry_prefix_range(user, "/");
    kv.scan(&start, &end, usize::MAX).unwrap().iter().map(|(_, v)| namespace::decode_entry(v).unwrap()).collect()
}

#[test]
fn change_log_cursors_have_no_gaps_or_duplicates() {
    let mut kv = MemKv::new();
    let mut rng = Rng(42);
    let mut heads = BTreeMap::new();
    let mut succeeded = 0;
    let mut kinds_applied = std::collections::BTreeSet::new();
    for step in 0..1000 {
        let cmd = random_command(&kv, &mut rng, step);
        let variant = format!("{cmd:?}").split([' ', '(', '{']).next().unwrap_or_default().to_string();
        let before: Vec<u64> = USERS.iter().map(|u| changelog::head_cursor(&kv, u).unwrap()).collect();
        let result = apply(&mut kv, &cmd, &random_cfg());
        let after: Vec<u64> = USERS.iter().map(|u| changelog::head_cursor(&kv, u).unwrap()).collect();
        if result.is_err() {
            assert_eq!(before, after, "a failed command appended events");
        } else {
            succeeded += 1;
            kinds_applied.insert(variant);
        }
        for (user, head) in USERS.iter().zip(after) {
            heads.insert(*user, head);
        }
    }
    assert!(succeeded > 300, "too few commands succeeded: {succeeded}");
    assert_eq!(kinds_applied.len(), 15, "every command kind succeeded at least once: {kinds_applied:?}");
    for user in USERS {
        let events = all_changes(&kv, user, 0);
        let cursors: Vec<u64> = events.iter().map(|e| e.cursor).collect();
        assert_eq!(cursors, (1..=heads[user]).collect::<Vec<_>>(), "{user}");
        assert!(events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        for kind in [ChangeKind::Create, ChangeKind::Modify, ChangeKind::Delete, ChangeKind::Move, ChangeKind::Share] {
            assert!(events.iter().any(|e| e.kind == kind), "{user} has no {kind:?} event");
        }

        // Echo filtering: the phone never sees its own events, the cursor still reaches
        // the head, and nothing else is lost.
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let page = changelog::read_changes(&kv, user, cursor, 5, Some("phone")).unwrap();
            assert!(page.next_cursor > cursor || !page.has_more);
            cursor = page.next_cursor;
            seen.extend(page.events);
            if !page.has_more {
                break;
            }
        }
        assert_eq!(cursor, heads[user]);
        let expected: Vec<ChangeEvent> = events.into_iter().filter(|e| e.device_id != "phone").collect();
        assert!(expected.len() < heads[user] as usize);
        assert_eq!(seen, expected);
    }
    check_invariants(&kv);
}

#[test]
fn replicas_applying_the_same_commands_are_byte_identical() {
    let mut first = MemKv::new();
    let mut second = MemKv::new();
    let ok = run_random(&mut first, 7, 1500);
    assert_eq!(run_random(&mut second, 7, 1500), ok);
    assert_eq!(first.map, second.map);
    check_invariants(&first);
    let mut other = MemKv::new();
    run_random(&mut other, 8, 1500);
    assert_ne!(first.map, other.map, "a different sequence gives a different state");
    check_invariants(&other);
}

#[test]
fn commands_round_trip_through_serde() {
    let mut rng = Rng(3);
    let kv = MemKv::new();
    for step in 0..200 {
        let cmd = random_command(&kv, &mut rng, step);
        let bytes = postcard::to_allocvec(&cmd).unwrap();
        assert_eq!(postcard::from_bytes::<ShardCommand>(&bytes).unwrap(), cmd);
    }
}
