//! A grantee's view of the owner's change log, and grantees' session commits and
//! restores checked inside the command.

use super::*;

const CAROL: &str = "carol";

fn share(kv: &mut MemKv, path: &str, grantee: &str, permission: Permission, expires_at_ms: Option<i64>) {
    run(
        kv,
        ShardCommand::Share {
            owner: ALICE.into(),
            path: path.into(),
            grantee: grantee.into(),
            permission,
            expires_at_ms,
            device_id: "web".into(),
            now_ms: T0,
        },
    );
}

fn unshare(kv: &mut MemKv, path: &str, grantee: &str) {
    run(
        kv,
        ShardCommand::Unshare {
            owner: ALICE.into(),
            path: path.into(),
            grantee: grantee.into(),
            device_id: "web".into(),
            now_ms: T0,
        },
    );
}

fn mv(kv: &mut MemKv, from: &str, to: &str) {
    run(
        kv,
        ShardCommand::Move {
            user_id: ALICE.into(),
            from: from.into(),
            to: to.into(),
            device_id: "dev1".into(),
            now_ms: T0,
        },
    );
}

fn read(kv: &MemKv, grantee: &str, after: u64, limit: usize, now_ms: i64) -> Result<SharedChangePage, ModelError> {
    let q = ShardQuery::ReadSharedChanges {
        owner: ALICE.into(),
        grantee: grantee.into(),
        after_cursor: after,
        limit,
        exclude_device: None,
        now_ms,
    };
    match query(kv, &q)? {
        QueryResponse::SharedChanges(page) => Ok(page),
        other => panic!("unexpected {other:?}"),
    }
}

/// (kind, path, new_path) of every event `grantee` sees, read in pages of `limit`;
/// also checks that pages never repeat a cursor and end at the owner's head.
fn seen(kv: &MemKv, grantee: &str, limit: usize) -> Vec<(ChangeKind, String, Option<String>)> {
    let head = changelog::head_cursor(kv, ALICE).unwrap();
    let (mut cursor, mut out, mut cursors) = (0, Vec::new(), Vec::<u64>::new());
    loop {
        let page = read(kv, grantee, cursor, limit, T0).unwrap().page;
        assert!(page.events.len() <= limit);
        assert!(page.next_cursor >= cursor, "the cursor never goes back");
        assert_eq!(page.head_cursor, head);
        for e in page.events {
            assert!(e.cursor > cursor && e.cursor <= page.next_cursor);
            assert!(cursors.last().is_none_or(|last| *last < e.cursor), "no event twice");
            cursors.push(e.cursor);
            out.push((e.kind, e.path, e.new_path));
        }
        cursor = page.next_cursor;
        if !page.has_more {
            assert_eq!(cursor, head, "the last page ends at the owner's head");
            return out;
        }
    }
}

fn ev(kind: ChangeKind, path: &str, new_path: Option<&str>) -> (ChangeKind, String, Option<String>) {
    (kind, path.to_owned(), new_path.map(str::to_owned))
}

