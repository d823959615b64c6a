//! The native gRPC API (`proto/api.proto`): authenticates each call, then maps
//! it onto the upload/download paths and [`crate::ops`]. Errors become gRPC
//! statuses through `From<RouterError> for Status`.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tessera_meta::cluster::User;
use tessera_meta::model::versions::ConflictPolicy as ModelPolicy;
use tessera_meta::model::versions::FileRef;
use tessera_meta::model::{Entry, EntryKind};
use tessera_proto::api::tessera_server::Tessera;
use tessera_proto::api::{self as pb, get_response, put_request};
use tessera_proto::ChunkHash;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticator, MethodPath, ACCESS_KEY, DATE, SIGNATURE};
use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::upload::{UploadReport, UploadRequest};
use crate::{download, feed, ops, sessions, sharing, upload};
use tessera_meta::model::access::Action;
use tessera_meta::model::shares::Permission;

pub struct ApiService {
    pub dp: Arc<DataPath>,
    pub auth: Arc<Authenticator>,
    /// Longest a `Changes` call may wait for news.
    pub max_change_wait_ms: u64,
}

fn entry_to_wire(e: &Entry) -> pb::Entry {
    let (is_folder, version, size, sha) = match &e.kind {
        EntryKind::Folder => (true, 0, 0, String::new()),
        EntryKind::File(f) => (false, f.version, f.size, hex::encode(f.content_sha256)),
    };
    pb::Entry {
        path: e.path.clone(),
        is_folder,
        id: e.id,
        version,
        size,
        content_sha256: sha,
        modified_at_ms: e.modified_at_ms,
        deleted: e.deleted,
    }
}

fn report_to_wire(r: UploadReport) -> pb::PutResponse {
    pb::PutResponse {
        path: r.path,
        version: r.version,
        size: r.size,
        content_sha256: r.content_sha256,
        chunks_total: r.chunks_total,
        chunks_uploaded: r.chunks_uploaded,
        chunks_deduped: r.chunks_deduped,
        bytes_transferred: r.bytes_transferred,
        conflict: r.conflict,
        conflict_path: r.conflict_path.unwrap_or_default(),
    }
}

fn policy(p: i32) -> Result<ModelPolicy, Status> {
    match pb::ConflictPolicy::try_from(p) {
        Ok(pb::ConflictPolicy::Copy) => Ok(ModelPolicy::ConflictCopy),
        Ok(pb::ConflictPolicy::LastWriterWins) => Ok(ModelPolicy::LastWriterWins),
        Ok(pb::ConflictPolicy::Reject) => Ok(ModelPolicy::Reject),
        Err(_) => Err(Status::invalid_argument(format!("unknown conflict policy {p}"))),
    }
}

impl ApiService {
    async fn user<T>(&self, req: &Request<T>) -> Result<User, Status> {
        let method = req.extensions().get::<MethodPath>().map(|m| m.0.clone()).unwrap_or_default();
        let md = req.metadata();
        let get = |k: &str| md.get(k).and_then(|v| v.to_str().ok());
        Ok(self.auth.verify(get(ACCESS_KEY), get(DATE), get(SIGNATURE), &method, now_ms()).await?)
    }

    /// The caller and the namespace the call acts on (another user's when the call
    /// names an owner who shares `path` with the caller for `action`).
    async fn caller_and_namespace<T>(
        &self,
        req: &Request<T>,
        path: &str,
        action: Action,
    ) -> Result<(User, String), Status> {
        let user = self.user(req).await?;
        let owner = Self::owner_of(req);
        let namespace = sharing::namespace_for(&self.dp, &user.user_id, owner.as_deref(), path, action).await?;
        Ok((user, namespace))
    }

    /// The caller, for calls that act on the caller's own files only: naming another
    /// owner is refused rather than silently ignored.
    async fn own_files_only<T>(&self, req: &Request<T>) -> Result<User, Status> {
        let user = self.user(req).await?;
        match Self::owner_of(req) {
            Some(owner) if owner != user.user_id => Err(Status::failed_precondition(
                "this call works on your own files only (not on files shared with you)",
            )),
            _ => Ok(user),
        }
    }

