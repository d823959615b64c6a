//! Commits, conflicts, version history, chunk references and upload sessions.

use super::*;

fn commit_with(kv: &mut MemKv, mut cmd: CommitVersion, policy: ConflictPolicy) -> Result<CommitOutcome, ModelError> {
    cmd.policy = policy;
    match try_run(kv, ShardCommand::CommitVersion(cmd))? {
        ShardResponse::Committed(outcome) => Ok(outcome),
        other => panic!("unexpected {other:?}"),
    }
}

fn history(kv: &MemKv, path: &str) -> Vec<u64> {
    versions::list_versions(kv, ALICE, &FileRef::Path(path.into()), None, 1000)
        .unwrap()
        .versions
        .iter()
        .map(|v| v.version)
        .collect()
}

#[test]
fn conflict_copy_last_writer_wins_and_identical_content() {
    let mut kv = MemKv::new();
    let path = "/docs/report.final.txt";
    let v1 = commit(&mut kv, path, &[chunk(1)], 1);
    // Device B moves the file on to version 2.
    commit_with(&mut kv, commit_cmd(path, &[chunk(2)], 2, Some(1), "desktop"), ConflictPolicy::ConflictCopy).unwrap();

    // Device A still thinks version 1 is current.
    let copy = commit_with(&mut kv, commit_cmd(path, &[chunk(3)], 3, Some(1), "laptop"), ConflictPolicy::ConflictCopy)
        .unwrap();
    let copy_path = "/docs/report.final (laptop's conflicting copy 2024-03-01).txt";
    assert!(copy.conflict);
    assert_eq!((copy.path.as_str(), copy.conflict_path.as_deref(), copy.version), (copy_path, Some(copy_path), 1));
    assert_ne!(copy.file_id, v1.file_id);
    let original = stat(&kv, path).unwrap();
    assert_eq!((original.file().unwrap().version, original.file().unwrap().content_sha256), (2, hash(1_000_002)));
    assert_eq!(stat(&kv, copy_path).unwrap().file().unwrap().content_sha256, hash(1_000_003));

    // A second conflict from the same device on the same day gets a numbered name.
    let again = commit_with(&mut kv, commit_cmd(path, &[chunk(4)], 4, Some(1), "laptop"), ConflictPolicy::ConflictCopy)
        .unwrap();
    assert_eq!(again.path, "/docs/report.final (laptop's conflicting copy 2024-03-01 2).txt");

    // Last writer wins: current anyway, the overwritten version stays in history.
    let lww = commit_with(&mut kv, commit_cmd(path, &[chunk(5)], 5, Some(1), "laptop"), ConflictPolicy::LastWriterWins)
        .unwrap();
    assert!(lww.conflict && lww.conflict_path.is_none());
    assert_eq!((lww.path.as_str(), lww.version), (path, 3));
    assert_eq!(history(&kv, path), [3, 2, 1]);
    let v2 = versions::get_version(&kv, ALICE, &FileRef::Path(path.into()), 2).unwrap();
    assert_eq!((v2.chunks.as_slice(), v2.device_id.as_str()), (&[chunk(2)][..], "desktop"));

    // Identical content with a stale base: no conflict, no new version.
    let cursor = changelog::head_cursor(&kv, ALICE).unwrap();
    let same = commit_with(&mut kv, commit_cmd(path, &[chunk(5)], 5, Some(1), "tablet"), ConflictPolicy::ConflictCopy)
        .unwrap();
    assert!(!same.conflict && !same.new_version);
    assert_eq!(same.version, 3);
    assert_eq!(changelog::head_cursor(&kv, ALICE).unwrap(), cursor);

    // Reject reports the current version.
    let rejected = commit_with(&mut kv, commit_cmd(path, &[chunk(6)], 6, Some(2), "laptop"), ConflictPolicy::Reject);
    assert_eq!(rejected, Err(ModelError::Conflict { current_version: 3 }));
    // A matching base is no conflict.
    let ok = commit_with(&mut kv, commit_cmd(path, &[chunk(6)], 6, Some(3), "laptop"), ConflictPolicy::Reject).unwrap();
    assert_eq!((ok.version, ok.conflict), (4, false));
}

