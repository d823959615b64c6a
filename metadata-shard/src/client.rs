//! `MetaClient`: how routers, tools and tests talk to Raft groups. It finds
//! each group's leader (following "not the leader" answers, trying the other
//! endpoints when a process is down) and retries until a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tessera_proto::raft as pb;
use tessera_proto::raft::meta_admin_client::MetaAdminClient;
use tessera_proto::request_id::{propagate, Propagate};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A `MetaAdmin` client whose calls carry the current request id.
pub type AdminClient = MetaAdminClient<InterceptedService<Channel, Propagate>>;
use tonic::{Code, Status};

use crate::admin::LEADER_ADDR;
use crate::cluster::{ClusterCommand, ShardGroup};
use crate::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse, Proposal};
use crate::model::{Permission, ShardCommand};
use crate::raft::network::PeerChannels;
use crate::raft::{GroupId, NodeId};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("metadata group {group} unavailable after {waited:?}: {last}")]
    Unavailable { group: GroupId, waited: Duration, last: String },
    #[error("rejected: {0}")]
    Rejected(Status),
    #[error("undecodable answer: {0}")]
    Decode(String),
}

pub struct MetaClient {
    endpoints: Vec<String>,
    channels: PeerChannels,
    leaders: Mutex<HashMap<GroupId, String>>,
    next: Mutex<usize>,
    /// How long one call may keep retrying (elections take about a second).
    pub deadline: Duration,
}

/// True for failures that another replica (or a later attempt) may not have.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::NotFound
            | Code::FailedPrecondition
    )
}

