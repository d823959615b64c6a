//! Folders, moves, deletes, tombstones and listings.

use std::collections::BTreeMap;

use super::*;

fn mv(kv: &mut MemKv, from: &str, to: &str) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::Move {
            user_id: ALICE.into(),
            from: from.into(),
            to: to.into(),
            device_id: "dev1".into(),
            now_ms: T0,
        },
    )
}

#[test]
fn moving_a_folder_of_500_files_is_one_atomic_command() {
    let mut kv = MemKv::new();
    let mut files = BTreeMap::new();
    for a in 0..5 {
        for b in 0..5 {
            for c in 0..4 {
                for f in 0..5 {
                    let path = format!("/src/a{a}/b{b}/c{c}/f{f}.txt");
                    let n = files.len() as u64;
                    let outcome = commit(&mut kv, &path, &[chunk(n)], n);
                    files.insert(path, (outcome.file_id, outcome.version));
                }
            }
        }
    }
    assert_eq!(files.len(), 500);
    // A second version for some files, so versions are not all 1.
    for (i, path) in files.keys().cloned().collect::<Vec<_>>().iter().enumerate().step_by(7) {
        let outcome = commit(&mut kv, path, &[chunk(10_000 + i as u64)], 10_000 + i as u64);
        files.insert(path.clone(), (outcome.file_id, outcome.version));
    }
    run(
        &mut kv,
        ShardCommand::Share {
            owner: ALICE.into(),
            path: "/src/a1/b2".into(),
            grantee: BOB.into(),
            permission: Permission::Edit,
            expires_at_ms: None,
            device_id: "dev1".into(),
            now_ms: T0,
        },
    );
    mkdir(&mut kv, "/dst");
    let cursor = changelog::head_cursor(&kv, ALICE).unwrap();

    let ShardResponse::Moved(outcome) = mv(&mut kv, "/src", "/dst/moved").unwrap() else { panic!() };
    // 500 files + 1 + 5 + 25 + 100 folders.
    assert_eq!(outcome.moved_entries, 631);
    assert_eq!(
        outcome.moved_shares,
        vec![ShareMove { grantee: BOB.into(), old_path: "/src/a1/b2".into(), new_path: "/dst/moved/a1/b2".into() }]
    );

    for (path, (id, version)) in &files {
        let new_path = path.replacen("/src", "/dst/moved", 1);
        let entry = stat(&kv, &new_path).unwrap();
        assert_eq!((entry.id, entry.file().unwrap().version), (*id, *version), "{new_path}");
        assert!(matches!(stat(&kv, path), Err(ModelError::NotFound(_))));
        let history = versions::list_versions(&kv, ALICE, &FileRef::Path(new_path), None, 10).unwrap();
        assert_eq!(history.versions.len() as u64, *version);
    }
    // Nothing at all is left under the old path, not even tombstones.
    let (start, end) = keys::entry_prefix_range(ALICE, "/src");
    assert!(kv.scan(&start, &end, 10).unwrap().is_empty());
    let events = all_changes(&kv, ALICE, cursor);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].kind, events[0].path.as_str(), events[0].new_path.as_deref()),
        (ChangeKind::Move, "/src", Some("/dst/moved"))
    );
    // The share moved with its folder and still grants inherited access.
    let access = access::check_access(&kv, ALICE, "/dst/moved/a1/b2/c0/f0.txt", BOB, Action::Write, T0).unwrap();
    assert!(access.allowed);
    assert_eq!(access.granted_on.as_deref(), Some("/dst/moved/a1/b2"));
}

#[test]
fn move_refusals_and_file_rename() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/a/b/f.txt", &[chunk(1)], 1);
    commit(&mut kv, "/other.txt", &[chunk(2)], 2);
    assert!(matches!(mv(&mut kv, "/a", "/a/b/inside"), Err(ModelError::InvalidArgument(_))));
    assert!(matches!(mv(&mut kv, "/a", "/a"), Err(ModelError::InvalidArgument(_))));
    assert!(matches!(mv(&mut kv, "/a/b/f.txt", "/other.txt"), Err(ModelError::AlreadyExists(_))));
    assert!(matches!(mv(&mut kv, "/a", "/"), Err(ModelError::InvalidPath(_))));
    assert!(matches!(mv(&mut kv, "/missing", "/x"), Err(ModelError::NotFound(_))));
    assert!(matches!(mv(&mut kv, "/a/b/f.txt", "/other.txt/x"), Err(ModelError::NotAFolder(_))));
    // "/ab" is not inside "/a".
    mv(&mut kv, "/a", "/ab").unwrap();
    let id = stat(&kv, "/ab/b/f.txt").unwrap().id;
    mv(&mut kv, "/ab/b/f.txt", "/new/dir/g.txt").unwrap();
    assert_eq!(stat(&kv, "/new/dir/g.txt").unwrap().id, id);
    assert!(stat(&kv, "/new/dir").unwrap().is_folder());
}