#[test]
fn pruning_restore_and_refcounts() {
    let mut kv = MemKv::new();
    let cfg3 = ShardConfig { max_versions: 3, ..ShardConfig::default() };
    let path = "/f.bin";
    // Chunk 100 is in every version; chunk n only in version n.
    for n in 1..=5u64 {
        let cmd = ShardCommand::CommitVersion(commit_cmd(path, &[chunk(100), chunk(n)], n, None, "d"));
        apply(&mut kv, &cmd, &cfg3).unwrap();
    }
    assert_eq!(history(&kv, path), [5, 4, 3]);
    assert_eq!(stat(&kv, path).unwrap().file().unwrap().oldest_version, 3);
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2), refcount(&kv, 3), refcount(&kv, 100)), (0, 0, 1, 3));
    assert_eq!(zero_log(&kv), [hash(1), hash(2)]);
    assert!(versions::get_version(&kv, ALICE, &FileRef::Path(path.into()), 2).is_err());

    // Restore version 3: version 6 points at its chunks; version 3 itself is pruned, but
    // its chunk never reaches zero (net change within one command).
    let restore = ShardCommand::RestoreVersion {
        user_id: ALICE.into(),
        path: path.into(),
        version: 3,
        created_by: ALICE.into(),
        device_id: "d".into(),
        now_ms: T0,
    };
    apply(&mut kv, &restore, &cfg3).unwrap();
    assert_eq!(history(&kv, path), [6, 5, 4]);
    let v6 = versions::get_version(&kv, ALICE, &FileRef::Path(path.into()), 6).unwrap();
    assert_eq!((v6.chunks, v6.content_sha256), (vec![chunk(100), chunk(3)], hash(1_000_003)));
    assert_eq!((refcount(&kv, 3), refcount(&kv, 100)), (1, 3));
    assert_eq!(zero_log(&kv), [hash(1), hash(2)]);
    // Restoring the current content is a no-op.
    let restore_current = ShardCommand::RestoreVersion {
        user_id: ALICE.into(),
        path: path.into(),
        version: 6,
        created_by: ALICE.into(),
        device_id: "d".into(),
        now_ms: T0,
    };
    let noop = apply(&mut kv, &restore_current, &cfg3).unwrap();
    assert!(matches!(noop, ShardResponse::Committed(CommitOutcome { new_version: false, version: 6, .. })));
    // The whole history goes with a purge.
    delete(&mut kv, path);
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: path.into() });
    assert_eq!((refcount(&kv, 3), refcount(&kv, 4), refcount(&kv, 5), refcount(&kv, 100)), (0, 0, 0, 0));
    let log = zero_log(&kv);
    for n in [1, 2, 3, 4, 5, 100] {
        assert_eq!(log.iter().filter(|h| **h == hash(n)).count(), 1, "chunk {n} logged once");
    }
}

#[test]
fn dedup_chunk_stays_referenced_while_one_file_uses_it() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/a", &[chunk(7), chunk(1)], 1);
    commit(&mut kv, "/b", &[chunk(7), chunk(2), chunk(7)], 2);
    assert_eq!(refcount(&kv, 7), 3, "counted per occurrence");
    delete(&mut kv, "/a");
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/a".into() });
    assert_eq!((refcount(&kv, 7), refcount(&kv, 1)), (2, 0));
    assert_eq!(zero_log(&kv), [hash(1)]);
    delete(&mut kv, "/b");
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/b".into() });
    assert_eq!(refcount(&kv, 7), 0);
    assert_eq!(zero_log(&kv), [hash(1), hash(2), hash(7)]);
    // A later commit revives the chunk: the log entry stays, the count it reports moves.
    commit(&mut kv, "/c", &[chunk(7)], 3);
    let page = chunks::zero_refs_after(&kv, 2, 10).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!((page.items[0].hash, page.items[0].refcount_now, page.items[0].cursor), (hash(7), 1, 3));
    assert_eq!(chunks::refcounts(&kv, &[hash(7), hash(1)]).unwrap(), [(hash(7), 1), (hash(1), 0)]);
    // GC trims what it has processed.
    let trimmed = run(&mut kv, ShardCommand::TrimZeroRefLog { through_cursor: 2 });
    assert_eq!(trimmed, ShardResponse::ZeroRefLogTrimmed { removed: 2, more: false });
    assert_eq!(zero_log(&kv), [hash(7)]);
}