    /// The caller, the namespace and the upload session a session call names: the
    /// session is looked up in the owner's namespace when the call names an owner, and
    /// the caller must then be allowed to write the session's path (now).
    async fn session_call<T>(
        &self,
        req: &Request<T>,
        id: tessera_meta::model::SessionId,
    ) -> Result<(User, String, tessera_meta::model::UploadSession), Status> {
        let user = self.user(req).await?;
        let namespace = Self::owner_of(req).unwrap_or_else(|| user.user_id.clone());
        let session = sessions::get(&self.dp, &namespace, id).await?;
        if namespace != user.user_id {
            sharing::namespace_for(&self.dp, &user.user_id, Some(&namespace), &session.path, Action::Write).await?;
        }
        Ok((user, namespace, session))
    }

    fn owner_of<T>(req: &Request<T>) -> Option<String> {
        req.metadata().get(sharing::OWNER).and_then(|v| v.to_str().ok()).filter(|o| !o.is_empty()).map(str::to_owned)
    }
}

fn link_to_wire(l: &tessera_meta::model::Link) -> pb::LinkInfo {
    pb::LinkInfo {
        token: hex::encode(l.token),
        url_path: crate::links::url_path(&l.token),
        path: l.path.clone(),
        permission: match l.permission {
            tessera_meta::model::LinkPermission::View => "view".into(),
            tessera_meta::model::LinkPermission::Edit => "edit".into(),
        },
        has_password: l.password_hash.is_some(),
        expires_at_ms: l.expires_at_ms,
    }
}

fn share_to_wire(
    owner: &str,
    path: &str,
    grantee: &str,
    permission: Permission,
    expires_at_ms: Option<i64>,
) -> pb::ShareInfo {
    pb::ShareInfo {
        owner: owner.into(),
        path: path.into(),
        grantee: grantee.into(),
        permission: sharing::permission_name(permission).into(),
        expires_at_ms,
    }
}

fn session_id(raw: &[u8]) -> Result<tessera_meta::model::SessionId, Status> {
    raw.try_into().map_err(|_| Status::invalid_argument(format!("session id must be 16 bytes, got {}", raw.len())))
}

fn session_status(s: &tessera_meta::model::UploadSession) -> pb::SessionStatus {
    pb::SessionStatus {
        session_id: Bytes::copy_from_slice(&s.session_id),
        missing: s.missing().iter().map(|h| Bytes::copy_from_slice(h)).collect(),
        chunks_total: s.chunks.len() as u64,
    }
}

/// Largest chunk a client may send (the chunker's maximum is 16 MiB).
const MAX_CHUNK: usize = 16 << 20;

fn changes_to_wire(page: tessera_meta::model::ChangePage) -> pb::ChangesResponse {
    pb::ChangesResponse {
        events: page
            .events
            .into_iter()
            .map(|e| pb::ChangeEvent {
                cursor: e.cursor,
                kind: format!("{:?}", e.kind).to_lowercase(),
                path: e.path,
                new_path: e.new_path.unwrap_or_default(),
                version: e.version.unwrap_or(0),
                device_id: e.device_id,
                at_ms: e.at_ms,
                peer: e.peer.unwrap_or_default(),
            })
            .collect(),
        next_cursor: page.next_cursor,
        has_more: page.has_more,
        head_cursor: page.head_cursor,
    }
}

type BoxStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Tessera for ApiService {
    async fn put(&self, mut request: Request<Streaming<pb::PutRequest>>) -> Result<Response<pb::PutResponse>, Status> {
        let first = request.get_mut().message().await?.ok_or_else(|| Status::invalid_argument("empty Put stream"))?;
        let Some(put_request::Part::Header(h)) = first.part else {
            return Err(Status::invalid_argument("the first Put message must be the header"));
        };
        let (caller, namespace) = self.caller_and_namespace(&request, &h.path, Action::Write).await?;
        let stream = request.into_inner();
        let req = UploadRequest {
            user_id: namespace,
            created_by: caller.user_id,
            path: h.path,
            device_id: h.device_id,
            base_version: h.base_version,
            policy: policy(h.on_conflict)?,
            meta: Default::default(),
        };
        let body = stream.map(|m| match m {
            Ok(pb::PutRequest { part: Some(put_request::Part::Data(d)) }) => Ok(d),
            Ok(_) => Err(RouterError::InvalidArgument("a second Put header".into())),
            Err(s) => Err(RouterError::InvalidArgument(format!("upload stream broke: {}", s.message()))),
        });
        let report = upload::upload(&self.dp, &req, Box::pin(body)).await?;
        Ok(Response::new(report_to_wire(report)))
    }

    type GetStream = BoxStream<pb::GetResponse>;

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<Self::GetStream>, Status> {
        let path = request.get_ref().path.clone();
        let (_, namespace) = self.caller_and_namespace(&request, &path, Action::Read).await?;
        let req = request.into_inner();
        let file = download::resolve(&self.dp, &namespace, &req.path, req.version).await?;
        let range = match (req.range_start, req.range_end) {
            (None, None) => None,
            (s, e) => {
                let (s, e) = (s.unwrap_or(0), e.unwrap_or(file.size).min(file.size));
                if s > e {
                    return Err(Status::out_of_range(format!("range {s}..{e} is outside 0..{}", file.size)));
                }
                Some((s, e))
            }
        };
        let head = pb::GetResponse {
            part: Some(get_response::Part::Entry(pb::Entry {
                path: file.path.clone(),
                is_folder: false,
                id: 0,
                version: file.version,
                size: file.size,
                content_sha256: hex::encode(file.content_sha256),
                modified_at_ms: file.modified_at_ms,
                deleted: false,
            })),
        };
        let body = download::stream_file(self.dp.clone(), file, range).map(|r| {
            r.map(|data: Bytes| pb::GetResponse { part: Some(get_response::Part::Data(data)) }).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(futures::stream::once(async { Ok(head) }).chain(body))))
    }

    async fn stat(&self, request: Request<pb::StatRequest>) -> Result<Response<pb::Entry>, Status> {
        let path = request.get_ref().path.clone();
        let (_, namespace) = self.caller_and_namespace(&request, &path, Action::Read).await?;
        let e = ops::stat(&self.dp, &namespace, &path).await?;
        Ok(Response::new(entry_to_wire(&e)))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let path = request.get_ref().path.clone();
        let (_, namespace) = self.caller_and_namespace(&request, &path, Action::Read).await?;
        let req = request.into_inner();
        let limit = if req.limit == 0 { 1000 } else { req.limit.min(10_000) as usize };
        let start = (!req.start_after.is_empty()).then_some(req.start_after);
        let page = ops::list(&self.dp, &namespace, &req.path, start, limit).await?;
        Ok(Response::new(pb::ListResponse {
            entries: page.entries.iter().map(entry_to_wire).collect(),
            next_start_after: page.next_start_after.unwrap_or_default(),
        }))
    }

    async fn mkdir(&self, request: Request<pb::MkdirRequest>) -> Result<Response<pb::Entry>, Status> {
        let path = request.get_ref().path.clone();
        let (_, namespace) = self.caller_and_namespace(&request, &path, Action::Write).await?;
        let req = request.into_inner();
        let e = ops::mkdir(&self.dp, &namespace, &req.path, &req.device_id).await?;
        Ok(Response::new(entry_to_wire(&e)))
    }

    async fn r#move(&self, request: Request<pb::MoveRequest>) -> Result<Response<pb::Done>, Status> {
        let (from, to) = (request.get_ref().from.clone(), request.get_ref().to.clone());
        let (_, namespace) = self.caller_and_namespace(&request, &from, Action::Write).await?;
        // Both ends must be writable (the same namespace: the owner's or the caller's).
        self.caller_and_namespace(&request, &to, Action::Write).await?;
        let req = request.into_inner();
        ops::rename(&self.dp, &namespace, &req.from, &req.to, &req.device_id).await?;
        Ok(Response::new(pb::Done {}))
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::Done>, Status> {
        let path = request.get_ref().path.clone();
        let (_, namespace) = self.caller_and_namespace(&request, &path, Action::Write).await?;
        let req = request.into_inner();
        if req.purge {
            ops::purge(&self.dp, &namespace, &req.path, &req.device_id).await?;
        } else {
            ops::delete(&self.dp, &namespace, &req.path, &req.device_id).await?;
        }
        Ok(Response::new(pb::Done {}))
    }

    async fn versions(&self, request: Request<pb::VersionsRequest>) -> Result<Response<pb::VersionsResponse>, Status> {
        let (path, detached) = (request.get_ref().path.clone(), request.get_ref().detached_id);
        let (namespace, file) = match detached {
            Some(id) => (self.own_files_only(&request).await?.user_id, FileRef::Detached(id)),
            None => (self.caller_and_namespace(&request, &path, Action::Read).await?.1, FileRef::Path(path)),
        };
        let page = ops::versions(&self.dp, &namespace, file).await?;
        Ok(Response::new(pb::VersionsResponse {
            versions: page
                .versions
                .iter()
                .map(|v| pb::VersionInfo {
                    version: v.version,
                    size: v.size,
                    content_sha256: hex::encode(v.content_sha256),
                    device_id: v.device_id.clone(),
                    created_by: v.created_by.clone(),
                    created_at_ms: v.created_at_ms,
                })
                .collect(),
        }))
    }

    async fn list_detached(
        &self,
        request: Request<pb::ListDetachedRequest>,
    ) -> Result<Response<pb::ListDetachedResponse>, Status> {
        let user = self.own_files_only(&request).await?;
        let req = request.into_inner();
        let start = (req.start_after_id > 0).then_some(req.start_after_id);
        let limit = if req.limit == 0 { 1000 } else { req.limit as usize };
        let page = ops::list_detached(&self.dp, &user.user_id, start, limit).await?;
        Ok(Response::new(pb::ListDetachedResponse {
            files: page.files.iter().map(entry_to_wire).collect(),
            next_start_after_id: page.next_start_after.unwrap_or(0),
        }))
    }

    async fn reattach(&self, request: Request<pb::ReattachRequest>) -> Result<Response<pb::Entry>, Status> {
        let user = self.own_files_only(&request).await?;
        let req = request.into_inner();
        let entry = ops::reattach(&self.dp, &user.user_id, req.id, &req.path, &req.device_id).await?;
        Ok(Response::new(entry_to_wire(&entry)))
    }

    async fn restore(&self, request: Request<pb::RestoreRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let path = request.get_ref().path.clone();
        let (caller, namespace) = self.caller_and_namespace(&request, &path, Action::Write).await?;
        let req = request.into_inner();
        let outcome =
            ops::restore(&self.dp, &namespace, &req.path, req.version, &caller.user_id, &req.device_id).await?;
        let file = download::resolve(&self.dp, &namespace, &outcome.path, Some(outcome.version)).await?;
        Ok(Response::new(pb::PutResponse {
            path: outcome.path,
            version: outcome.version,
            size: file.size,
            content_sha256: hex::encode(file.content_sha256),
            chunks_total: file.chunks.len() as u64,
            chunks_deduped: file.chunks.len() as u64,
            ..Default::default()
        }))
    }

    async fn open_session(
        &self,
        request: Request<pb::OpenSessionRequest>,
    ) -> Result<Response<pb::SessionStatus>, Status> {
        let path = request.get_ref().path.clone();
        let (caller, namespace) = self.caller_and_namespace(&request, &path, Action::Write).await?;
        let req = request.into_inner();
        let id = session_id(&req.session_id)?;
        if namespace != caller.user_id {
            // Resuming names an open session: it must be one the caller may write too.
            match sessions::get(&self.dp, &namespace, id).await {
                Ok(existing) if existing.path != req.path => {
                    sharing::namespace_for(&self.dp, &caller.user_id, Some(&namespace), &existing.path, Action::Write)
                        .await?;
                }
                Ok(_) | Err(RouterError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let chunks = req
            .chunks
            .iter()
            .map(|c| {
                let hash: [u8; 32] =
                    c.hash.as_ref().try_into().map_err(|_| Status::invalid_argument("chunk hashes are 32 bytes"))?;
                Ok(tessera_meta::model::ChunkRef { hash, size: c.size })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let s = sessions::open(&self.dp, &namespace, id, &req.path, chunks, req.base_version, &req.device_id).await?;
        Ok(Response::new(session_status(&s)))
    }

    async fn put_chunk(
        &self,
        mut request: Request<Streaming<pb::PutChunkRequest>>,
    ) -> Result<Response<pb::SessionStatus>, Status> {
        let first =
            request.get_mut().message().await?.ok_or_else(|| Status::invalid_argument("empty PutChunk stream"))?;
        let Some(pb::put_chunk_request::Part::Header(h)) = first.part else {
            return Err(Status::invalid_argument("the first PutChunk message must be the header"));
        };
        let id = session_id(&h.session_id)?;
        // Checked before any data is read: a caller who may not write gets nothing stored.
        let (_, namespace, _) = self.session_call(&request, id).await?;
        let mut stream = request.into_inner();
        let hash = ChunkHash::from_slice(&h.hash).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let mut data = Vec::new();
        while let Some(m) = stream.message().await? {
            if let Some(pb::put_chunk_request::Part::Data(d)) = m.part {
                if data.len() + d.len() > MAX_CHUNK {
                    return Err(Status::invalid_argument(format!("chunk larger than {MAX_CHUNK} bytes")));
                }
                data.extend_from_slice(&d);
            }
        }
        let s = sessions::put_chunk(&self.dp, &namespace, id, hash, Bytes::from(data)).await?;
        Ok(Response::new(session_status(&s)))
    }

    async fn get_session(&self, request: Request<pb::SessionRef>) -> Result<Response<pb::SessionStatus>, Status> {
        let (_, _, s) = self.session_call(&request, session_id(&request.get_ref().session_id)?).await?;
        Ok(Response::new(session_status(&s)))
    }

    async fn commit_session(
        &self,
        request: Request<pb::CommitSessionRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let id = session_id(&request.get_ref().session_id)?;
        // Checked here and again inside the commit command (the shard's own check at
        // commit time is what decides).
        let (caller, namespace, session) = self.session_call(&request, id).await?;
        let req = request.into_inner();
        let sha: [u8; 32] = req
            .content_sha256
            .as_ref()
            .try_into()
            .map_err(|_| Status::invalid_argument("content_sha256 must be 32 bytes"))?;
        let outcome =
            sessions::commit(&self.dp, &namespace, id, sha, policy(req.on_conflict)?, &caller.user_id).await?;
        Ok(Response::new(pb::PutResponse {
            path: outcome.path,
            version: outcome.version,
            size: session.chunks.iter().map(|c| c.size).sum(),
            content_sha256: hex::encode(sha),
            chunks_total: session.chunks.len() as u64,
            conflict: outcome.conflict,
            conflict_path: outcome.conflict_path.unwrap_or_default(),
            ..Default::default()
        }))
    }

    async fn abort_session(&self, request: Request<pb::SessionRef>) -> Result<Response<pb::Done>, Status> {
        let id = session_id(&request.get_ref().session_id)?;
        let (_, namespace, _) = self.session_call(&request, id).await?;
        sessions::abort(&self.dp, &namespace, id).await?;
        Ok(Response::new(pb::Done {}))
    }

    async fn missing_chunks(
        &self,
        request: Request<pb::MissingChunksRequest>,
    ) -> Result<Response<pb::MissingChunksResponse>, Status> {
        self.user(&request).await?;
        let hashes = request
            .into_inner()
            .hashes
            .iter()
            .map(|h| ChunkHash::from_slice(h).map_err(|e| Status::invalid_argument(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if hashes.len() > 10_000 {
            return Err(Status::invalid_argument("at most 10000 hashes per call"));
        }
        let missing = ops::missing_chunks(&self.dp, &hashes).await?;
        Ok(Response::new(pb::MissingChunksResponse {
            missing: missing.iter().map(|h| Bytes::copy_from_slice(h.as_bytes())).collect(),
        }))
    }

    async fn changes(&self, request: Request<pb::ChangesRequest>) -> Result<Response<pb::ChangesResponse>, Status> {
        let user = self.user(&request).await?;
        let owner = Self::owner_of(&request);
        let req = request.into_inner();
        let wait = std::time::Duration::from_millis(u64::from(req.wait_ms).min(self.max_change_wait_ms));
        let page = if req.head_only {
            feed::head(&self.dp, &user.user_id, owner.as_deref(), &req.device_id).await?
        } else {
            feed::changes(&self.dp, &user.user_id, owner.as_deref(), req.after_cursor, req.limit, &req.device_id, wait)
                .await?
        };
        Ok(Response::new(changes_to_wire(page)))
    }

    type WatchChangesStream = BoxStream<pb::ChangesResponse>;

    async fn watch_changes(
        &self,
        request: Request<pb::ChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let user = self.user(&request).await?;
        let owner = Self::owner_of(&request);
        let req = request.into_inner();
        let dp = self.dp.clone();
        // Long-polls back to back; the shard answers as soon as a change commits. With an
        // owner, every poll re-checks what is shared: an unshare ends the stream with
        // PERMISSION_DENIED.
        let wait = std::time::Duration::from_millis(self.max_change_wait_ms.max(1000));
        let state = (req.after_cursor, false);
        let stream = futures::stream::unfold(state, move |(mut cursor, failed)| {
            let (dp, user_id, device, owner) = (dp.clone(), user.user_id.clone(), req.device_id.clone(), owner.clone());
            async move {
                if failed {
                    return None;
                }
                loop {
                    match feed::changes(&dp, &user_id, owner.as_deref(), cursor, req.limit, &device, wait).await {
                        // Nothing new, or only the caller's own events: keep waiting.
                        Ok(page) if page.events.is_empty() => cursor = page.next_cursor,
                        Ok(page) => {
                            let next = page.next_cursor;
                            return Some((Ok(changes_to_wire(page)), (next, false)));
                        }
                        Err(e) => return Some((Err(Status::from(e)), (cursor, true))),
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn share(&self, request: Request<pb::ShareRequest>) -> Result<Response<pb::ShareInfo>, Status> {
        let user = self.user(&request).await?;
        let owner = Self::owner_of(&request);
        let req = request.into_inner();
        let permission = sharing::parse_permission(&req.permission)?;
        let expires_in = req.expires_in_secs.map(std::time::Duration::from_secs);
        let s = sharing::share(
            &self.dp,
            &user.user_id,
            owner.as_deref(),
            &req.path,
            &req.grantee,
            permission,
            expires_in,
            &req.device_id,
        )
        .await?;
        Ok(Response::new(share_to_wire(&s.owner, &s.path, &s.grantee, s.permission, s.expires_at_ms)))
    }

    async fn unshare(&self, request: Request<pb::UnshareRequest>) -> Result<Response<pb::Done>, Status> {
        let user = self.user(&request).await?;
        let owner = Self::owner_of(&request);
        let req = request.into_inner();
        sharing::unshare(&self.dp, &user.user_id, owner.as_deref(), &req.path, &req.grantee, &req.device_id).await?;
        Ok(Response::new(pb::Done {}))
    }

    async fn list_shares(
        &self,
        request: Request<pb::ListSharesRequest>,
    ) -> Result<Response<pb::SharesResponse>, Status> {
        let user = self.user(&request).await?;
        let owner = Self::owner_of(&request);
        let shares = sharing::shares_of(&self.dp, &user.user_id, owner.as_deref(), &request.get_ref().path).await?;
        Ok(Response::new(pb::SharesResponse {
            shares: shares
                .iter()
                .map(|s| share_to_wire(&s.owner, &s.path, &s.grantee, s.permission, s.expires_at_ms))
                .collect(),
        }))
    }

    async fn shared_with_me(
        &self,
        request: Request<pb::SharedWithMeRequest>,
    ) -> Result<Response<pb::SharesResponse>, Status> {
        let user = self.user(&request).await?;
        let entries = sharing::shared_with(&self.dp, &user.user_id).await?;
        Ok(Response::new(pb::SharesResponse {
            shares: entries
                .iter()
                .map(|e| share_to_wire(&e.owner, &e.path, &e.grantee, e.permission, e.expires_at_ms))
                .collect(),
        }))
    }

    async fn create_link(&self, request: Request<pb::CreateLinkRequest>) -> Result<Response<pb::LinkInfo>, Status> {
        let user = self.own_files_only(&request).await?;
        let req = request.into_inner();
        let permission = crate::links::parse_permission(&req.permission)?;
        let expires_in = req.expires_in_secs.map(std::time::Duration::from_secs);
        let password = (!req.password.is_empty()).then_some(req.password);
        let link =
            crate::links::create(&self.dp, &user.user_id, &req.path, permission, password, expires_in, &req.device_id)
                .await?;
        Ok(Response::new(link_to_wire(&link)))
    }

    async fn revoke_link(&self, request: Request<pb::RevokeLinkRequest>) -> Result<Response<pb::Done>, Status> {
        let user = self.own_files_only(&request).await?;
        let req = request.into_inner();
        let token = crate::links::parse_token(&req.token)
            .ok_or_else(|| Status::invalid_argument("a link token is 64 hex digits"))?;
        crate::links::revoke(&self.dp, &user.user_id, token, &req.device_id).await?;
        Ok(Response::new(pb::Done {}))
    }

    async fn list_links(&self, request: Request<pb::ListLinksRequest>) -> Result<Response<pb::LinksResponse>, Status> {
        let user = self.own_files_only(&request).await?;
        let links = crate::links::list(&self.dp, &user.user_id, &request.get_ref().path).await?;
        Ok(Response::new(pb::LinksResponse { links: links.iter().map(link_to_wire).collect() }))
    }
}