#[test]
fn mkdir_p_semantics() {
    let mut kv = MemKv::new();
    let create = |kv: &mut MemKv, path: &str| {
        try_run(
            kv,
            ShardCommand::CreateFolder { user_id: ALICE.into(), path: path.into(), device_id: "d".into(), now_ms: T0 },
        )
    };
    assert!(matches!(create(&mut kv, "/a/b/c").unwrap(), ShardResponse::Folder { created: 3, .. }));
    assert!(matches!(create(&mut kv, "/a/b/c").unwrap(), ShardResponse::Folder { created: 0, .. }));
    assert_eq!(
        all_changes(&kv, ALICE, 0).iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["/a", "/a/b", "/a/b/c"]
    );
    commit(&mut kv, "/a/file", &[], 1);
    assert!(matches!(create(&mut kv, "/a/file"), Err(ModelError::AlreadyExists(_))));
    assert!(matches!(create(&mut kv, "/a/file/x"), Err(ModelError::NotAFolder(_))));
    for bad in ["a", "/a/", "/a/../b", "/a//b", "/a/\0"] {
        assert!(matches!(create(&mut kv, bad), Err(ModelError::InvalidPath(_))), "{bad:?}");
    }
}

#[test]
fn delete_is_soft_and_paths_can_be_recreated() {
    let mut kv = MemKv::new();
    let first = commit(&mut kv, "/docs/sub/a.txt", &[chunk(1)], 1);
    commit(&mut kv, "/docs/b.txt", &[chunk(2)], 2);
    let outcome = delete(&mut kv, "/docs");
    assert_eq!(outcome.deleted_entries, 4);
    for path in ["/docs", "/docs/sub", "/docs/sub/a.txt", "/docs/b.txt"] {
        assert!(matches!(stat(&kv, path), Err(ModelError::NotFound(_))));
        assert!(namespace::stat(&kv, ALICE, path, true).unwrap().deleted);
    }
    assert_eq!(refcount(&kv, 1), 1, "deleted files keep their versions and chunks");
    // A new commit at the deleted path revives the same file (and its parents).
    let again = commit(&mut kv, "/docs/sub/a.txt", &[chunk(3)], 3);
    assert_eq!((again.file_id, again.version), (first.file_id, 2));
    assert!(stat(&kv, "/docs/sub").is_ok() && stat(&kv, "/docs").is_ok());
    assert!(stat(&kv, "/docs/b.txt").is_err(), "siblings stay deleted");
    // Restoring a deleted file revives it too.
    let restored = run(
        &mut kv,
        ShardCommand::RestoreVersion {
            user_id: ALICE.into(),
            path: "/docs/b.txt".into(),
            version: 1,
            created_by: ALICE.into(),
            device_id: "d".into(),
            now_ms: T0,
        },
    );
    assert!(matches!(restored, ShardResponse::Committed(CommitOutcome { version: 2, .. })));
    let kinds: Vec<ChangeKind> = all_changes(&kv, ALICE, 0).iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == ChangeKind::Delete).count(), 1);
    assert_eq!(kinds.last(), Some(&ChangeKind::Create));
}

#[test]
fn displaced_deleted_file_is_detached_not_lost() {
    let mut kv = MemKv::new();
    let file = commit(&mut kv, "/report", &[chunk(1)], 1);
    commit(&mut kv, "/report", &[chunk(2)], 2);
    delete(&mut kv, "/report");
    mkdir(&mut kv, "/report/2024");
    assert!(stat(&kv, "/report").unwrap().is_folder());
    let detached = namespace::list_detached(&kv, ALICE, None, 10).unwrap();
    assert_eq!(detached.files.len(), 1);
    assert_eq!((detached.files[0].id, detached.files[0].path.as_str()), (file.file_id, "/report"));
    let history = versions::list_versions(&kv, ALICE, &FileRef::Detached(file.file_id), None, 10).unwrap();
    assert_eq!(history.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (1, 1));

    run(
        &mut kv,
        ShardCommand::ReattachFile {
            user_id: ALICE.into(),
            file_id: file.file_id,
            path: "/old/report".into(),
            device_id: "d".into(),
            now_ms: T0,
        },
    );
    let entry = stat(&kv, "/old/report").unwrap();
    assert_eq!((entry.id, entry.file().unwrap().version), (file.file_id, 2));
    delete(&mut kv, "/old/report");
    run(&mut kv, ShardCommand::PurgeDeleted { user_id: ALICE.into(), path: "/old/report".into() });
    assert_eq!((refcount(&kv, 1), refcount(&kv, 2)), (0, 0));
    assert!(namespace::stat(&kv, ALICE, "/old/report", true).is_err());
}

/// All live files, sorted: the reference for listings.
fn live_files(kv: &MemKv) -> Vec<String> {
    files(kv, false)
}

fn files(kv: &MemKv, include_deleted: bool) -> Vec<String> {
    let (start, end) = keys::entry_prefix_range(ALICE, "/");
    kv.scan(&start, &end, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, v)| namespace::decode_entry(&v).unwrap())
        .filter(|e| (include_deleted || !e.deleted) && !e.is_folder())
        .map(|e| e.path)
        .collect()
}