fn open(kv: &mut MemKv, id: u8, path: &str, chunks: &[ChunkRef], expires_at_ms: i64) -> UploadSession {
    let cmd = OpenSession {
        session_id: [id; 16],
        user_id: ALICE.into(),
        path: path.into(),
        chunks: chunks.to_vec(),
        base_version: None,
        device_id: "phone".into(),
        expires_at_ms,
        now_ms: T0,
    };
    match run(kv, ShardCommand::OpenSession(cmd)) {
        ShardResponse::SessionOpened(session) => session,
        other => panic!("unexpected {other:?}"),
    }
}

fn commit_session(kv: &mut MemKv, id: u8, content: u64, now_ms: i64) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::CommitSession {
            session_id: [id; 16],
            user_id: ALICE.into(),
            content_sha256: hash(1_000_000 + content),
            created_by: ALICE.into(),
            policy: ConflictPolicy::ConflictCopy,
            now_ms,
        },
    )
}

fn mark(kv: &mut MemKv, id: u8, chunks: &[u64]) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::MarkChunksStored {
            session_id: [id; 16],
            user_id: ALICE.into(),
            hashes: chunks.iter().map(|n| hash(*n)).collect(),
            now_ms: T0,
        },
    )
}

#[test]
fn upload_session_lifecycle_and_references() {
    let mut kv = MemKv::new();
    let session = open(&mut kv, 1, "/video.mp4", &[chunk(1), chunk(2), chunk(1)], T0 + 60_000);
    assert_eq!(session.missing(), [hash(1), hash(2)]);
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (2, 1), "an open session holds references");
    assert_eq!(mark(&mut kv, 1, &[1]).unwrap(), ShardResponse::ChunksMarked { missing: 1 });
    assert!(matches!(mark(&mut kv, 1, &[9]), Err(ModelError::InvalidArgument(_))));
    let missing = ShardQuery::MissingChunks { session_id: [1; 16], user_id: ALICE.into() };
    assert_eq!(query(&kv, &missing).unwrap(), QueryResponse::MissingChunks(vec![hash(2)]));
    assert!(sessions::get_session(&kv, &[1; 16], BOB).is_err(), "another user's session is invisible");
    assert_eq!(commit_session(&mut kv, 1, 1, T0), Err(ModelError::ChunksMissing { missing: 1 }));
    mark(&mut kv, 1, &[2]).unwrap();
    let ShardResponse::Committed(outcome) = commit_session(&mut kv, 1, 1, T0).unwrap() else { panic!() };
    assert_eq!((outcome.path.as_str(), outcome.version), ("/video.mp4", 1));
    let v1 = versions::get_version(&kv, ALICE, &FileRef::Path("/video.mp4".into()), 1).unwrap();
    assert_eq!((v1.size, v1.device_id.as_str()), (304, "phone"));
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (2, 1), "references were handed over, not doubled");
    assert!(zero_log(&kv).is_empty());
    assert!(sessions::get_session(&kv, &[1; 16], ALICE).is_err());

    // Abort releases: chunk 3 only this session used drops to zero.
    open(&mut kv, 2, "/other", &[chunk(3), chunk(1)], T0 + 60_000);
    run(&mut kv, ShardCommand::AbortSession { session_id: [2; 16], user_id: ALICE.into() });
    assert_eq!((refcount(&kv, 3), refcount(&kv, 1)), (0, 2));
    assert_eq!(zero_log(&kv), [hash(3)]);

    // A session whose content is already current commits nothing and releases.
    open(&mut kv, 3, "/video.mp4", &[chunk(1), chunk(2), chunk(1)], T0 + 60_000);
    mark(&mut kv, 3, &[1, 2]).unwrap();
    let ShardResponse::Committed(same) = commit_session(&mut kv, 3, 1, T0).unwrap() else { panic!() };
    assert!(!same.new_version);
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (2, 1));
}

