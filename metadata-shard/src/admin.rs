//! The `MetaAdmin` gRPC service: group hosting and membership, command
//! proposal and reads. Requests for a group this process does not lead fail
//! with FAILED_PRECONDITION carrying the leader in the `tessera-leader-id` and
//! `tessera-leader-addr` metadata, which [`crate::client::MetaClient`] follows.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use openraft::BasicNode;
use tessera_proto::raft as pb;
use tessera_proto::raft::meta_admin_client::MetaAdminClient;
use tessera_proto::raft::meta_admin_server::MetaAdmin;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::command::{GroupAnswer, GroupQuery, Proposal};
use crate::host::{GroupReplica, MetaHost};
use crate::model::QueryResponse;
use crate::raft::NodeId;

pub const LEADER_ID: &str = "tessera-leader-id";
pub const LEADER_ADDR: &str = "tessera-leader-addr";
/// Longest long-poll a change-log read may ask for.
pub const MAX_WAIT_MS: u32 = 60_000;

pub struct AdminService {
    pub host: Arc<MetaHost>,
}

fn not_leader(group: u64, f: &ForwardToLeader<NodeId, BasicNode>) -> Status {
    let mut status = Status::failed_precondition(format!(
        "not the leader of group {group}; leader is {}",
        f.leader_node.as_ref().map(|n| n.addr.as_str()).unwrap_or("unknown (election in progress)")
    ));
    if let Some(id) = f.leader_id {
        if let Ok(v) = MetadataValue::try_from(id.to_string()) {
            status.metadata_mut().insert(LEADER_ID, v);
        }
    }
    if let Some(node) = &f.leader_node {
        if let Ok(v) = MetadataValue::try_from(node.addr.as_str()) {
            status.metadata_mut().insert(LEADER_ADDR, v);
        }
    }
    status
}

fn write_error(group: u64, e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(group, &f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(m)) => Status::failed_precondition(m.to_string()),
        RaftError::Fatal(f) => Status::unavailable(format!("raft stopped: {f}")),
    }
}

impl AdminService {
    fn replica(&self, group: u64) -> Result<Arc<GroupReplica>, Status> {
        self.host
            .group(group)
            .ok_or_else(|| Status::not_found(format!("group {group} is not hosted on node {}", self.host.node_id)))
    }

    fn voters(replica: &GroupReplica) -> BTreeSet<NodeId> {
        replica.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }
}

