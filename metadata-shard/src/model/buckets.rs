//! Buckets: a user's top-level folders seen through S3, and the one setting S3 keeps per
//! bucket that the namespace has no place for — its versioning state. A top-level folder
//! made any other way (CLI, sync) is a bucket too, with the default setting.

use serde::{Deserialize, Serialize};

use super::changelog::{self, ChangeKind, NewEvent, Origin};
use super::codec::{encode, get_decoded};
use super::command::Tx;
use super::kv::KvRead;
use super::namespace::{self, Entry};
use super::paths::{self, validate_non_root};
use super::types::validate_user_id;
use super::{keys, ModelError};

/// S3's three bucket versioning states. Tessera keeps versions of every file whatever
/// the state; the state decides what S3 clients are shown (versionId "null" and no
/// history until versioning is enabled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketVersioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketConfig {
    pub versioning: BucketVersioning,
}

fn validate_bucket_path(path: &str) -> Result<(), ModelError> {
    validate_non_root(path)?;
    if paths::parent(path) != Some(paths::ROOT) {
        return Err(ModelError::InvalidArgument(format!("{path} is not a top-level folder")));
    }
    Ok(())
}

/// Creates the top-level folder `path` with default settings; an existing live entry
/// there is `AlreadyExists` (S3's BucketAlreadyOwnedByYou), unlike "mkdir -p".
pub(crate) fn create_bucket(tx: &mut Tx<'_>, user: &str, path: &str, origin: Origin<'_>) -> Result<Entry, ModelError> {
    validate_user_id(user)?;
    validate_bucket_path(path)?;
    if namespace::load(tx.kv, user, path)?.is_some_and(|e| !e.deleted) {
        return Err(ModelError::AlreadyExists(path.to_string()));
    }
    // Settings of an earlier bucket of the same name do not carry over.
    tx.kv.delete(&keys::bucket(user, path));
    let (entry, _) = namespace::create_folder(tx, user, path, origin)?;
    Ok(entry)
}

/// Logged as a Modify of the bucket folder: routers drop cached settings on any change
/// event of the user, so every router sees the new state at once.
pub(crate) fn set_versioning(
    tx: &mut Tx<'_>,
    user: &str,
    path: &str,
    versioning: BucketVersioning,
    origin: Origin<'_>,
) -> Result<BucketConfig, ModelError> {
    validate_user_id(user)?;
    validate_bucket_path(path)?;
    if !namespace::load_live(tx.kv, user, path)?.is_folder() {
        return Err(ModelError::NotAFolder(path.to_string()));
    }
    let mut config = bucket_config(tx.kv, user, path)?;
    if versioning == BucketVersioning::Unversioned && config.versioning != BucketVersioning::Unversioned {
        // As in S3: once enabled, versioning can be suspended but never turned off.
        return Err(ModelError::InvalidArgument("versioning can be suspended but not turned off".into()));
    }
    config.versioning = versioning;
    tx.kv.put(&keys::bucket(user, path), &encode(&config)?);
    changelog::append(tx.kv, user, origin, NewEvent::new(ChangeKind::Modify, path))?;
    Ok(config)
}

/// The bucket's settings (the defaults when none were ever set).
pub fn bucket_config(kv: &dyn KvRead, user: &str, path: &str) -> Result<BucketConfig, ModelError> {
    validate_user_id(user)?;
    validate_bucket_path(path)?;
    Ok(get_decoded(kv, &keys::bucket(user, path), "bucket config")?.unwrap_or_default())
}
