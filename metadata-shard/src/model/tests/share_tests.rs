//! Shares, inherited access and link shares.

use super::*;

fn share(kv: &mut MemKv, path: &str, grantee: &str, permission: Permission, expires_at_ms: Option<i64>) -> Share {
    let cmd = ShardCommand::Share {
        owner: ALICE.into(),
        path: path.into(),
        grantee: grantee.into(),
        permission,
        expires_at_ms,
        device_id: "web".into(),
        now_ms: T0,
    };
    match run(kv, cmd) {
        ShardResponse::Shared(share) => share,
        other => panic!("unexpected {other:?}"),
    }
}

fn may(kv: &MemKv, user: &str, path: &str, action: Action, now_ms: i64) -> bool {
    access::check_access(kv, ALICE, path, user, action, now_ms).unwrap().allowed
}

#[test]
fn shares_are_inherited_and_the_strongest_live_one_wins() {
    let mut kv = MemKv::new();
    let file = "/team/a/b/c/plan.txt";
    commit(&mut kv, file, &[chunk(1)], 1);
    assert!(may(&kv, ALICE, file, Action::Share, T0), "the owner may do anything");
    assert!(!may(&kv, BOB, file, Action::Read, T0));

    share(&mut kv, "/team", BOB, Permission::View, None);
    assert!(may(&kv, BOB, file, Action::Read, T0), "View on a folder 4 levels up");
    assert!(!may(&kv, BOB, file, Action::Write, T0));
    assert!(may(&kv, BOB, "/team/a/new-file", Action::Read, T0), "paths that do not exist yet inherit too");
    assert!(!may(&kv, BOB, "/teamwork", Action::Read, T0), "a sibling with a common name prefix does not");

    share(&mut kv, "/team/a/b", BOB, Permission::Edit, Some(T0 + 1000));
    assert!(may(&kv, BOB, file, Action::Write, T0 + 999));
    assert!(!may(&kv, BOB, file, Action::Share, T0 + 999));
    assert!(!may(&kv, BOB, file, Action::Write, T0 + 1000), "expired at its expiry time");
    assert!(may(&kv, BOB, file, Action::Read, T0 + 1000), "the View share still applies");
    assert!(!may(&kv, BOB, "/team/a/other", Action::Write, T0), "Edit was granted below /team/a only");

    share(&mut kv, "/team/a/b/c/plan.txt", BOB, Permission::Admin, None);
    let decision = access::check_access(&kv, ALICE, file, BOB, Action::Share, T0).unwrap();
    assert!(decision.allowed);
    assert_eq!((decision.permission, decision.granted_on.as_deref()), (Some(Permission::Admin), Some(file)));
    assert!(!may(&kv, "carol", file, Action::Read, T0));

    // Listing and unsharing.
    let listed = shares::list_shares(&kv, ALICE, "/team/a/b").unwrap();
    assert_eq!(
        listed.iter().map(|s| (s.grantee.as_str(), s.permission)).collect::<Vec<_>>(),
        [(BOB, Permission::Edit)]
    );
    run(
        &mut kv,
        ShardCommand::Unshare {
            owner: ALICE.into(),
            path: "/team".into(),
            grantee: BOB.into(),
            device_id: "web".into(),
            now_ms: T0,
        },
    );
    assert!(!may(&kv, BOB, "/team/x", Action::Read, T0));
    let again = try_run(
        &mut kv,
        ShardCommand::Unshare {
            owner: ALICE.into(),
            path: "/team".into(),
            grantee: BOB.into(),
            device_id: "web".into(),
            now_ms: T0,
        },
    );
    assert!(matches!(again, Err(ModelError::NotFound(_))));

    // Refusals.
    let err = try_run(
        &mut kv,
        ShardCommand::Share {
            owner: ALICE.into(),
            path: "/missing".into(),
            grantee: BOB.into(),
            permission: Permission::View,
            expires_at_ms: None,
            device_id: "w".into(),
            now_ms: T0,
        },
    );
    assert!(matches!(err, Err(ModelError::NotFound(_))));
    let err = try_run(
        &mut kv,
        ShardCommand::Share {
            owner: ALICE.into(),
            path: "/team".into(),
            grantee: ALICE.into(),
            permission: Permission::View,
            expires_at_ms: None,
            device_id: "w".into(),
            now_ms: T0,
        },
    );
    assert!(matches!(err, Err(ModelError::InvalidArgument(_))));

    // Deleting removes the shares of the subtree (and says which).
    let outcome = delete(&mut kv, "/team/a");
    assert_eq!(outcome.removed_shares.len(), 2);
    assert!(!may(&kv, BOB, file, Action::Read, T0));
}

#[test]
fn shared_with_me_on_the_grantee_side() {
    let mut kv = MemKv::new();
    for (owner, path) in [("carol", "/x"), (ALICE, "/b"), (ALICE, "/a")] {
        run(
            &mut kv,
            ShardCommand::AddSharedWithMe {
                grantee: BOB.into(),
                owner: owner.into(),
                path: path.into(),
                permission: Permission::Edit,
                expires_at_ms: None,
                now_ms: T0,
            },
        );
    }
    let first = shares::list_shared_with_me(&kv, BOB, None, 2).unwrap();
    assert_eq!(
        first.entries.iter().map(|e| (e.owner.as_str(), e.path.as_str())).collect::<Vec<_>>(),
        [(ALICE, "/a"), (ALICE, "/b")]
    );
    let (owner, path) = first.next_start_after.unwrap();
    let second = shares::list_shared_with_me(&kv, BOB, Some((&owner, &path)), 2).unwrap();
    assert_eq!(second.entries.len(), 1);
    assert_eq!(second.next_start_after, None);
    run(
        &mut kv,
        ShardCommand::RemoveSharedWithMe { grantee: BOB.into(), owner: ALICE.into(), path: "/a".into(), now_ms: T0 },
    );
    assert_eq!(shares::list_shared_with_me(&kv, BOB, None, 10).unwrap().entries.len(), 2);
    let events = all_changes(&kv, BOB, 0);
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.kind == ChangeKind::Share));
    assert_eq!(events[3].peer.as_deref(), Some(ALICE));
    assert!(shares::list_shared_with_me(&kv, ALICE, None, 10).unwrap().entries.is_empty());
}

