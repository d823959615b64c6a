//! Incoming Raft messages: decode, route by group id to the hosted replica.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tessera_proto::raft::raft_transport_server::RaftTransport;
use tessera_proto::raft::{RaftReply, RaftRequest};
use tonic::{Request, Response, Status};

use crate::host::{GroupReplica, MetaHost};

pub struct TransportService {
    pub host: Arc<MetaHost>,
}

fn decode<T: DeserializeOwned>(req: &RaftRequest) -> Result<T, Status> {
    serde_json::from_slice(&req.payload).map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
}

fn reply<T: Serialize, E: Serialize>(result: Result<T, E>) -> Result<Response<RaftReply>, Status> {
    let (payload, is_error) = match &result {
        Ok(v) => (serde_json::to_vec(v), false),
        Err(e) => (serde_json::to_vec(e), true),
    };
    let payload = payload.map_err(|e| Status::internal(format!("encoding raft reply: {e}")))?;
    Ok(Response::new(RaftReply { payload: payload.into(), is_error }))
}

impl TransportService {
    fn replica(&self, req: &RaftRequest) -> Result<Arc<GroupReplica>, Status> {
        self.host.group(req.group_id).ok_or_else(|| {
            Status::not_found(format!("group {} is not hosted on node {}", req.group_id, self.host.node_id))
        })
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(&req)?;
        reply(replica.raft.append_entries(decode(&req)?).await)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(&req)?;
        reply(replica.raft.vote(decode(&req)?).await)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let req = request.into_inner();
        let replica = self.replica(&req)?;
        reply(replica.raft.install_snapshot(decode(&req)?).await)
    }
}
