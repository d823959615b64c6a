//! What goes through Raft: the commands of every group, their responses, and
//! the [`Applier`] that turns a committed command into state changes.
//!
//! Application is deterministic: everything that varies (time, random ids)
//! is chosen by the proposer and carried inside the command, so every replica
//! computes the same writes.

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse};
use crate::raft::state_machine::GroupView;

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
    Cluster(ClusterCommand),
}

/// A command's outcome. Rejections (unknown user, name taken...) are results
/// too: every replica reaches the same one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum GroupResponse {
    /// Blank and membership entries.
    Blank,
    Cluster(Result<ClusterResponse, ApplyError>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ApplyError {
    pub kind: ApplyErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ApplyErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    PermissionDenied,
    Corrupt,
}

impl ApplyError {
    pub fn new(kind: ApplyErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Writes produced by applying one command: key → new value (`None` deletes).
pub type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Applies committed commands of a group.
pub trait Applier: Send + Sync + 'static {
    fn apply(
        &self,
        view: &GroupView<'_>,
        cmd: &GroupCommand,
    ) -> Result<(GroupResponse, Writes), rocksdb::Error>;
}

/// The applier of every Tessera group.
pub struct TesseraApplier;

impl Applier for TesseraApplier {
    fn apply(
        &self,
        view: &GroupView<'_>,
        cmd: &GroupCommand,
    ) -> Result<(GroupResponse, Writes), rocksdb::Error> {
        match cmd {
            GroupCommand::Cluster(c) => {
                let (result, writes) = crate::cluster::apply(view, c)?;
                Ok((GroupResponse::Cluster(result), writes))
            }
        }
    }
}

/// Reads served from a group's state machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupQuery {
    Cluster(ClusterQuery),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum GroupAnswer {
    Cluster(ClusterAnswer),
}

pub fn query(view: &GroupView<'_>, q: &GroupQuery) -> Result<GroupAnswer, rocksdb::Error> {
    match q {
        GroupQuery::Cluster(c) => Ok(GroupAnswer::Cluster(crate::cluster::query(view, c)?)),
    }
}
