//! The cluster group keeps every user on the group holding its data: shard-map
//! changes that would re-hash a user elsewhere are refused until the user is
//! pinned, a group is not removed while anyone lives on it or moves through
//! it, and a user move commits or aborts exactly once.

mod common;

use tessera_meta::cluster::{self, ClusterAnswer, ClusterCommand, ClusterQuery, MoveState, ShardGroup, User, UserMove};
use tessera_meta::command::{ApplyErrorKind, GroupResponse};

type Group = common::ClusterGroup;

/// The cluster group's answer: `Err` carries the refusal's kind and message.
fn outcome(resp: GroupResponse) -> Result<(), (ApplyErrorKind, String)> {
    match resp {
        GroupResponse::Cluster(Ok(_)) => Ok(()),
        GroupResponse::Cluster(Err(e)) => Err((e.kind, e.message)),
        other => panic!("unexpected {other:?}"),
    }
}

impl common::ClusterGroup {
    fn group_of(&self, user: &str) -> Option<u64> {
        cluster::user_moves::user_placement(&self.sm.view()).unwrap().group_for_user(user)
    }

    fn moves_committed(&self) -> u64 {
        match self.query(ClusterQuery::MovesCommitted) {
            ClusterAnswer::MovesCommitted(n) => n,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn outcome_of(g: &mut Group, cmd: ClusterCommand) -> Result<(), (ApplyErrorKind, String)> {
    outcome(g.apply(cmd).await)
}

fn shard(group_id: u64) -> ClusterCommand {
    ClusterCommand::PutShardGroup(ShardGroup { group_id, replicas: vec![1], vnodes: 64 })
}

fn user(id: &str) -> ClusterCommand {
    ClusterCommand::CreateUser(User {
        user_id: id.into(),
        display_name: id.into(),
        access_key: format!("AK-{id}"),
        secret_key: "a-long-enough-secret".into(),
        created_at_ms: 0,
    })
}

fn users() -> Vec<String> {
    (0..40).map(|i| format!("user-{i}")).collect()
}

fn a_move(user: &str, from: u64, to: u64, id: &str) -> ClusterCommand {
    ClusterCommand::BeginUserMove(UserMove {
        user_id: user.into(),
        move_id: id.into(),
        from,
        to,
        state: MoveState::Copying,
        started_at_ms: 0,
        touched_at_ms: 0,
        copied_records: 0,
        copied_bytes: 0,
        by: "test".into(),
    })
}

#[tokio::test]
async fn adding_a_group_that_would_rehash_users_is_refused_until_they_are_pinned() {
    let mut g = Group::new();
    outcome_of(&mut g, shard(1)).await.unwrap();
    for u in users() {
        outcome_of(&mut g, user(&u)).await.unwrap();
    }
    let (kind, message) = outcome_of(&mut g, shard(2)).await.unwrap_err();
    assert_eq!(kind, ApplyErrorKind::InvalidArgument);
    assert!(message.contains("pin them"), "{message}");
    assert!(users().iter().all(|u| g.group_of(u) == Some(1)));
    // Pinned where they are, the group can be added and nobody changes group.
    for u in users() {
        outcome_of(&mut g, ClusterCommand::AssignUser { user_id: u, group_id: Some(1) }).await.unwrap();
    }
    outcome_of(&mut g, shard(2)).await.unwrap();
    assert!(users().iter().all(|u| g.group_of(u) == Some(1)));
    // An assignment that would move a user without a move is refused too.
    let (kind, _) = outcome_of(&mut g, ClusterCommand::AssignUser { user_id: "user-0".into(), group_id: Some(2) })
        .await
        .unwrap_err();
    assert_eq!(kind, ApplyErrorKind::InvalidArgument);
    assert_eq!(g.group_of("user-0"), Some(1));
}

#[tokio::test]
async fn a_group_is_removed_only_once_nobody_lives_on_or_moves_through_it() {
    let mut g = Group::new();
    outcome_of(&mut g, shard(1)).await.unwrap();
    outcome_of(&mut g, shard(2)).await.unwrap();
    for u in users() {
        outcome_of(&mut g, user(&u)).await.unwrap();
    }
    let on_two: Vec<String> = users().into_iter().filter(|u| g.group_of(u) == Some(2)).collect();
    assert!(!on_two.is_empty() && on_two.len() < users().len(), "the ring spreads users over both groups");
    let (_, message) = outcome_of(&mut g, ClusterCommand::RemoveShardGroup { group_id: 2 }).await.unwrap_err();
    assert!(message.contains("still holds"), "{message}");
    // Group 1 keeps the chunk location records, so it goes last.
    let (_, message) = outcome_of(&mut g, ClusterCommand::RemoveShardGroup { group_id: 1 }).await.unwrap_err();
    assert!(message.contains("still holds") || message.contains("removed last"), "{message}");

    for (i, u) in on_two.iter().enumerate() {
        let id = format!("m{i}");
        outcome_of(&mut g, a_move(u, 2, 1, &id)).await.unwrap();
        if i == 0 {
            // While a move runs, neither of its groups can go.
            let (_, message) = outcome_of(&mut g, ClusterCommand::RemoveShardGroup { group_id: 2 }).await.unwrap_err();
            assert!(message.contains("takes part in the move") || message.contains("still holds"), "{message}");
        }
        outcome_of(&mut g, ClusterCommand::CommitUserMove { user_id: u.clone(), move_id: id.clone() }).await.unwrap();
        assert_eq!(g.group_of(u), Some(1));
        outcome_of(&mut g, ClusterCommand::FinishUserMove { user_id: u.clone(), move_id: id }).await.unwrap();
    }
    assert_eq!(g.moves_committed(), on_two.len() as u64);
    outcome_of(&mut g, ClusterCommand::RemoveShardGroup { group_id: 2 }).await.unwrap();
    assert!(users().iter().all(|u| g.group_of(u) == Some(1)));
}

#[tokio::test]
async fn a_move_commits_or_aborts_once_and_only_from_its_source() {
    let mut g = Group::new();
    outcome_of(&mut g, shard(1)).await.unwrap();
    outcome_of(&mut g, shard(2)).await.unwrap();
    outcome_of(&mut g, user("ann")).await.unwrap();
    let from = g.group_of("ann").unwrap();
    let to = if from == 1 { 2 } else { 1 };
    // Not from a group the user is not on, not to a group that does not exist.
    assert_eq!(outcome_of(&mut g, a_move("ann", to, from, "x")).await.unwrap_err().0, ApplyErrorKind::Conflict);
    assert_eq!(outcome_of(&mut g, a_move("ann", from, 9, "x")).await.unwrap_err().0, ApplyErrorKind::NotFound);
    outcome_of(&mut g, a_move("ann", from, to, "m1")).await.unwrap();
    outcome_of(&mut g, a_move("ann", from, to, "m1")).await.unwrap();
    assert_eq!(outcome_of(&mut g, a_move("ann", from, to, "m2")).await.unwrap_err().0, ApplyErrorKind::AlreadyExists);
    // Finishing needs a decision first.
    assert!(outcome_of(&mut g, ClusterCommand::FinishUserMove { user_id: "ann".into(), move_id: "m1".into() })
        .await
        .is_err());
    outcome_of(&mut g, ClusterCommand::AbortUserMove { user_id: "ann".into(), move_id: "m1".into() }).await.unwrap();
    let commit = ClusterCommand::CommitUserMove { user_id: "ann".into(), move_id: "m1".into() };
    assert_eq!(outcome_of(&mut g, commit).await.unwrap_err().0, ApplyErrorKind::Conflict);
    assert_eq!(g.group_of("ann"), Some(from));
    assert_eq!(g.moves_committed(), 0);
    outcome_of(&mut g, ClusterCommand::FinishUserMove { user_id: "ann".into(), move_id: "m1".into() }).await.unwrap();

    outcome_of(&mut g, a_move("ann", from, to, "m3")).await.unwrap();
    outcome_of(&mut g, ClusterCommand::CommitUserMove { user_id: "ann".into(), move_id: "m3".into() }).await.unwrap();
    outcome_of(&mut g, ClusterCommand::CommitUserMove { user_id: "ann".into(), move_id: "m3".into() }).await.unwrap();
    assert_eq!(g.moves_committed(), 1, "a repeated commit counts once");
    let abort = ClusterCommand::AbortUserMove { user_id: "ann".into(), move_id: "m3".into() };
    assert_eq!(outcome_of(&mut g, abort).await.unwrap_err().0, ApplyErrorKind::Conflict);
    assert_eq!(g.group_of("ann"), Some(to));
}