#[tonic::async_trait]
impl MetaAdmin for AdminService {
    async fn host_group(&self, request: Request<pb::HostGroupRequest>) -> Result<Response<pb::HostGroupReply>, Status> {
        let group = request.into_inner().group_id;
        self.host.host_group(group).await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::HostGroupReply {}))
    }

    async fn init_group(&self, request: Request<pb::HostGroupRequest>) -> Result<Response<pb::HostGroupReply>, Status> {
        let group = request.into_inner().group_id;
        self.host.init_group(group).await.map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::HostGroupReply {}))
    }

    async fn add_replica(&self, request: Request<pb::ReplicaRequest>) -> Result<Response<pb::MembershipReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(req.group_id)?;
        // Fail fast when not the leader, before touching the new replica.
        replica.raft.ensure_linearizable().await.map_err(|e| match e {
            RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                not_leader(req.group_id, &f)
            }
            other => Status::unavailable(other.to_string()),
        })?;
        let uri = format!("http://{}", req.addr);
        let mut target = MetaAdminClient::connect(uri)
            .await
            .map_err(|e| Status::unavailable(format!("cannot reach new replica {}: {e}", req.addr)))?;
        target.host_group(pb::HostGroupRequest { group_id: req.group_id }).await?;
        // Blocks until the learner has caught up (from a snapshot if the log
        // was compacted), then promotes it.
        replica
            .raft
            .add_learner(req.node_id, BasicNode::new(&req.addr), true)
            .await
            .map_err(|e| write_error(req.group_id, e))?;
        let mut voters = Self::voters(&replica);
        voters.insert(req.node_id);
        replica.raft.change_membership(voters.clone(), false).await.map_err(|e| write_error(req.group_id, e))?;
        Ok(Response::new(pb::MembershipReply { voters: Self::voters(&replica).into_iter().collect() }))
    }

    async fn remove_replica(
        &self,
        request: Request<pb::ReplicaRequest>,
    ) -> Result<Response<pb::MembershipReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(req.group_id)?;
        let mut voters = Self::voters(&replica);
        if !voters.remove(&req.node_id) {
            return Err(Status::not_found(format!("node {} is not a voter of group {}", req.node_id, req.group_id)));
        }
        if voters.is_empty() {
            return Err(Status::failed_precondition("cannot remove the last replica of a group"));
        }
        replica.raft.change_membership(voters, false).await.map_err(|e| write_error(req.group_id, e))?;
        Ok(Response::new(pb::MembershipReply { voters: Self::voters(&replica).into_iter().collect() }))
    }

    async fn propose(&self, request: Request<pb::ProposeRequest>) -> Result<Response<pb::ProposeReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(req.group_id)?;
        let cmd: Proposal = serde_json::from_slice(&req.command)
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        let resp = replica.raft.client_write(cmd).await.map_err(|e| write_error(req.group_id, e))?;
        let response = serde_json::to_vec(&resp.data).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ProposeReply { response: response.into(), log_index: resp.log_id.index }))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(req.group_id)?;
        let q: GroupQuery = serde_json::from_slice(&req.query)
            .map_err(|e| Status::invalid_argument(format!("undecodable query: {e}")))?;
        let wait = Duration::from_millis(u64::from(req.wait_ms.min(MAX_WAIT_MS)));
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before reading so a change applied in between still wakes us.
        let mut applied = replica.raft.metrics();
        loop {
            if !req.local {
                // Read index: the leader confirms leadership with a quorum and
                // waits until its state machine has applied up to that point.
                replica.raft.ensure_linearizable().await.map_err(|e| match e {
                    RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f)) => {
                        not_leader(req.group_id, &f)
                    }
                    other => Status::unavailable(other.to_string()),
                })?;
            }
            let answer = crate::command::query(&replica.sm.view(), &q).map_err(|e| Status::internal(e.to_string()))?;
            // A grantee's filtered read that examined as much as one read may and found
            // nothing visible answers at once: the caller reads on from its next cursor.
            let nothing_new = match &answer {
                GroupAnswer::Shard(Ok(QueryResponse::Changes(page))) => page.events.is_empty(),
                GroupAnswer::Shard(Ok(QueryResponse::SharedChanges(s))) => s.page.events.is_empty() && !s.page.has_more,
                _ => false,
            };
            if !nothing_new || tokio::time::Instant::now() >= deadline {
                let response = serde_json::to_vec(&answer).map_err(|e| Status::internal(e.to_string()))?;
                return Ok(Response::new(pb::QueryReply { response: response.into() }));
            }
            // Wake on the next applied entry (or the deadline) and read
            // again; answer at once when the process is stopping.
            tokio::select! {
                _ = tokio::time::timeout_at(deadline, applied.changed()) => {}
                _ = self.host.stopped() => {
                    let response = serde_json::to_vec(&answer).map_err(|e| Status::internal(e.to_string()))?;
                    return Ok(Response::new(pb::QueryReply { response: response.into() }));
                }
            }
        }
    }

    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::StatusReply>, Status> {
        let groups = self
            .host
            .groups()
            .iter()
            .map(|g| {
                let m = g.raft.metrics().borrow().clone();
                let membership = m.membership_config.membership();
                pb::GroupStatus {
                    group_id: g.group,
                    term: m.current_term,
                    leader: m.current_leader,
                    state: format!("{:?}", m.state),
                    last_log_index: m.last_log_index,
                    last_applied: m.last_applied.map(|l| l.index),
                    voters: membership.voter_ids().collect(),
                    learners: membership.learner_ids().collect(),
                    snapshot_index: m.snapshot.map(|l| l.index),
                    purged_index: m.purged.map(|l| l.index),
                }
            })
            .collect();
        Ok(Response::new(pb::StatusReply { node_id: self.host.node_id, groups }))
    }
}