#[test]
fn sessions_expire_in_bounded_batches() {
    let mut kv = MemKv::new();
    for id in 0..5u8 {
        open(&mut kv, id, &format!("/f{id}"), &[chunk(u64::from(id))], T0 + 1000 * i64::from(id + 1));
    }
    assert_eq!(commit_session(&mut kv, 0, 0, T0 + 1000), Err(ModelError::Expired("upload session".into())));
    let small = ShardConfig { expire_sessions_batch: 2, ..ShardConfig::default() };
    let expire = ShardCommand::ExpireSessions { now_ms: T0 + 3000 };
    assert_eq!(apply(&mut kv, &expire, &small).unwrap(), ShardResponse::SessionsExpired { removed: 2, more: true });
    assert_eq!(apply(&mut kv, &expire, &small).unwrap(), ShardResponse::SessionsExpired { removed: 1, more: false });
    assert_eq!(apply(&mut kv, &expire, &small).unwrap(), ShardResponse::SessionsExpired { removed: 0, more: false });
    for id in 0..5u8 {
        let alive = sessions::get_session(&kv, &[id; 16], ALICE).is_ok();
        assert_eq!(alive, id >= 3, "session {id}");
        assert_eq!(refcount(&kv, u64::from(id)), u64::from(id >= 3));
    }
}

#[test]
fn commit_validates_sizes_and_targets() {
    let mut kv = MemKv::new();
    mkdir(&mut kv, "/dir");
    let mut bad_size = commit_cmd("/x", &[chunk(1)], 1, None, "d");
    bad_size.size += 1;
    assert!(matches!(try_run(&mut kv, ShardCommand::CommitVersion(bad_size)), Err(ModelError::InvalidArgument(_))));
    assert!(matches!(
        try_run(&mut kv, ShardCommand::CommitVersion(commit_cmd("/dir", &[], 1, None, "d"))),
        Err(ModelError::NotAFile(_))
    ));
    assert!(matches!(
        try_run(&mut kv, ShardCommand::CommitVersion(commit_cmd("/", &[], 1, None, "d"))),
        Err(ModelError::InvalidPath(_))
    ));
    // A stale base on a missing file just creates it.
    let created =
        commit_with(&mut kv, commit_cmd("/new", &[chunk(1)], 1, Some(4), "d"), ConflictPolicy::Reject).unwrap();
    assert_eq!((created.version, created.conflict), (1, false));
}

#[test]
fn chunk_listing_pages_through_every_referenced_chunk_once_in_hash_order() {
    let mut kv = MemKv::new();
    for n in 0..25u64 {
        commit(&mut kv, &format!("/f{n}"), &[chunk(n), chunk(n + 100), chunk(n)], n);
    }
    delete(&mut kv, "/f3");
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/f3".into() });
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = chunks::chunk_refs_after(&kv, after.as_ref(), 7).unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().copied());
        after = page.items.last().map(|(h, _)| *h);
        if !page.has_more {
            break;
        }
    }
    let mut expected: Vec<(Hash32, u64)> =
        (0..25u64).filter(|n| *n != 3).flat_map(|n| [(hash(n), 2), (hash(n + 100), 1)]).collect();
    expected.sort();
    assert_eq!(seen, expected, "every live chunk once, with its count, purged ones gone");
    let q = query(&kv, &ShardQuery::ListChunks { after: None, limit: 0 }).unwrap();
    assert!(matches!(q, QueryResponse::Chunks(p) if p.items.len() == 1 && p.has_more), "limit 0 means one");
}

fn usage_of(kv: &MemKv) -> u64 {
    usage::usage(kv, ALICE).unwrap().bytes
}