fn create_link(
    kv: &mut MemKv,
    token: u8,
    path: &str,
    password_hash: Option<String>,
    expires_at_ms: Option<i64>,
) -> Result<ShardResponse, ModelError> {
    try_run(
        kv,
        ShardCommand::CreateLink {
            token: [token; 32],
            owner: ALICE.into(),
            path: path.into(),
            permission: LinkPermission::View,
            password_hash,
            expires_at_ms,
            device_id: "web".into(),
            now_ms: T0,
        },
    )
}

#[test]
fn links_passwords_expiry_and_revocation() {
    let mut kv = MemKv::new();
    commit(&mut kv, "/pub/photo.jpg", &[chunk(1)], 1);
    let hash = hash_link_password("correct horse", b"0123456789abcdef").unwrap();
    assert!(hash.starts_with("$argon2id$"));
    create_link(&mut kv, 1, "/pub/photo.jpg", Some(hash), None).unwrap();
    create_link(&mut kv, 2, "/pub", None, Some(T0 + 500)).unwrap();

    let link = links::resolve_link(&kv, &[1; 32], T0).unwrap();
    assert_eq!(link.path, "/pub/photo.jpg");
    assert!(verify_link_password(&link, "correct horse"));
    assert!(!verify_link_password(&link, "wrong horse"));
    let open_link = links::resolve_link(&kv, &[2; 32], T0 + 499).unwrap();
    assert!(verify_link_password(&open_link, "anything"), "no password set");
    assert_eq!(links::resolve_link(&kv, &[2; 32], T0 + 500), Err(ModelError::Expired("link".into())));
    assert!(matches!(links::resolve_link(&kv, &[3; 32], T0), Err(ModelError::NotFound(_))));

    assert!(matches!(create_link(&mut kv, 1, "/pub", None, None), Err(ModelError::AlreadyExists(_))));
    assert!(matches!(
        create_link(&mut kv, 4, "/pub", Some("plaintext".into()), None),
        Err(ModelError::InvalidArgument(_))
    ));
    assert!(matches!(create_link(&mut kv, 4, "/nope", None, None), Err(ModelError::NotFound(_))));
    assert!(matches!(hash_link_password("pw", b"short"), Err(ModelError::InvalidArgument(_))));

    // Links follow moves, and only their owner can revoke them.
    run(
        &mut kv,
        ShardCommand::Move {
            user_id: ALICE.into(),
            from: "/pub".into(),
            to: "/public".into(),
            device_id: "d".into(),
            now_ms: T0,
        },
    );
    assert_eq!(links::resolve_link(&kv, &[1; 32], T0).unwrap().path, "/public/photo.jpg");
    assert_eq!(links::list_links(&kv, ALICE, "/public").unwrap().len(), 1);
    let by_bob = try_run(
        &mut kv,
        ShardCommand::RevokeLink { owner: BOB.into(), token: [1; 32], device_id: "d".into(), now_ms: T0 },
    );
    assert!(matches!(by_bob, Err(ModelError::PermissionDenied(_))));
    run(&mut kv, ShardCommand::RevokeLink { owner: ALICE.into(), token: [1; 32], device_id: "d".into(), now_ms: T0 });
    assert!(matches!(links::resolve_link(&kv, &[1; 32], T0), Err(ModelError::NotFound(_))));
    // Deleting the folder revokes the links below it.
    let outcome = delete(&mut kv, "/public");
    assert_eq!(outcome.revoked_links, vec![[2u8; 32]]);
    assert!(matches!(links::resolve_link(&kv, &[2; 32], T0), Err(ModelError::NotFound(_))));
}

#[test]
fn a_grantees_plain_commit_needs_write_access_when_it_applies() {
    let mut kv = MemKv::new();
    mkdir(&mut kv, "/team");
    let by_bob = |content: u64| {
        let mut cmd = commit_cmd("/team/notes.txt", &[chunk(content)], content, None, "bob-laptop");
        cmd.created_by = BOB.into();
        ShardCommand::CommitVersion(cmd)
    };
    assert!(matches!(try_run(&mut kv, by_bob(1)), Err(ModelError::PermissionDenied(_))), "no share yet");
    share(&mut kv, "/team", BOB, Permission::View, None);
    assert!(matches!(try_run(&mut kv, by_bob(1)), Err(ModelError::PermissionDenied(_))), "view only");
    share(&mut kv, "/team", BOB, Permission::Edit, Some(T0 + 1000));
    let ShardResponse::Committed(done) = run(&mut kv, by_bob(2)) else { panic!("not committed") };
    assert_eq!(done.version, 1);
    // Expired between the router's check and the command: refused, nothing written.
    let mut late = by_bob(3);
    if let ShardCommand::CommitVersion(c) = &mut late {
        c.now_ms = T0 + 1000;
    }
    let before = kv.clone();
    assert!(matches!(try_run(&mut kv, late), Err(ModelError::PermissionDenied(_))));
    assert_eq!(kv, before, "a refused commit leaves the store as it was");
    assert_eq!(stat(&kv, "/team/notes.txt").unwrap().file().unwrap().version, 1);
}
