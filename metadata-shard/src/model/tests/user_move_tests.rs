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
    // Commit happens in the cluster group; then the drop (marker first, then pages), then activate.
    let drop = ShardCommand::DropUser { user_id: ALICE.into(), move_id: MOVE.into(), to: 2 };
    step(&mut source, drop.clone());
    let (start, end) = keys::dirty_scope(ALICE);
    assert!(!source.scan(&start, &end, 10).unwrap().is_empty(), "the written-key log outlives the hand-over");
    assert!(source.get(&keys::meta(keys::TRACKED_USERS)).unwrap().is_none(), "but no longer grows");
    drop_pages(&mut source, drop);
    assert!(source.scan(&start, &end, 10).unwrap().is_empty(), "and goes with the drop pages");
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
    let abort = ShardCommand::AbortImport { user_id: ALICE.into(), move_id: MOVE.into(), from: 1 };
    step(&mut target, abort.clone());
    step(&mut source, ShardCommand::UnfenceUser { user_id: ALICE.into(), move_id: MOVE.into() });
    drop_pages(&mut target, abort);
    assert_eq!(footprint_user_records(&target), 0, "the partial copy is gone");
    assert_eq!(refcount(&target, 1), 0);
    commit(&mut source, "/c", &[chunk(3)], 3);
    assert!(stat(&source, "/b").is_ok() && stat(&source, "/c").is_ok());
    let (start, end) = keys::dirty_scope(ALICE);
    assert!(source.scan(&start, &end, 10).unwrap().is_empty(), "the written-key log is dropped");
    assert!(source.get(&keys::meta(keys::TRACKED_USERS)).unwrap().is_none());
}

/// Runs a paged drop command until a page removes nothing; the records each page removed.
fn drop_pages(kv: &mut MemKv, cmd: ShardCommand) -> Vec<u64> {
    let mut pages = Vec::new();
    loop {
        match run(kv, cmd.clone()) {
            ShardResponse::UserMoveStep { records: 0 } => return pages,
            ShardResponse::UserMoveStep { records } => pages.push(records),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_large_user_is_dropped_in_pages_and_the_first_page_alone_sends_requests_on() {
    let (mut source, mut target) = (MemKv::default(), MemKv::default());
    // 3,000 files: entries, versions and change events well past one page.
    for i in 0..3_000 {
        commit(&mut source, &format!("/f{i}"), &[chunk(i % 7)], i);
    }
    let total = footprint_user_records(&source);
    assert!(total > 2 * user_move::DROP_PAGE_RECORDS as u64, "{total} records");
    step(&mut source, ShardCommand::TrackUser { user_id: ALICE.into(), move_id: MOVE.into() });
    bulk_copy(&mut source, &mut target, |_, _| {});
    step(&mut source, ShardCommand::FenceUser { user_id: ALICE.into(), move_id: MOVE.into() });

    // The first page: the source sends everyone on, though most records are still there.
    let drop = ShardCommand::DropUser { user_id: ALICE.into(), move_id: MOVE.into(), to: 2 };
    let first = run(&mut source, drop.clone());
    assert_eq!(first, ShardResponse::UserMoveStep { records: 0 }, "the first call only leaves the marker");
    let q = ShardQuery::Stat { user_id: ALICE.into(), path: "/f2999".into(), include_deleted: false };
    assert!(matches!(query(&source, &q), Err(ModelError::UserMoved { to: 2, .. })), "sent on after one page");
    let refused = try_run(&mut source, ShardCommand::CommitVersion(commit_cmd("/x", &[chunk(9)], 9, None, "d")));
    assert!(matches!(refused, Err(ModelError::UserMoved { .. })), "{refused:?}");
    assert_eq!(footprint_user_records(&source), total, "everything is still to drop");
    step(&mut target, ShardCommand::ActivateUser { user_id: ALICE.into(), move_id: MOVE.into() });
    assert!(query(&target, &q).is_ok(), "the target serves the user while the source drops");

    // The rest, a page per command, until a page finds nothing.
    let pages = drop_pages(&mut source, drop.clone());
    assert!(pages.len() >= 3, "{pages:?}");
    assert!(pages.iter().all(|n| *n <= user_move::DROP_PAGE_RECORDS as u64), "{pages:?}");
    assert_eq!(pages.iter().sum::<u64>(), total);
    assert_eq!(footprint_user_records(&source), 0);
    for n in 0..7 {
        assert_eq!(refcount(&source, n), 0, "chunk {n} released on the source");
        assert!(refcount(&target, n) > 0, "chunk {n} held by the target");
    }
    // Run again (a recovering router), it changes nothing.
    assert!(drop_pages(&mut source, drop).is_empty());
}

#[test]
fn a_large_partial_copy_is_aborted_in_pages_and_the_source_writes_on_after_the_first() {
    let (mut source, mut target) = (MemKv::default(), MemKv::default());
    for i in 0..3_000 {
        commit(&mut source, &format!("/f{i}"), &[chunk(i % 5)], i);
    }
    step(&mut source, ShardCommand::TrackUser { user_id: ALICE.into(), move_id: MOVE.into() });
    bulk_copy(&mut source, &mut target, |_, _| {});
    let abort = ShardCommand::AbortImport { user_id: ALICE.into(), move_id: MOVE.into(), from: 1 };
    step(&mut target, abort.clone());
    let q = ShardQuery::Stat { user_id: ALICE.into(), path: "/f1".into(), include_deleted: false };
    assert!(matches!(query(&target, &q), Err(ModelError::UserMoved { to: 1, .. })), "the target sends readers back");
    step(&mut source, ShardCommand::UnfenceUser { user_id: ALICE.into(), move_id: MOVE.into() });
    commit(&mut source, "/after", &[chunk(6)], 6);
    assert!(footprint_user_records(&target) > 0);
    assert!(drop_pages(&mut target, abort).len() >= 1);
    assert_eq!(footprint_user_records(&target), 0, "the partial copy is gone");
    for n in 0..5 {
        assert_eq!(refcount(&target, n), 0);
    }
    assert!(stat(&source, "/after").is_ok() && stat(&source, "/f2999").is_ok());
}