#[test]
fn usage_counts_every_kept_version_and_a_quota_refuses_the_commit_that_would_pass_it() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/a", &[chunk(1), chunk(2)], 1); // 101 + 102
    commit(&mut kv, "/a", &[chunk(3)], 2); // 103, the older version is kept
    commit(&mut kv, "/b", &[chunk(1)], 3); // 101, dedup does not make it free
    assert_eq!(usage_of(&kv), 203 + 103 + 101);
    // Deleting keeps the versions (restorable); purging gives the bytes back.
    delete(&mut kv, "/b");
    assert_eq!(usage_of(&kv), 407);
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/b".into() });
    assert_eq!(usage_of(&kv), 306);
    // A quota: the commit that would pass it fails and changes nothing.
    let set = run(&mut kv, ShardCommand::SetQuota { user_id: ALICE.into(), quota_bytes: Some(450) });
    assert_eq!(set, ShardResponse::QuotaSet(usage::Usage { bytes: 306, quota_bytes: Some(450) }));
    let before = kv.clone();
    let over = try_run(&mut kv, ShardCommand::CommitVersion(commit_cmd("/c", &[chunk(7), chunk(8)], 4, None, "d")));
    assert!(
        matches!(over, Err(ModelError::QuotaExceeded { ref message }) if message.contains("306 bytes used of 450")),
        "{over:?}"
    );
    assert_eq!(kv, before, "a refused commit leaves no trace");
    commit(&mut kv, "/c", &[chunk(7)], 5); // 107 fits: 413
    assert_eq!(usage_of(&kv), 413);
    // Commands that free space always pass, even above a lowered quota.
    run(&mut kv, ShardCommand::SetQuota { user_id: ALICE.into(), quota_bytes: Some(100) });
    delete(&mut kv, "/c");
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/c".into() });
    assert_eq!(usage_of(&kv), 306);
    run(&mut kv, ShardCommand::SetQuota { user_id: ALICE.into(), quota_bytes: None });
    commit(&mut kv, "/d", &[chunk(9)], 6);
    assert_eq!(
        query(&kv, &ShardQuery::Usage { user_id: ALICE.into() }).unwrap(),
        QueryResponse::Usage(usage::Usage { bytes: 415, quota_bytes: None })
    );
}

#[test]
fn dedup_stats_count_each_distinct_chunk_once() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/a", &[chunk(1), chunk(2)], 1); // 101 + 102
    commit(&mut kv, "/a", &[chunk(1), chunk(3)], 2); // 101 + 103, chunk 1 shared with v1
    commit(&mut kv, "/b", &[chunk(2), chunk(2)], 3); // 102 twice
    let QueryResponse::DedupStats(d) = query(&kv, &ShardQuery::DedupStats { user_id: ALICE.into() }).unwrap() else {
        panic!("wrong answer")
    };
    assert_eq!(d.versions, 3);
    assert_eq!(d.logical_bytes, 203 + 204 + 204);
    assert_eq!(d.distinct_chunks, 3);
    assert_eq!(d.unique_chunk_bytes, 101 + 102 + 103);
    assert_eq!(d.savings_bytes(), 611 - 306);
    assert_eq!(d.logical_bytes, usage_of(&kv), "logical bytes are the quota's usage");
    // Another user's versions are not counted.
    let other = query(&kv, &ShardQuery::DedupStats { user_id: "bob".into() }).unwrap();
    assert!(matches!(other, QueryResponse::DedupStats(d) if d.versions == 0 && d.unique_chunk_bytes == 0));
}

#[test]
fn trash_older_than_the_retention_is_purged_page_by_page() {
    let mut kv = MemKv::new();
    let del = |kv: &mut MemKv, path: &str, at: i64| {
        run(kv, ShardCommand::Delete { user_id: ALICE.into(), path: path.into(), device_id: "d".into(), now_ms: at });
    };
    commit(&mut kv, "/old/a", &[chunk(1)], 1);
    commit(&mut kv, "/old/b", &[chunk(2)], 2);
    commit(&mut kv, "/recent", &[chunk(3)], 3);
    commit(&mut kv, "/live", &[chunk(1)], 4); // shares chunk 1 with /old/a
    del(&mut kv, "/old", T0 + 1_000);
    del(&mut kv, "/recent", T0 + 5_000);
    let (mut after, mut purged, mut pages) = (None, 0, 0);
    loop {
        let cmd = ShardCommand::PurgeExpiredTrash { after: after.clone(), deleted_before_ms: T0 + 3_000, limit: 2 };
        let ShardResponse::TrashPurged(page) = run(&mut kv, cmd) else { panic!("wrong answer") };
        assert!(page.scanned <= 2);
        purged += page.purged_entries;
        pages += 1;
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert!(pages >= 2, "the walk is paged");
    assert_eq!(purged, 3, "the /old folder and its two files");
    assert!(namespace::stat(&kv, ALICE, "/old/a", true).is_err(), "purged for good");
    assert!(namespace::stat(&kv, ALICE, "/recent", true).unwrap().deleted, "within the retention: still restorable");
    assert_eq!(refcount(&kv, 1), 1, "/live still holds chunk 1");
    assert_eq!(refcount(&kv, 2), 0);
    assert_eq!(refcount(&kv, 3), 1);
    assert_eq!(usage_of(&kv), 101 + 103);
}