#[test]
fn a_grantee_sees_the_owners_events_under_shared_paths_only() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/proj/a.txt", &[chunk(1)], 1);
    commit(&mut kv, "/other.txt", &[chunk(2)], 2);
    commit(&mut kv, "/team/x/plan.txt", &[chunk(3)], 3);
    assert!(matches!(read(&kv, BOB, 0, 10, T0), Err(ModelError::PermissionDenied(_))), "nothing shared yet");

    share(&mut kv, "/proj", BOB, Permission::View, None);
    share(&mut kv, "/proj", CAROL, Permission::Edit, None); // about carol: bob must not see it
    share(&mut kv, "/team/x", BOB, Permission::View, None);
    commit(&mut kv, "/proj/b.txt", &[chunk(4)], 4);
    commit(&mut kv, "/projects/not-below.txt", &[chunk(5)], 5); // a common name prefix only
    mkdir(&mut kv, "/elsewhere");
    mv(&mut kv, "/proj/a.txt", "/out.txt"); // out of the shared folder: visible
    mv(&mut kv, "/elsewhere", "/proj/in"); // into it: visible
    mv(&mut kv, "/other.txt", "/other2.txt"); // unrelated: not
    mv(&mut kv, "/team", "/club"); // an ancestor of a shared folder: its share moved with it
    commit(&mut kv, "/club/x/plan.txt", &[chunk(6)], 6);
    run(
        &mut kv,
        ShardCommand::CreateLink {
            token: [9; 32],
            owner: ALICE.into(),
            path: "/proj/b.txt".into(),
            permission: LinkPermission::View,
            password_hash: None,
            expires_at_ms: None,
            device_id: "web".into(),
            now_ms: T0,
        },
    );

    // History is judged by today's shares: /team/x is /club/x now, so its early events
    // (under the old name) do not show; the move that carried the share does, and so
    // do bob's own share events wherever they are.
    let expected = vec![
        ev(ChangeKind::Create, "/proj", None),
        ev(ChangeKind::Create, "/proj/a.txt", None),
        ev(ChangeKind::Share, "/proj", None),
        ev(ChangeKind::Share, "/team/x", None),
        ev(ChangeKind::Create, "/proj/b.txt", None),
        ev(ChangeKind::Move, "/proj/a.txt", Some("/out.txt")),
        ev(ChangeKind::Move, "/elsewhere", Some("/proj/in")),
        ev(ChangeKind::Move, "/team", Some("/club")),
        ev(ChangeKind::Modify, "/club/x/plan.txt", None),
    ];
    assert_eq!(seen(&kv, BOB, 1000), expected);
    assert_eq!(seen(&kv, BOB, 1), expected, "pages of one give the same events once each");
    assert_eq!(seen(&kv, BOB, 3), expected);
    let carol = seen(&kv, CAROL, 1000);
    assert!(carol
        .iter()
        .all(|(_, p, n)| p.starts_with("/proj") || n.as_deref().is_some_and(|n| n.starts_with("/proj"))));
    assert_eq!(carol.iter().filter(|(k, _, _)| *k == ChangeKind::Share).count(), 1, "only carol's own share");

    // The device filter still applies, and the owner reads everything.
    let q = ShardQuery::ReadSharedChanges {
        owner: ALICE.into(),
        grantee: BOB.into(),
        after_cursor: 0,
        limit: 1000,
        exclude_device: Some("dev1".into()),
        now_ms: T0,
    };
    let QueryResponse::SharedChanges(filtered) = query(&kv, &q).unwrap() else { panic!() };
    assert!(filtered.page.events.iter().all(|e| e.kind == ChangeKind::Share), "{filtered:?}");
    let own = read(&kv, ALICE, 0, 1000, T0).unwrap().page;
    assert_eq!(own.events.len() as u64, changelog::head_cursor(&kv, ALICE).unwrap());

    // Unsharing one folder hides it at once; the last unshare refuses the read.
    unshare(&mut kv, "/proj", BOB);
    let after = seen(&kv, BOB, 1000);
    assert_eq!(
        after,
        vec![
            ev(ChangeKind::Share, "/proj", None),
            ev(ChangeKind::Share, "/team/x", None),
            ev(ChangeKind::Move, "/team", Some("/club")),
            ev(ChangeKind::Modify, "/club/x/plan.txt", None),
            ev(ChangeKind::Share, "/proj", None), // the unshare itself: bob hears of it
        ]
    );
    unshare(&mut kv, "/club/x", BOB);
    assert!(matches!(read(&kv, BOB, 0, 10, T0), Err(ModelError::PermissionDenied(_))));
}

#[test]
fn expiring_shares_bound_the_feed_in_time() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/a/f", &[chunk(1)], 1);
    commit(&mut kv, "/b/g", &[chunk(2)], 2);
    share(&mut kv, "/a", BOB, Permission::View, Some(T0 + 1000));
    share(&mut kv, "/b", BOB, Permission::Edit, Some(T0 + 5000));
    let page = read(&kv, BOB, 0, 100, T0).unwrap();
    assert_eq!(page.visible_until_ms, Some(T0 + 1000), "the earliest expiry bounds a wait");
    let paths: Vec<String> = page.page.events.iter().map(|e| e.path.clone()).collect();
    assert!(paths.contains(&"/a/f".to_owned()) && paths.contains(&"/b/g".to_owned()));
    let later = read(&kv, BOB, 0, 100, T0 + 1000).unwrap();
    assert_eq!(later.visible_until_ms, Some(T0 + 5000));
    assert!(
        later.page.events.iter().all(|e| !e.path.starts_with("/a") || e.kind == ChangeKind::Share),
        "expired at its expiry time (bob's own share events still show)"
    );
    assert!(matches!(read(&kv, BOB, 0, 100, T0 + 5000), Err(ModelError::PermissionDenied(_))));
}

