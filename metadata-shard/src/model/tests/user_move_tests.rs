//! A user move between two shards, on `MemKv`: the bulk copy while the user
//! keeps writing, the replay of what it wrote, the fence, the drop and the
//! activation, with chunk references and records equal on both sides.

use super::*;
use crate::model::user_move::{ExportCursor, UserFence};

const MOVE: &str = "m1";

fn step(kv: &mut MemKv, cmd: ShardCommand) {
    match run(kv, cmd) {
        ShardResponse::UserMoveStep { .. } => {}
        other => panic!("unexpected {other:?}"),
    }
}

/// Every record of `user` on `kv`, as (key, value).
fn records_of(kv: &MemKv, user: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (start, end, _) in keys::user_key_ranges(user) {
        for (k, v) in kv.scan(&start, &end, usize::MAX).unwrap() {
            if keys::is_user_record(&k) && !matches!(k.first(), Some(b'S' | b'T' | b'L' | b'U' | b'P')) {
                out.push((k, v));
            }
        }
    }
    out
}

fn footprint_user_records(kv: &MemKv) -> u64 {
    match query(kv, &ShardQuery::Footprint).unwrap() {
        QueryResponse::Footprint { user_records, .. } => user_records,
        other => panic!("unexpected {other:?}"),
    }
}

/// The bulk copy in pages of two records while `during` writes on the source.
fn bulk_copy(source: &mut MemKv, target: &mut MemKv, mut during: impl FnMut(&mut MemKv, usize)) {
    let mut cursor: Option<ExportCursor> = None;
    let mut page_no = 0;
    loop {
        let q = ShardQuery::ExportUser { user_id: ALICE.into(), cursor: cursor.clone(), limit: 2 };
        let QueryResponse::UserExport(page) = query(&*source, &q).unwrap() else { panic!("export") };
        if page_no == 0 {
            let begin = ShardCommand::BeginImport {
                user_id: ALICE.into(),
                move_id: MOVE.into(),
                next_entry_id: page.next_entry_id,
            };
            step(target, begin);
        }
        let records = page.records.into_iter().map(|(k, v)| (k, Some(v))).collect();
        step(target, ShardCommand::ImportRecords { user_id: ALICE.into(), move_id: MOVE.into(), records });
        during(source, page_no);
        page_no += 1;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return,
        }
    }
}

#[test]
fn a_user_copied_while_writing_arrives_whole_after_the_replay() {
    let (mut source, mut target) = (MemKv::default(), MemKv::default());
    mkdir(&mut source, "/docs");
    for i in 0..6 {
        commit(&mut source, &format!("/docs/f{i}"), &[chunk(i), chunk(100)], i);
    }
    step(&mut source, ShardCommand::TrackUser { user_id: ALICE.into(), move_id: MOVE.into() });
    // Writes go on while tracked: new files, new versions, a delete.
    bulk_copy(&mut source, &mut target, |kv, page| match page {
        1 => {
            commit(kv, "/docs/new", &[chunk(50)], 50);
        }
        2 => {
            commit(kv, "/docs/f0", &[chunk(60)], 60);
        }
        3 => {
            delete(kv, "/docs/f1");
        }
        _ => {}
    });
    step(&mut source, ShardCommand::FenceUser { user_id: ALICE.into(), move_id: MOVE.into() });
    let refused = try_run(&mut source, ShardCommand::CommitVersion(commit_cmd("/x", &[chunk(70)], 70, None, "d")));
    assert!(matches!(refused, Err(ModelError::UserMoving(_))), "{refused:?}");
    // The replay: every key written since tracking began, with its value now.
    let q = ShardQuery::ExportWritten { user_id: ALICE.into(), after: None, limit: 10_000 };
    let QueryResponse::Written(written) = query(&source, &q).unwrap() else { panic!("written") };
    assert!(!written.records.is_empty());
    let begin =
        ShardCommand::BeginImport { user_id: ALICE.into(), move_id: MOVE.into(), next_entry_id: written.next_entry_id };
    step(&mut target, begin);
    step(
        &mut target,
        ShardCommand::ImportRecords { user_id: ALICE.into(), move_id: MOVE.into(), records: written.records },
    );

    assert_eq!(records_of(&target, ALICE), records_of(&source, ALICE), "the target holds exactly the source's records");
    for n in [0, 1, 2, 3, 4, 5, 50, 60, 100] {
        assert_eq!(refcount(&target, n), refcount(&source, n), "references of chunk {n}");
    }
    // Commit happens in the cluster group; then drop, then activate.
    step(&mut source, ShardCommand::DropUser { user_id: ALICE.into(), move_id: MOVE.into(), to: 2 });
    assert_eq!(footprint_user_records(&source), 0, "nothing of alice is left on the source");
    for n in [0, 1, 50, 60, 100] {
        assert_eq!(refcount(&source, n), 0);
    }
    assert!(matches!(
        query(&source, &ShardQuery::UserFence { user_id: ALICE.into() }).unwrap(),
        QueryResponse::Fence(Some(UserFence::Gone { to: 2, .. }))
    ));
    let q = ShardQuery::Stat { user_id: ALICE.into(), path: "/docs/new".into(), include_deleted: false };
    assert!(matches!(query(&target, &q), Err(ModelError::UserMoving(_))), "not served before activation");
    assert!(matches!(query(&source, &q), Err(ModelError::UserMoved { to: 2, .. })), "the source sends readers on");
    step(&mut target, ShardCommand::ActivateUser { user_id: ALICE.into(), move_id: MOVE.into() });
    assert!(query(&target, &q).is_ok());
    assert!(namespace::stat(&target, ALICE, "/docs/f1", true).unwrap().deleted, "the delete made during the copy");
    // Writes on the target go on, with file ids past every id the source handed out.
    let before = stat(&target, "/docs/new").unwrap().id;
    commit(&mut target, "/docs/later", &[chunk(80)], 80);
    assert!(stat(&target, "/docs/later").unwrap().id > before);
}

#[test]
fn a_rolled_back_move_leaves_the_user_writing_on_the_source_with_no_log_left() {
    let (mut source, mut target) = (MemKv::default(), MemKv::default());
    commit(&mut source, "/a", &[chunk(1)], 1);
    step(&mut source, ShardCommand::TrackUser { user_id: ALICE.into(), move_id: MOVE.into() });
    bulk_copy(&mut source, &mut target, |kv, page| {
        if page == 0 {
            commit(kv, "/b", &[chunk(2)], 2);
        }
    });
    step(&mut target, ShardCommand::AbortImport { user_id: ALICE.into(), move_id: MOVE.into(), from: 1 });
    step(&mut source, ShardCommand::UnfenceUser { user_id: ALICE.into(), move_id: MOVE.into() });
    assert_eq!(footprint_user_records(&target), 0, "the partial copy is gone");
    assert_eq!(refcount(&target, 1), 0);
    commit(&mut source, "/c", &[chunk(3)], 3);
    assert!(stat(&source, "/b").is_ok() && stat(&source, "/c").is_ok());
    let (start, end) = keys::dirty_scope(ALICE);
    assert!(source.scan(&start, &end, 10).unwrap().is_empty(), "the written-key log is dropped");
    assert!(source.get(&keys::meta(keys::TRACKED_USERS)).unwrap().is_none());
}
