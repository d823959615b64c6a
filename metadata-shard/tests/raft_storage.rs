//! The RocksDB log and state-machine stores against openraft's storage
//! conformance suite, plus isolation of groups sharing one RocksDB.

use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder};
use tessera_meta::cluster::{ClusterCommand, ClusterResponse, User};
use tessera_meta::command::{GroupCommand, GroupResponse, Proposal, TesseraApplier};
use tessera_meta::raft::{LogStore, MetaDb, StateMachineStore, StorageError, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = MetaDb::open(dir.path()).expect("open rocksdb");
        // A non-zero group id, with a neighbour group holding data, checks
        // that key prefixes keep groups apart.
        let group = 7;
        Ok((dir, LogStore::new(db.clone(), group), StateMachineStore::new(db, group, Arc::new(TesseraApplier))))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(RocksBuilder).expect("storage suite");
}

fn entry(index: u64, payload: EntryPayload<TypeConfig>) -> Entry<TypeConfig> {
    Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
}

fn user(id: &str) -> Proposal {
    proposal(None, id)
}

fn proposal(request_id: Option<&str>, id: &str) -> Proposal {
    let command = GroupCommand::Cluster(ClusterCommand::CreateUser(User {
        user_id: id.into(),
        display_name: id.into(),
        access_key: format!("AK{id}"),
        secret_key: "secret-secret".into(),
        created_at_ms: 0,
    }));
    Proposal { request_id: request_id.map(str::to_owned), command }
}

#[tokio::test]
async fn groups_in_one_rocksdb_are_isolated_and_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = MetaDb::open(dir.path()).unwrap();
        let mut log1 = LogStore::new(db.clone(), 1);
        let mut log2 = LogStore::new(db.clone(), 2);
        let mut sm1 = StateMachineStore::new(db.clone(), 1, Arc::new(TesseraApplier));
        let mut sm2 = StateMachineStore::new(db.clone(), 2, Arc::new(TesseraApplier));
        let entries: Vec<_> = (1..=10).map(|i| entry(i, EntryPayload::Blank)).collect();
        for log in [&mut log1, &mut log2] {
            log.blocking_append(entries.clone()).await.unwrap();
        }
        log1.truncate(LogId::new(CommittedLeaderId::new(1, 1), 6)).await.unwrap();
        log2.purge(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.unwrap();
        assert_eq!(log1.try_get_log_entries(0..100).await.unwrap().len(), 5);
        assert_eq!(log2.try_get_log_entries(0..100).await.unwrap().len(), 7);

        let r = sm1.apply([entry(1, EntryPayload::Normal(user("alice")))]).await.unwrap();
        assert!(matches!(&r[0], GroupResponse::Cluster(Ok(ClusterResponse::UserCreated(u))) if u == "alice"));
        // Same command again is rejected deterministically, and writes nothing.
        let r = sm1.apply([entry(2, EntryPayload::Normal(user("alice")))]).await.unwrap();
        assert!(matches!(&r[0], GroupResponse::Cluster(Err(_))));
        let r = sm2.apply([entry(1, EntryPayload::Normal(user("alice")))]).await.unwrap();
        assert!(matches!(&r[0], GroupResponse::Cluster(Ok(_))), "group 2 does not see group 1's user");
    }
    let db = MetaDb::open(dir.path()).unwrap();
    let mut log1 = LogStore::new(db.clone(), 1);
    let mut sm1 = StateMachineStore::new(db.clone(), 1, Arc::new(TesseraApplier));
    assert_eq!(log1.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(5));
    let (applied, _) = sm1.applied_state().await.unwrap();
    assert_eq!(applied.map(|l| l.index), Some(2));
    let user = tessera_meta::cluster::user_by_access_key(&sm1.view(), "AKalice").unwrap().unwrap();
    assert_eq!(user.user_id, "alice");

    // A snapshot of group 1 installed into a fresh group 3 reproduces its state.
    let snap = sm1.get_snapshot_builder().await.build_snapshot().await.unwrap();
    let mut sm3 = StateMachineStore::new(db.clone(), 3, Arc::new(TesseraApplier));
    sm3.install_snapshot(&snap.meta, snap.snapshot).await.unwrap();
    assert_eq!(sm3.applied_state().await.unwrap().0.map(|l| l.index), Some(2));
    assert!(tessera_meta::cluster::user_by_access_key(&sm3.view(), "AKalice").unwrap().is_some());
    let current = sm3.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.snapshot_id, snap.meta.snapshot_id);
}

#[tokio::test]
async fn a_retried_request_id_is_answered_from_memory_not_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = MetaDb::open(dir.path()).unwrap();
    let mut sm = StateMachineStore::new(db, 1, Arc::new(TesseraApplier));
    let first = sm.apply([entry(1, EntryPayload::Normal(proposal(Some("req-1"), "bob")))]).await.unwrap();
    assert!(matches!(&first[0], GroupResponse::Cluster(Ok(ClusterResponse::UserCreated(_)))));
    // The same request committed again (a client retry after a lost answer)
    // gets the first answer, not "already exists".
    let again = sm.apply([entry(2, EntryPayload::Normal(proposal(Some("req-1"), "bob")))]).await.unwrap();
    assert_eq!(again, first);
    // A different request for the same user is a new command and is refused.
    let other = sm.apply([entry(3, EntryPayload::Normal(proposal(Some("req-2"), "bob")))]).await.unwrap();
    assert!(matches!(&other[0], GroupResponse::Cluster(Err(_))));
}
