//! Link shares: a 256-bit token (chosen at random by the proposer) that grants View or
//! Edit on one path, optionally behind a password and an expiry.
//!
//! Passwords are stored as argon2 PHC strings. Hashing is slow and salted at random, so
//! it must not happen inside `apply` (replicas would disagree): the proposer calls
//! [`hash_link_password`] and puts the result in the command; checking a password is a
//! read ([`verify_link_password`]).
//!
//! Links are keyed by token; an index by (owner, path, token) lets moves and deletes find
//! the links of a subtree (a move rewrites their path, a delete revokes them).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::codec::{encode, get_decoded};
use super::command::Tx;
use super::kv::{KvRead, KvWrite};
use super::namespace;
use super::paths::{self, validate_non_root};
use super::shares::{is_expired, scan_all};
use super::types::{validate_user_id, LinkToken};
use super::{keys, ModelError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LinkPermission {
    View,
    Edit,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub token: LinkToken,
    pub owner: String,
    pub path: String,
    pub permission: LinkPermission,
    /// argon2 PHC string; None = no password.
    pub password_hash: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

impl Link {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        is_expired(self.expires_at_ms, now_ms)
    }
}

/// Hashes a link password with argon2id (default parameters) and the given salt
/// (8..=48 random bytes chosen by the caller). Called by the proposer, never in apply.
pub fn hash_link_password(password: &str, salt: &[u8]) -> Result<String, ModelError> {
    if !(8..=48).contains(&salt.len()) {
        return Err(ModelError::InvalidArgument("salt must be 8 to 48 bytes".into()));
    }
    let salt = SaltString::encode_b64(salt).map_err(|e| ModelError::InvalidArgument(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ModelError::InvalidArgument(format!("password hashing: {e}")))
}

/// True if `password` opens the link; a link without a password accepts any.
pub fn verify_link_password(link: &Link, password: &str) -> bool {
    let Some(stored) = &link.password_hash else {
        return true;
    };
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

pub(crate) struct NewLink<'c> {
    pub token: LinkToken,
    pub owner: &'c str,
    pub path: &'c str,
    pub permission: LinkPermission,
    pub password_hash: Option<&'c str>,
    pub expires_at_ms: Option<i64>,
}

pub(crate) fn create_link(tx: &mut Tx<'_>, new: NewLink<'_>, origin: Origin<'_>) -> Result<Link, ModelError> {
    validate_user_id(new.owner)?;
    validate_non_root(new.path)?;
    if is_expired(new.expires_at_ms, origin.now_ms) {
        return Err(ModelError::InvalidArgument("expiry is not in the future".into()));
    }
    if let Some(hash) = new.password_hash {
        PasswordHash::new(hash).map_err(|e| ModelError::InvalidArgument(format!("password hash: {e}")))?;
    }
    namespace::load_live(tx.kv, new.owner, new.path)?;
    let key = keys::link(&new.token);
    if tx.kv.get(&key)?.is_some() {
        return Err(ModelError::AlreadyExists("link token".into()));
    }
    let link = Link {
        token: new.token,
        owner: new.owner.to_string(),
        path: new.path.to_string(),
        permission: new.permission,
        password_hash: new.password_hash.map(str::to_string),
        expires_at_ms: new.expires_at_ms,
        created_at_ms: origin.now_ms,
    };
    tx.kv.put(&key, &encode(&link)?);
    tx.kv.put(&keys::link_by_path(new.owner, new.path, &new.token), &[]);
    changelog::append(tx.kv, new.owner, origin, NewEvent::new(ChangeKind::Share, new.path))?;
    Ok(link)
}

pub(crate) fn revoke_link(
    tx: &mut Tx<'_>,
    owner: &str,
    token: &LinkToken,
    origin: Origin<'_>,
) -> Result<Link, ModelError> {
    validate_user_id(owner)?;
    let link = load(tx.kv, token)?;
    if link.owner != owner {
        return Err(ModelError::PermissionDenied("link belongs to another user".into()));
    }
    remove(tx.kv, &link);
    changelog::append(tx.kv, owner, origin, NewEvent::new(ChangeKind::Share, &link.path))?;
    Ok(link)
}

fn load(kv: &dyn KvRead, token: &LinkToken) -> Result<Link, ModelError> {
    get_decoded(kv, &keys::link(token), "link")?.ok_or_else(|| ModelError::NotFound("link".into()))
}

fn remove(kv: &mut dyn KvWrite, link: &Link) {
    kv.delete(&keys::link(&link.token));
    kv.delete(&keys::link_by_path(&link.owner, &link.path, &link.token));
}

/// The link behind a token: NotFound if unknown or revoked, Expired if past its expiry.
pub fn resolve_link(kv: &dyn KvRead, token: &LinkToken, now_ms: i64) -> Result<Link, ModelError> {
    let link = load(kv, token)?;
    if link.is_expired(now_ms) {
        return Err(ModelError::Expired("link".into()));
    }
    Ok(link)
}

/// Links of exactly `path` of `owner`, by token.
pub fn list_links(kv: &dyn KvRead, owner: &str, path: &str) -> Result<Vec<Link>, ModelError> {
    validate_user_id(owner)?;
    validate_non_root(path)?;
    let (start, end) = keys::links_of_path(owner, path);
    links_in(kv, start, end)
}

fn links_in(kv: &dyn KvRead, start: Vec<u8>, end: Vec<u8>) -> Result<Vec<Link>, ModelError> {
    let mut tokens = Vec::new();
    scan_all(kv, start, end, |key, _| {
        tokens.push(keys::token_of_link_by_path(key).ok_or_else(|| ModelError::Corrupt("link index key".into()))?);
        Ok(())
    })?;
    tokens.iter().map(|t| load(kv, t)).collect()
}

fn links_in_subtree(kv: &dyn KvRead, owner: &str, path: &str) -> Result<Vec<Link>, ModelError> {
    let (start, end) = keys::links_of_path(owner, path);
    let mut links = links_in(kv, start, end)?;
    let (start, end) = keys::links_under(owner, &paths::descendant_prefix(path));
    links.extend(links_in(kv, start, end)?);
    Ok(links)
}

/// Rewrites the links at and below `from` to point below `to`; returns how many.
pub(crate) fn move_subtree(kv: &mut dyn KvWrite, owner: &str, from: &str, to: &str) -> Result<u64, ModelError> {
    let links = links_in_subtree(kv, owner, from)?;
    for mut link in links.iter().cloned() {
        remove(kv, &link);
        link.path = paths::rebase(&link.path, from, to);
        kv.put(&keys::link(&link.token), &encode(&link)?);
        kv.put(&keys::link_by_path(owner, &link.path, &link.token), &[]);
    }
    Ok(links.len() as u64)
}

/// Revokes the links at and below `path`; returns their tokens.
pub(crate) fn remove_subtree(kv: &mut dyn KvWrite, owner: &str, path: &str) -> Result<Vec<LinkToken>, ModelError> {
    let links = links_in_subtree(kv, owner, path)?;
    for link in &links {
        remove(kv, link);
    }
    Ok(links.iter().map(|l| l.token).collect())
}
