//! A cluster group's state machine on a real RocksDB in a temporary
//! directory, fed committed entries directly (no Raft, no network): for tests
//! of what the cluster group accepts, refuses and answers.

#![allow(dead_code)]

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tessera_meta::cluster::{self, ClusterAnswer, ClusterCommand, ClusterQuery};
use tessera_meta::command::{GroupCommand, GroupResponse, Proposal, TesseraApplier};
use tessera_meta::raft::{MetaDb, StateMachineStore};

pub struct ClusterGroup {
    _dir: tempfile::TempDir,
    pub sm: StateMachineStore,
    index: u64,
}

impl ClusterGroup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(dir.path()).unwrap();
        Self { _dir: dir, sm: StateMachineStore::new(db, 0, Arc::new(TesseraApplier)), index: 0 }
    }

    /// Applies `cmd` as the next committed log entry.
    pub async fn apply(&mut self, cmd: ClusterCommand) -> GroupResponse {
        self.index += 1;
        let proposal = Proposal { request_id: None, command: GroupCommand::Cluster(cmd) };
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(proposal),
        };
        self.sm.apply([entry]).await.unwrap().remove(0)
    }

    pub fn query(&self, q: ClusterQuery) -> ClusterAnswer {
        cluster::query(&self.sm.view(), &q).unwrap()
    }
}