#[test]
fn a_read_that_finds_nothing_visible_still_moves_past_what_it_examined() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/shared/f", &[chunk(1)], 1);
    share(&mut kv, "/shared", BOB, Permission::View, None);
    let start = changelog::head_cursor(&kv, ALICE).unwrap();
    for i in 0..20 {
        commit(&mut kv, &format!("/private/{i}"), &[chunk(10 + i)], 10 + i);
    }
    let page = read(&kv, BOB, start, 5, T0).unwrap().page;
    assert!(page.events.is_empty());
    assert_eq!(page.next_cursor, page.head_cursor, "invisible events are passed over, not returned");
    assert!(!page.has_more);
}

fn grantee_commit(kv: &mut MemKv, id: u8, created_by: &str, now_ms: i64) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::CommitSession {
            session_id: [id; 16],
            user_id: ALICE.into(),
            content_sha256: hash(1_000_042),
            created_by: created_by.into(),
            policy: ConflictPolicy::ConflictCopy,
            now_ms,
        },
    )
}

#[test]
fn grantees_session_commits_and_restores_need_write_access_at_commit_time() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/team/doc", &[chunk(1)], 1);
    commit(&mut kv, "/team/doc", &[chunk(2)], 2);
    share(&mut kv, "/team", BOB, Permission::Edit, Some(T0 + 10_000));
    share(&mut kv, "/team", CAROL, Permission::View, None);
    let open = |kv: &mut MemKv, id: u8| {
        let cmd = OpenSession {
            session_id: [id; 16],
            user_id: ALICE.into(),
            path: "/team/upload.bin".into(),
            chunks: vec![chunk(7)],
            base_version: None,
            device_id: "bobs-laptop".into(),
            expires_at_ms: T0 + 60_000,
            now_ms: T0,
        };
        run(kv, ShardCommand::OpenSession(cmd));
        run(
            kv,
            ShardCommand::MarkChunksStored {
                session_id: [id; 16],
                user_id: ALICE.into(),
                hashes: vec![hash(7)],
                now_ms: T0,
            },
        );
    };
    open(&mut kv, 1);
    assert!(matches!(grantee_commit(&mut kv, 1, CAROL, T0), Err(ModelError::PermissionDenied(_))), "view only");
    assert!(matches!(grantee_commit(&mut kv, 1, BOB, T0 + 10_000), Err(ModelError::PermissionDenied(_))), "expired");
    assert!(stat(&kv, "/team/upload.bin").is_err(), "nothing written");
    let ShardResponse::Committed(done) = grantee_commit(&mut kv, 1, BOB, T0).unwrap() else { panic!() };
    let v = versions::get_version(&kv, ALICE, &FileRef::Path("/team/upload.bin".into()), done.version).unwrap();
    assert_eq!(v.created_by, BOB);

    let restore = |by: &str, now_ms: i64| ShardCommand::RestoreVersion {
        user_id: ALICE.into(),
        path: "/team/doc".into(),
        version: 1,
        created_by: by.into(),
        device_id: "d".into(),
        now_ms,
    };
    assert!(matches!(try_run(&mut kv, restore(CAROL, T0)), Err(ModelError::PermissionDenied(_))));
    assert_eq!(stat(&kv, "/team/doc").unwrap().file().unwrap().version, 2, "nothing restored");
    let ShardResponse::Committed(restored) = run(&mut kv, restore(BOB, T0)) else { panic!() };
    assert_eq!(restored.version, 3);
    let v3 = versions::get_version(&kv, ALICE, &FileRef::Path("/team/doc".into()), 3).unwrap();
    assert_eq!((v3.created_by.as_str(), v3.chunks), (BOB, vec![chunk(1)]));
}
