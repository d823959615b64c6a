//! Trimming the change log past a retention: what goes, the floor a reader must
//! be past, paging, and users in transit left alone.

use super::*;

fn mkdir_at(kv: &mut MemKv, user: &str, path: &str, now_ms: i64) {
    let cmd = ShardCommand::CreateFolder { user_id: user.into(), path: path.into(), device_id: "dev1".into(), now_ms };
    run(kv, cmd);
}

/// Trims every log of events before `before_ms`, `limit` events per command:
/// (events removed, commands run).
fn trim_all(kv: &mut MemKv, before_ms: i64, limit: usize) -> (u64, u64) {
    let (mut from, mut removed, mut commands) = (None, 0, 0);
    loop {
        commands += 1;
        match run(kv, ShardCommand::TrimChangeLog { from, before_ms, limit }) {
            ShardResponse::ChangeLogTrimmed(page) => {
                assert!(page.scanned <= limit as u64, "{page:?}");
                removed += page.removed;
                match page.next {
                    Some(next) => from = Some(next),
                    None => return (removed, commands),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn cursors(events: &[ChangeEvent]) -> Vec<u64> {
    events.iter().map(|e| e.cursor).collect()
}

#[test]
fn events_past_the_retention_go_and_older_cursors_are_told_to_resync() {
    let mut kv = MemKv::default();
    for i in 0..5 {
        mkdir_at(&mut kv, ALICE, &format!("/old{i}"), T0 + i);
    }
    for i in 0..3 {
        mkdir_at(&mut kv, ALICE, &format!("/new{i}"), T0 + 1000 + i);
    }
    for i in 0..4 {
        mkdir_at(&mut kv, BOB, &format!("/b{i}"), T0 + i);
    }
    let (removed, commands) = trim_all(&mut kv, T0 + 1000, 2);
    assert_eq!(removed, 5 + 4, "alice's five old events and all of bob's");
    assert!(commands > 2, "two events per command: {commands} commands");
    assert_eq!(changelog::trimmed_through(&kv, ALICE).unwrap(), 5);
    assert_eq!(changelog::trimmed_through(&kv, BOB).unwrap(), 4);

    // A reader at or past the floor reads on without a gap...
    assert_eq!(cursors(&all_changes(&kv, ALICE, 5)), vec![6, 7, 8]);
    assert_eq!(cursors(&all_changes(&kv, ALICE, 6)), vec![7, 8]);
    // ...one before it is told to resync, never handed a page with a hole.
    for after in [0, 4] {
        let read = changelog::read_changes(&kv, ALICE, after, 10, None);
        assert!(
            matches!(read, Err(ModelError::CursorTooOld { after: a, trimmed_through: 5 }) if a == after),
            "{read:?}"
        );
        let via_query = query(
            &kv,
            &ShardQuery::ReadChanges { user_id: ALICE.into(), after_cursor: after, limit: 10, exclude_device: None },
        );
        assert!(matches!(via_query, Err(ModelError::CursorTooOld { .. })), "{via_query:?}");
    }
    // Past every cursor: the head, as a client about to list the tree reads it.
    let head = changelog::read_changes(&kv, ALICE, u64::MAX, 1, None).unwrap();
    assert_eq!((head.head_cursor, head.events.len()), (8, 0));

    // Bob's log is empty now; a reader at its head follows the next event.
    assert!(all_changes(&kv, BOB, 4).is_empty());
    mkdir_at(&mut kv, BOB, "/b9", T0 + 2000);
    assert_eq!(cursors(&all_changes(&kv, BOB, 4)), vec![5]);

    // Nothing more is old enough: a second walk removes nothing.
    assert_eq!(trim_all(&mut kv, T0 + 1000, 2).0, 0);
    assert_eq!(changelog::trimmed_through(&kv, ALICE).unwrap(), 5);
}

#[test]
fn a_user_moving_out_keeps_the_whole_log_and_the_floor_is_one_of_the_users_records() {
    let mut kv = MemKv::default();
    for i in 0..3 {
        mkdir_at(&mut kv, ALICE, &format!("/a{i}"), T0 + i);
        mkdir_at(&mut kv, BOB, &format!("/b{i}"), T0 + i);
    }
    run(&mut kv, ShardCommand::TrackUser { user_id: BOB.into(), move_id: "m1".into() });
    run(&mut kv, ShardCommand::FenceUser { user_id: BOB.into(), move_id: "m1".into() });
    assert_eq!(trim_all(&mut kv, T0 + 1000, 100).0, 3, "only alice's events go");
    assert_eq!(changelog::trimmed_through(&kv, BOB).unwrap(), 0);
    assert_eq!(cursors(&all_changes(&kv, BOB, 0)), vec![1, 2, 3]);
    // A move copies the floor with the rest of the user's records.
    assert!(keys::is_user_record(&keys::change_floor(ALICE)));
    assert!(keys::user_key_ranges(ALICE)
        .iter()
        .any(|(start, end, _)| start.as_slice() <= keys::change_floor(ALICE).as_slice()
            && keys::change_floor(ALICE).as_slice() < end.as_slice()));
}

#[test]
fn change_keys_parse_back_to_their_user_and_cursor() {
    let key = keys::change("carol", 42);
    assert_eq!(keys::parse_change(&key), Some(("carol", 42)));
    assert_eq!(keys::parse_change(b"G"), None);
    assert_eq!(keys::parse_change(&keys::change_head("carol")), None);
}