impl MetaClient {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            channels: PeerChannels::default(),
            leaders: Mutex::default(),
            next: Mutex::new(0),
            deadline: Duration::from_secs(15),
        }
    }

    fn client(&self, addr: &str) -> Result<AdminClient, Status> {
        self.channels
            .channel(addr)
            .map(|c| MetaAdminClient::with_interceptor(c, propagate as Propagate))
            .map_err(|e| Status::unavailable(format!("bad address {addr}: {e}")))
    }

    fn pick(&self, group: GroupId) -> String {
        if let Some(addr) = self.leaders.lock().unwrap_or_else(|p| p.into_inner()).get(&group) {
            return addr.clone();
        }
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        *next = next.wrapping_add(1);
        self.endpoints[*next % self.endpoints.len().max(1)].clone()
    }

    /// Runs `call` against the group's leader, following redirects.
    pub async fn with_leader<T, F, Fut>(&self, group: GroupId, call: F) -> Result<T, ClientError>
    where
        F: Fn(AdminClient) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            let addr = self.pick(group);
            let result = match self.client(&addr) {
                Ok(c) => call(c).await,
                Err(e) => Err(e),
            };
            let status = match result {
                Ok(v) => return Ok(v),
                Err(s) => s,
            };
            if !retryable(&status) {
                return Err(ClientError::Rejected(status));
            }
            let leader = status.metadata().get(LEADER_ADDR).and_then(|v| v.to_str().ok()).map(str::to_owned);
            {
                let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
                match &leader {
                    Some(l) if *l != addr => {
                        leaders.insert(group, l.clone());
                    }
                    _ => {
                        leaders.remove(&group);
                    }
                }
            }
            if started.elapsed() >= self.deadline {
                return Err(ClientError::Unavailable {
                    group,
                    waited: started.elapsed(),
                    last: status.message().to_owned(),
                });
            }
            if leader.is_none() || leader.as_deref() == Some(addr.as_str()) {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
    }

    /// Proposes a command to the group's leader; returns once it is committed
    /// on a quorum and applied.
    /// Retries reuse one request id, so the command is applied at most once.
    pub async fn propose(&self, group: GroupId, cmd: &GroupCommand) -> Result<(GroupResponse, u64), ClientError> {
        let proposal = Proposal { request_id: Some(new_request_id()), command: cmd.clone() };
        let bytes = serde_json::to_vec(&proposal).map_err(|e| ClientError::Decode(e.to_string()))?;
        let reply = self
            .with_leader(group, |mut c| {
                let command = bytes.clone().into();
                async move { c.propose(pb::ProposeRequest { group_id: group, command }).await.map(|r| r.into_inner()) }
            })
            .await?;
        let response = serde_json::from_slice(&reply.response).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((response, reply.log_index))
    }

    /// Linearizable read through the group's leader.
    pub async fn query(&self, group: GroupId, q: &GroupQuery) -> Result<GroupAnswer, ClientError> {
        self.query_wait(group, q, Duration::ZERO).await
    }

    /// Like [`query`](Self::query); a change-log read that finds nothing new
    /// waits up to `wait` for a change (long-poll).
    pub async fn query_wait(&self, group: GroupId, q: &GroupQuery, wait: Duration) -> Result<GroupAnswer, ClientError> {
        let bytes = serde_json::to_vec(q).map_err(|e| ClientError::Decode(e.to_string()))?;
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let reply = self
            .with_leader(group, |mut c| {
                let query = bytes.clone().into();
                async move {
                    c.query(pb::QueryRequest { group_id: group, query, local: false, wait_ms })
                        .await
                        .map(|r| r.into_inner())
                }
            })
            .await?;
        serde_json::from_slice(&reply.response).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Reads one replica's applied state as it is (no leader round trip).
    pub async fn query_local(&self, addr: &str, group: GroupId, q: &GroupQuery) -> Result<GroupAnswer, ClientError> {
        let bytes = serde_json::to_vec(q).map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut c = self.client(addr).map_err(ClientError::Rejected)?;
        let reply = c
            .query(pb::QueryRequest { group_id: group, query: bytes.into(), local: true, wait_ms: 0 })
            .await
            .map_err(ClientError::Rejected)?
            .into_inner();
        serde_json::from_slice(&reply.response).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Adds `node` (at `addr`) as a voter of `group`.
    pub async fn add_replica(&self, group: GroupId, node: NodeId, addr: &str) -> Result<Vec<NodeId>, ClientError> {
        let reply = self
            .with_leader(group, |mut c| {
                let req = pb::ReplicaRequest { group_id: group, node_id: node, addr: addr.to_owned() };
                async move { c.add_replica(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(reply.voters)
    }

    /// Creates `group` on the given replicas: the first one initializes it,
    /// the others are added one by one (each catches up before the next).
    pub async fn create_group(
        &self,
        group: GroupId,
        replicas: &[(NodeId, String)],
    ) -> Result<Vec<NodeId>, ClientError> {
        let Some((_, first)) = replicas.first() else {
            return Err(ClientError::Rejected(Status::invalid_argument("a group needs at least one replica")));
        };
        let mut c = self.client(first).map_err(ClientError::Rejected)?;
        c.init_group(pb::HostGroupRequest { group_id: group }).await.map_err(ClientError::Rejected)?;
        let mut voters = vec![replicas[0].0];
        for (node, addr) in &replicas[1..] {
            voters = self.add_replica_via(group, *node, addr, first).await?;
        }
        Ok(voters)
    }

    /// Creates a metadata shard on `replicas` and records it in the cluster
    /// group's shard map with `vnodes` ring positions.
    pub async fn create_shard(
        &self,
        group: GroupId,
        replicas: &[(NodeId, String)],
        vnodes: u32,
    ) -> Result<Vec<NodeId>, ClientError> {
        if group == 0 {
            return Err(ClientError::Rejected(Status::invalid_argument("group 0 is the cluster group")));
        }
        let voters = self.create_group(group, replicas).await?;
        let entry = ShardGroup { group_id: group, replicas: voters.clone(), vnodes };
        match self.propose(0, &GroupCommand::Cluster(ClusterCommand::PutShardGroup(entry))).await? {
            (GroupResponse::Cluster(Ok(_)), _) => Ok(voters),
            (other, _) => Err(ClientError::Rejected(Status::internal(format!("recording the shard: {other:?}")))),
        }
    }

    /// Shares `path` of `owner` (on `owner_shard`) with `grantee` (whose
    /// data lives on `grantee_shard`): the share on the owner's shard, then
    /// the "shared with me" entry on the grantee's. Both commands are
    /// idempotent under retry, so a caller that sees an error may call again.
    #[allow(clippy::too_many_arguments)]
    pub async fn share(
        &self,
        owner_shard: GroupId,
        grantee_shard: GroupId,
        owner: &str,
        path: &str,
        grantee: &str,
        permission: Permission,
        expires_at_ms: Option<i64>,
        device_id: &str,
        now_ms: i64,
    ) -> Result<(), ClientError> {
        let share = ShardCommand::Share {
            owner: owner.into(),
            path: path.into(),
            grantee: grantee.into(),
            permission,
            expires_at_ms,
            device_id: device_id.into(),
            now_ms,
        };
        self.shard_ok(owner_shard, share).await?;
        let entry = ShardCommand::AddSharedWithMe {
            grantee: grantee.into(),
            owner: owner.into(),
            path: path.into(),
            permission,
            expires_at_ms,
            now_ms,
        };
        self.shard_ok(grantee_shard, entry).await
    }

    /// Proposes a shard command and turns a model rejection into an error.
    pub async fn shard_ok(&self, group: GroupId, cmd: ShardCommand) -> Result<(), ClientError> {
        match self.propose(group, &GroupCommand::Shard(cmd)).await? {
            (GroupResponse::Shard(Ok(_)), _) => Ok(()),
            (GroupResponse::Shard(Err(e)), _) => Err(ClientError::Rejected(Status::failed_precondition(e.to_string()))),
            (other, _) => Err(ClientError::Decode(format!("unexpected answer {other:?}"))),
        }
    }

    async fn add_replica_via(
        &self,
        group: GroupId,
        node: NodeId,
        addr: &str,
        hint: &str,
    ) -> Result<Vec<NodeId>, ClientError> {
        self.leaders.lock().unwrap_or_else(|p| p.into_inner()).entry(group).or_insert_with(|| hint.to_owned());
        self.add_replica(group, node, addr).await
    }

    pub async fn remove_replica(&self, group: GroupId, node: NodeId) -> Result<Vec<NodeId>, ClientError> {
        let reply = self
            .with_leader(group, |mut c| {
                let req = pb::ReplicaRequest { group_id: group, node_id: node, addr: String::new() };
                async move { c.remove_replica(req).await.map(|r| r.into_inner()) }
            })
            .await?;
        Ok(reply.voters)
    }

    /// Raft status of every group hosted at `addr`.
    pub async fn status(&self, addr: &str) -> Result<pb::StatusReply, ClientError> {
        let mut c = self.client(addr).map_err(ClientError::Rejected)?;
        Ok(c.status(pb::StatusRequest {}).await.map_err(ClientError::Rejected)?.into_inner())
    }
}

/// 128 random bits as hex.
fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
