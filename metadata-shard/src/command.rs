//! What goes through Raft: the commands of every group, their responses, and
//! the [`Applier`] that turns a committed command into state changes.
//!
//! Application is deterministic: everything that varies (time, random ids)
//! is chosen by the proposer and carried inside the command, so every replica
//! computes the same writes. A storage failure while applying is not a
//! result: it stops the replica instead of letting replicas diverge.

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse};
use crate::model::{self, ModelError, QueryResponse, ShardCommand, ShardConfig, ShardQuery, ShardResponse};
use crate::raft::state_machine::GroupView;
use crate::shard_kv::GroupKv;

/// What a client proposes: a command, tagged with a request id that stays the
/// same across retries so a command committed before its answer was lost is
/// not applied twice (the state machine remembers recent ids and answers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// 32 hex digits chosen at random by the client; `None` for internal
    /// commands that are idempotent anyway.
    pub request_id: Option<String>,
    pub command: GroupCommand,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupCommand {
    /// Group 0 only.
    Cluster(ClusterCommand),
    /// Metadata shards.
    Shard(ShardCommand),
    /// A shard's settings (kept versions...), replicated so every replica
    /// applies commands with the same ones.
    SetShardConfig(ShardConfig),
}

/// A command's outcome. Rejections (unknown user, name taken...) are results
/// too: every replica reaches the same one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum GroupResponse {
    /// Blank and membership entries.
    Blank,
    Cluster(Result<ClusterResponse, ApplyError>),
    Shard(Result<ShardResponse, ApplyError>),
    ShardConfigSet,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ApplyError {
    pub kind: ApplyErrorKind,
    pub message: String,
    /// For `Conflict`: the file's current version.
    pub current_version: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ApplyErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    InvalidPath,
    NotAFolder,
    NotAFile,
    Conflict,
    PermissionDenied,
    Expired,
    ChunksMissing,
    QuotaExceeded,
    Corrupt,
    /// The user is moving between shard groups; retry shortly.
    UserMoving,
    /// The user lives on another group (`current_version` carries its id); refresh the map.
    UserMoved,
    /// A change-feed cursor older than the log keeps (`current_version` carries
    /// the newest trimmed cursor): the reader must resync in full.
    CursorTooOld,
}

impl ApplyError {
    pub fn new(kind: ApplyErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), current_version: None }
    }
}

/// A failure of the storage under a group, as opposed to a command's result.
#[derive(Debug, thiserror::Error)]
#[error("state machine storage: {0}")]
pub struct StorageFailure(pub String);

impl From<rocksdb::Error> for StorageFailure {
    fn from(e: rocksdb::Error) -> Self {
        Self(e.to_string())
    }
}

/// Splits a model error into a deterministic result or a storage failure.
fn model_result<T>(r: Result<T, ModelError>) -> Result<Result<T, ApplyError>, StorageFailure> {
    use ApplyErrorKind as K;
    let e = match r {
        Ok(v) => return Ok(Ok(v)),
        Err(ModelError::Kv(kv)) => return Err(StorageFailure(kv.to_string())),
        Err(e) => e,
    };
    let message = e.to_string();
    let (kind, current_version) = match e {
        ModelError::NotFound(_) => (K::NotFound, None),
        ModelError::AlreadyExists(_) => (K::AlreadyExists, None),
        ModelError::NotAFolder(_) => (K::NotAFolder, None),
        ModelError::NotAFile(_) => (K::NotAFile, None),
        ModelError::InvalidPath(_) => (K::InvalidPath, None),
        ModelError::Conflict { current_version } => (K::Conflict, Some(current_version)),
        ModelError::PermissionDenied(_) => (K::PermissionDenied, None),
        ModelError::InvalidArgument(_) => (K::InvalidArgument, None),
        ModelError::Expired(_) => (K::Expired, None),
        ModelError::ChunksMissing { .. } => (K::ChunksMissing, None),
        ModelError::QuotaExceeded { .. } => (K::QuotaExceeded, None),
        ModelError::UserMoving(_) => (K::UserMoving, None),
        ModelError::UserMoved { to, .. } => (K::UserMoved, Some(to)),
        ModelError::CursorTooOld { trimmed_through, .. } => (K::CursorTooOld, Some(trimmed_through)),
        ModelError::Corrupt(_) | ModelError::Kv(_) => (K::Corrupt, None),
    };
    Ok(Err(ApplyError { kind, message, current_version }))
}

/// Writes produced by applying one command: key → new value (`None` deletes).
pub type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Applies committed commands of a group.
pub trait Applier: Send + Sync + 'static {
    fn apply(&self, view: &GroupView<'_>, cmd: &GroupCommand) -> Result<(GroupResponse, Writes), StorageFailure>;
}

/// Where a shard's settings are stored: a key no model key can collide with
/// (model keys start with an ASCII tag letter).
const SHARD_CONFIG_KEY: &[u8] = b"\0shard-config";

/// The shard's settings: the stored ones, or the defaults.
pub fn shard_config(view: &GroupView<'_>) -> Result<ShardConfig, StorageFailure> {
    match view.get(SHARD_CONFIG_KEY)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| StorageFailure(format!("shard config: {e}"))),
        None => Ok(ShardConfig::default()),
    }
}

/// The applier of every Tessera group.
#[derive(Default)]
pub struct TesseraApplier;

impl Applier for TesseraApplier {
    fn apply(&self, view: &GroupView<'_>, cmd: &GroupCommand) -> Result<(GroupResponse, Writes), StorageFailure> {
        match cmd {
            GroupCommand::Cluster(c) => {
                let (result, writes) = crate::cluster::apply(view, c)?;
                Ok((GroupResponse::Cluster(result), writes))
            }
            GroupCommand::Shard(c) => {
                let config = shard_config(view)?;
                let mut kv = GroupKv::new(view);
                let result = model_result(model::apply(&mut kv, c, &config))?;
                let writes = if result.is_ok() { kv.writes } else { Vec::new() };
                Ok((GroupResponse::Shard(result), writes))
            }
            GroupCommand::SetShardConfig(config) => {
                if config.max_versions == 0 {
                    let e = ApplyError::new(ApplyErrorKind::InvalidArgument, "max_versions must be at least 1");
                    return Ok((GroupResponse::Shard(Err(e)), Vec::new()));
                }
                let bytes = serde_json::to_vec(config).map_err(|e| StorageFailure(e.to_string()))?;
                Ok((GroupResponse::ShardConfigSet, vec![(SHARD_CONFIG_KEY.to_vec(), Some(bytes))]))
            }
        }
    }
}

/// Reads served from a group's state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupQuery {
    Cluster(ClusterQuery),
    Shard(ShardQuery),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum GroupAnswer {
    Cluster(ClusterAnswer),
    Shard(Result<QueryResponse, ApplyError>),
}

pub fn query(view: &GroupView<'_>, q: &GroupQuery) -> Result<GroupAnswer, StorageFailure> {
    match q {
        GroupQuery::Cluster(c) => Ok(GroupAnswer::Cluster(crate::cluster::query(view, c)?)),
        GroupQuery::Shard(s) => Ok(GroupAnswer::Shard(model_result(model::query(view, s))?)),
    }
}
