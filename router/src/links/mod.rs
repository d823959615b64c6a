//! Links: a URL that gives anyone holding it read access to one file or folder
//! (and, for edit links to a folder, lets them upload into it), optionally behind a
//! password and an expiry. The token is 256 random bits chosen here; the link
//! record lives on the owner's shard (model::links), the password as an argon2 hash
//! computed here, never inside the state machine. [`http`] serves links to browsers
//! and to curl, [`upload`] takes uploads through edit links (the upload form is
//! parsed by [`multer`], fed and limited by [`multipart`]).

pub mod http;
pub mod multipart;
pub mod upload;

use std::time::Duration;

use rand::RngCore;
use serde::Deserialize;
use tessera_meta::command::ApplyErrorKind;
use tessera_meta::command::{GroupAnswer, GroupQuery};
use tessera_meta::model::links::{hash_link_password, Link, LinkPermission};
use tessera_meta::model::types::LinkToken;
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery, ShardResponse};

use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::ops;

/// `[links]` in router.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Largest file one upload through an edit link may store (413 beyond).
    pub max_upload_bytes: u64,
}

impl Default for LinksConfig {
    fn default() -> Self {
        Self { max_upload_bytes: 5 << 30 }
    }
}

/// Where a link is served: `/l/<64 hex digits>` on the router's port.
pub fn url_path(token: &LinkToken) -> String {
    format!("/l/{}", hex::encode(token))
}

pub fn parse_token(text: &str) -> Option<LinkToken> {
    hex::decode(text).ok()?.try_into().ok()
}

pub fn parse_permission(s: &str) -> Result<LinkPermission, RouterError> {
    match s {
        "" | "view" => Ok(LinkPermission::View),
        "edit" => Ok(LinkPermission::Edit),
        other => Err(RouterError::InvalidArgument(format!("a link's permission is view or edit, not {other:?}"))),
    }
}

pub async fn create(
    dp: &DataPath,
    owner: &str,
    path: &str,
    permission: LinkPermission,
    password: Option<String>,
    expires_in: Option<Duration>,
    device_id: &str,
) -> Result<Link, RouterError> {
    let mut token = [0u8; 32];
    rand::rng().fill_bytes(&mut token);
    let password_hash = match password.filter(|p| !p.is_empty()) {
        Some(password) => {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            // argon2 is deliberately slow: off the async workers.
            let hashed = tokio::task::spawn_blocking(move || hash_link_password(&password, &salt))
                .await
                .map_err(|e| RouterError::Unavailable(format!("password hashing failed: {e}")))?;
            Some(hashed.map_err(|e| RouterError::InvalidArgument(e.to_string()))?)
        }
        None => None,
    };
    let now = now_ms();
    let cmd = ShardCommand::CreateLink {
        token,
        owner: owner.into(),
        path: path.into(),
        permission,
        password_hash,
        expires_at_ms: expires_in.map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
        device_id: device_id.into(),
        now_ms: now,
    };
    match ops::command(dp, owner, cmd).await? {
        ShardResponse::LinkCreated(link) => Ok(link),
        other => Err(RouterError::Metadata(format!("unexpected answer to CreateLink: {other:?}"))),
    }
}

pub async fn revoke(dp: &DataPath, owner: &str, token: LinkToken, device_id: &str) -> Result<Link, RouterError> {
    let cmd = ShardCommand::RevokeLink { owner: owner.into(), token, device_id: device_id.into(), now_ms: now_ms() };
    match ops::command(dp, owner, cmd).await? {
        ShardResponse::LinkRevoked(link) => Ok(link),
        other => Err(RouterError::Metadata(format!("unexpected answer to RevokeLink: {other:?}"))),
    }
}

pub async fn list(dp: &DataPath, owner: &str, path: &str) -> Result<Vec<Link>, RouterError> {
    let q = ShardQuery::ListLinks { owner: owner.into(), path: path.into() };
    match dp.view.shard_query(owner, q, Duration::ZERO).await? {
        QueryResponse::Links(links) => Ok(links),
        other => Err(RouterError::Metadata(format!("unexpected answer to ListLinks: {other:?}"))),
    }
}

/// What a token leads to.
#[derive(Debug)]
pub enum Lookup {
    Found(Link),
    /// Known but past its expiry.
    Expired,
    /// Unknown or revoked.
    Missing,
}

/// Finds the link behind `token`. The token does not say whose it is, so every
/// shard is asked (at once); a shard that cannot answer makes the lookup fail
/// rather than report a link missing.
pub async fn lookup(dp: &DataPath, token: LinkToken) -> Result<Lookup, RouterError> {
    let now = now_ms();
    let placement = dp.view.placement();
    let asks = placement.shards().iter().map(|shard| async move {
        let q = GroupQuery::Shard(ShardQuery::ResolveLink { token, now_ms: now });
        dp.view.meta.query(shard.group_id, &q).await
    });
    let mut outcome = Lookup::Missing;
    for answer in futures::future::join_all(asks).await {
        match answer? {
            GroupAnswer::Shard(Ok(QueryResponse::Link(link))) => return Ok(Lookup::Found(link)),
            GroupAnswer::Shard(Err(e)) if e.kind == ApplyErrorKind::Expired => outcome = Lookup::Expired,
            GroupAnswer::Shard(Err(e)) if e.kind == ApplyErrorKind::NotFound => {}
            GroupAnswer::Shard(Err(e)) => return Err(e.into()),
            other => return Err(RouterError::Metadata(format!("unexpected answer to ResolveLink: {other:?}"))),
        }
    }
    Ok(outcome)
}