/// S3 semantics computed by brute force over the whole sorted key list.
fn brute_force_objects(files: &[String], prefix: &str, delimiter: Option<char>) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for path in files.iter().filter(|p| p.starts_with(prefix)) {
        match delimiter
            .and_then(|d| path[prefix.len()..].find(d).map(|i| path[..prefix.len() + i + d.len_utf8()].to_string()))
        {
            Some(common) if out.last().map(|(_, k)| k) != Some(&common) => out.push((true, common)),
            Some(_) => {}
            None => out.push((false, path.clone())),
        }
    }
    out
}

fn build_tree(kv: &mut MemKv) {
    let mut rng = Rng(7);
    let names = ["a", "a-b", "a.b", "b", "photos", "2024", "z", "ä"];
    for i in 0..2500u64 {
        let depth = 1 + rng.below(4);
        let mut path = String::new();
        for level in 0..depth {
            path.push('/');
            path.push_str(rng.pick(&names));
            if level + 1 == depth {
                path.push_str(&format!("{i}.txt"));
            }
        }
        let _ = try_run(kv, ShardCommand::CommitVersion(commit_cmd(&path, &[chunk(i)], i, None, "d")));
        if rng.below(10) == 0 {
            let _ =
                try_run(kv, ShardCommand::Delete { user_id: ALICE.into(), path, device_id: "d".into(), now_ms: T0 });
        }
    }
    mkdir(kv, "/empty/folder");
    mkdir(kv, "/a/empty");
}

#[test]
fn object_listing_pages_equal_brute_force() {
    let mut kv = MemKv::new();
    build_tree(&mut kv);
    assert!(live_files(&kv).len() > 2000, "{}", live_files(&kv).len());
    assert!(files(&kv, true).len() > live_files(&kv).len());
    for (prefix, include_deleted) in
        ["/", "/a", "/a/", "/a-b/", "/photos/2", "/ä/", "/nothing"].into_iter().flat_map(|p| [(p, false), (p, true)])
    {
        let files = files(&kv, include_deleted);
        for delimiter in [None, Some('/')] {
            let expected = brute_force_objects(&files, prefix, delimiter);
            for limit in [1, 7, 100, 5000] {
                let mut got = Vec::new();
                let mut start_after: Option<String> = None;
                loop {
                    let scope = listing::ObjectScope { prefix, delimiter, include_deleted };
                    let page = listing::list_objects(&kv, ALICE, &scope, start_after.as_deref(), limit).unwrap();
                    assert!(page.entries.len() + page.common_prefixes.len() <= limit);
                    let mut items: Vec<(bool, String)> = page.entries.iter().map(|e| (false, e.path.clone())).collect();
                    items.extend(page.common_prefixes.iter().map(|p| (true, p.clone())));
                    items.sort_by(|a, b| a.1.cmp(&b.1));
                    got.extend(items);
                    match page.next_start_after {
                        Some(next) => {
                            assert!(page.truncated);
                            start_after = Some(next);
                        }
                        None => break,
                    }
                }
                assert_eq!(got, expected, "prefix {prefix:?} delimiter {delimiter:?} limit {limit} {include_deleted}");
            }
        }
    }
}

#[test]
fn folder_listing_pages_equal_brute_force() {
    let mut kv = MemKv::new();
    build_tree(&mut kv);
    let (start, end) = keys::entry_prefix_range(ALICE, "/");
    let all: Vec<Entry> = kv
        .scan(&start, &end, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, v)| namespace::decode_entry(&v).unwrap())
        .collect();
    for folder in ["/", "/a", "/a/b", "/photos", "/empty", "/empty/folder"] {
        if stat(&kv, folder).is_err() {
            continue;
        }
        for include_deleted in [false, true] {
            let expected: Vec<&str> = all
                .iter()
                .filter(|e| paths::parent(&e.path) == Some(folder) && (include_deleted || !e.deleted))
                .map(|e| e.path.as_str())
                .collect();
            for limit in [1, 3, 50, 1000] {
                let mut got = Vec::new();
                let mut start_after: Option<String> = None;
                loop {
                    let page = listing::list_folder(&kv, ALICE, folder, start_after.as_deref(), limit, include_deleted)
                        .unwrap();
                    assert!(page.entries.len() <= limit);
                    assert_eq!(page.truncated, page.next_start_after.is_some());
                    got.extend(page.entries.into_iter().map(|e| e.path));
                    match page.next_start_after {
                        Some(next) => start_after = Some(next),
                        None => break,
                    }
                }
                assert_eq!(got, expected, "{folder} limit {limit} deleted {include_deleted}");
            }
        }
    }
    assert!(matches!(
        listing::list_folder(&kv, ALICE, "/a/b/0.txt", None, 5, false),
        Err(ModelError::NotAFolder(_) | ModelError::NotFound(_))
    ));
}
