//! The cluster group's tiering state: block node labels, the tiering configuration
//! and the latest tier-pass record, applied through the state machine on RocksDB.

mod common;

use std::time::Duration;

use tessera_meta::cluster::{
    self, ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse, NodeInfo, NodeKind, TierPassRecord,
};
use tessera_meta::command::{ApplyErrorKind, GroupResponse};
use tessera_meta::tiering::TieringConfig;

const TIERS: &str = r#"
[[tier]]
name = "hot"
demote_after = "30d"

[[tier]]
name = "cold"
label = "cold"
data_shards = 10
parity_shards = 4
compression = "zstd"
"#;

type Group = common::ClusterGroup;

impl common::ClusterGroup {
    async fn epoch_after(&mut self, cmd: ClusterCommand) -> u64 {
        match self.apply(cmd).await {
            GroupResponse::Cluster(Ok(ClusterResponse::Epoch(e))) => e,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn epoch(&self) -> u64 {
        cluster::epoch(&self.sm.view()).unwrap()
    }
}

fn block(id: &str, labels: &[&str]) -> NodeInfo {
    NodeInfo {
        kind: NodeKind::Block,
        id: id.into(),
        addr: format!("http://{id}:7100"),
        zone: "z1".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
}

#[tokio::test]
async fn changing_a_block_nodes_labels_bumps_the_epoch() {
    let mut g = Group::new();
    assert_eq!(g.epoch_after(ClusterCommand::RegisterNode(block("b1", &[]))).await, 1);
    assert_eq!(g.epoch_after(ClusterCommand::RegisterNode(block("b1", &[]))).await, 1, "unchanged: same epoch");
    assert_eq!(g.epoch_after(ClusterCommand::RegisterNode(block("b1", &["cold"]))).await, 2);
    assert_eq!(g.epoch_after(ClusterCommand::RegisterNode(block("b1", &["cold"]))).await, 2);
    assert_eq!(g.epoch_after(ClusterCommand::RegisterNode(block("b1", &["cold", "ssd"]))).await, 3);
    assert_eq!(
        g.query(ClusterQuery::Nodes(NodeKind::Block)),
        ClusterAnswer::Nodes(vec![block("b1", &["cold", "ssd"])])
    );
}

#[test]
fn node_info_without_labels_still_decodes() {
    let old = r#"{"kind":"Block","id":"b1","addr":"http://b1:7100","zone":"z1"}"#;
    assert_eq!(serde_json::from_str::<NodeInfo>(old).unwrap(), block("b1", &[]));
}

#[tokio::test]
async fn tiering_config_is_validated_stored_and_cleared_with_an_epoch_bump() {
    let mut g = Group::new();
    assert_eq!(g.query(ClusterQuery::Tiering), ClusterAnswer::Tiering(None));
    let config = TieringConfig::from_toml(TIERS).unwrap();
    assert_eq!(g.epoch_after(ClusterCommand::SetTiering(Some(config.clone()))).await, 1);
    assert_eq!(g.query(ClusterQuery::Tiering), ClusterAnswer::Tiering(Some(config.clone())));

    // Invalid: refused with the validation message, nothing stored, epoch kept.
    let mut bad = config.clone();
    bad.tiers[1].demote_after = Some(Duration::from_secs(60));
    match g.apply(ClusterCommand::SetTiering(Some(bad))).await {
        GroupResponse::Cluster(Err(e)) => {
            assert_eq!(e.kind, ApplyErrorKind::InvalidArgument);
            assert!(e.message.contains("\"cold\"") && e.message.contains("demote_after"), "{}", e.message);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(g.epoch(), 1);
    assert_eq!(g.query(ClusterQuery::Tiering), ClusterAnswer::Tiering(Some(config.clone())));

    assert_eq!(g.epoch_after(ClusterCommand::SetTiering(None)).await, 2);
    assert_eq!(g.query(ClusterQuery::Tiering), ClusterAnswer::Tiering(None));
    assert_eq!(g.query(ClusterQuery::Epoch), ClusterAnswer::Epoch(2));
}

#[tokio::test]
async fn the_latest_tier_pass_is_kept() {
    let mut g = Group::new();
    assert_eq!(g.query(ClusterQuery::LastTierPass), ClusterAnswer::LastTierPass(None));
    let mut record = TierPassRecord {
        started_at_ms: 1,
        updated_at_ms: 2,
        by: "cli".into(),
        phase: "list".into(),
        nodes_total: 6,
        ..Default::default()
    };
    assert_eq!(
        g.apply(ClusterCommand::RecordTierPass(record.clone())).await,
        GroupResponse::Cluster(Ok(ClusterResponse::Done))
    );
    assert_eq!(g.query(ClusterQuery::LastTierPass), ClusterAnswer::LastTierPass(Some(record.clone())));
    record.phase = "done".into();
    record.finished_at_ms = Some(9);
    record.chunks_demoted = 3;
    record.errors = vec!["node b4 unreachable".into()];
    g.apply(ClusterCommand::RecordTierPass(record.clone())).await;
    assert_eq!(g.query(ClusterQuery::LastTierPass), ClusterAnswer::LastTierPass(Some(record)));
    assert_eq!(g.epoch(), 0, "a tier pass record is not a placement change");
}
