//! Records of the cluster group that do not decode are errors naming the key:
//! reads of nodes, users, the shard map and the tiering configuration fail
//! instead of leaving the record out (a shard group skipped from the map would
//! drop its users from view and its chunk references from GC's mark phase), and
//! a placement epoch that does not decode refuses the commands that bump it
//! instead of restarting the epoch from 0.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tessera_meta::cluster::{self, ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse, NodeInfo, NodeKind};
use tessera_meta::command::{
    Applier, ApplyErrorKind, GroupCommand, GroupResponse, Proposal, StorageFailure, TesseraApplier, Writes,
};
use tessera_meta::raft::state_machine::GroupView;
use tessera_meta::raft::{MetaDb, StateMachineStore};

/// The real applier, plus one command that stands for a damaged disk: setting the
/// shard config of max_versions 999_999 writes the raw bytes below instead.
struct DamagingApplier {
    damage: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Applier for DamagingApplier {
    fn apply(&self, view: &GroupView<'_>, cmd: &GroupCommand) -> Result<(GroupResponse, Writes), StorageFailure> {
        match cmd {
            GroupCommand::SetShardConfig(c) if c.max_versions == 999_999 => Ok((
                GroupResponse::ShardConfigSet,
                self.damage.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
            )),
            _ => TesseraApplier.apply(view, cmd),
        }
    }
}

struct Group {
    _dir: tempfile::TempDir,
    sm: StateMachineStore,
    index: u64,
}

impl Group {
    fn new(damage: &[(&[u8], &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(dir.path()).unwrap();
        let damage = damage.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        Self { _dir: dir, sm: StateMachineStore::new(db, 0, Arc::new(DamagingApplier { damage })), index: 0 }
    }

    async fn apply(&mut self, command: GroupCommand) -> GroupResponse {
        self.index += 1;
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Proposal { request_id: None, command }),
        };
        self.sm.apply([entry]).await.unwrap().remove(0)
    }

    async fn damage(&mut self) {
        let config = tessera_meta::model::ShardConfig { max_versions: 999_999, ..Default::default() };
        assert_eq!(self.apply(GroupCommand::SetShardConfig(config)).await, GroupResponse::ShardConfigSet);
    }

    fn query(&self, q: ClusterQuery) -> Result<ClusterAnswer, StorageFailure> {
        cluster::query(&self.sm.view(), &q)
    }
}

fn block(id: &str) -> ClusterCommand {
    ClusterCommand::RegisterNode(NodeInfo {
        kind: NodeKind::Block,
        id: id.into(),
        addr: format!("{id}:7100"),
        zone: "z".into(),
        labels: vec![],
    })
}

fn group_key(id: u64) -> Vec<u8> {
    let mut k = b"group/".to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

#[tokio::test]
async fn a_record_that_does_not_decode_fails_the_read_and_names_its_key() {
    let shard7 = group_key(7);
    let mut g = Group::new(&[
        (b"node/block/block-9", b"{not json"),
        (b"user/mallory", b"\xff\xfe"),
        (&shard7, b"[1, 2"),
        (b"tiering", b"nothing"),
    ]);
    assert!(matches!(g.apply(GroupCommand::Cluster(block("block-1"))).await, GroupResponse::Cluster(Ok(_))));
    // Before the damage every read works and sees the good records.
    match g.query(ClusterQuery::Nodes(NodeKind::Block)).unwrap() {
        ClusterAnswer::Nodes(nodes) => assert_eq!(nodes.len(), 1),
        other => panic!("{other:?}"),
    }
    g.damage().await;
    for (query, key) in [
        (ClusterQuery::Nodes(NodeKind::Block), "node/block/block-9"),
        (ClusterQuery::Users, "user/mallory"),
        (ClusterQuery::ShardMap, "group/"),
        (ClusterQuery::Tiering, "tiering"),
    ] {
        let err = g.query(query.clone()).expect_err("a record that does not decode is an error");
        assert!(err.0.contains("cannot be decoded") && err.0.contains(key), "{query:?}: {err}");
    }
    // Other records are still served.
    assert!(matches!(g.query(ClusterQuery::Epoch).unwrap(), ClusterAnswer::Epoch(1)));
}

#[tokio::test]
async fn a_placement_epoch_that_does_not_decode_refuses_the_commands_that_bump_it() {
    let mut g = Group::new(&[(b"epoch", b"twelve")]);
    match g.apply(GroupCommand::Cluster(block("block-1"))).await {
        GroupResponse::Cluster(Ok(ClusterResponse::Epoch(1))) => {}
        other => panic!("{other:?}"),
    }
    g.damage().await;
    for cmd in [block("block-2"), ClusterCommand::RemoveNode { kind: NodeKind::Block, id: "block-1".into() }] {
        match g.apply(GroupCommand::Cluster(cmd)).await {
            GroupResponse::Cluster(Err(e)) => assert_eq!(e.kind, ApplyErrorKind::Corrupt, "{e:?}"),
            other => panic!("a command on a corrupt epoch must be refused, got {other:?}"),
        }
    }
    assert!(g.query(ClusterQuery::Epoch).is_err(), "reading the epoch reports the damage");
    // Nothing was written by the refused commands: block-1 is still registered, block-2 is not.
    match g.query(ClusterQuery::Nodes(NodeKind::Block)).unwrap() {
        ClusterAnswer::Nodes(nodes) => assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["block-1"]),
        other => panic!("{other:?}"),
    }
}
