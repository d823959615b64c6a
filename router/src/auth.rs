//! Request authentication for the native API: an access key, a timestamp and
//! an HMAC-SHA256 of both plus the method path under the user's secret, so
//! the secret never travels and a captured signature expires with its clock
//! window. Users are looked up in the cluster group and cached briefly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterQuery, User};
use tessera_meta::command::{GroupAnswer, GroupQuery};

use crate::error::RouterError;

pub const ACCESS_KEY: &str = "x-tessera-access-key";
pub const DATE: &str = "x-tessera-date";
pub const SIGNATURE: &str = "x-tessera-signature";
/// Largest accepted difference between the client's and the router's clock.
pub const CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
const CACHE_TTL: Duration = Duration::from_secs(30);

/// The gRPC method path of a request (`/tessera.api.v1.Tessera/Put`), put in
/// the request's extensions by [`tag_method_path`] so handlers can check
/// signatures that cover it.
#[derive(Clone, Debug)]
pub struct MethodPath(pub String);

/// Axum middleware recording each request's path as a [`MethodPath`].
pub async fn tag_method_path(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().to_owned();
    req.extensions_mut().insert(MethodPath(path));
    next.run(req).await
}

/// The string a client signs.
pub fn string_to_sign(access_key: &str, date_ms: i64, method: &str) -> String {
    format!("{access_key}\n{date_ms}\n{method}")
}

/// Hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &str, message: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Metadata a client attaches to a call of `method` ("/tessera.api.v1.Tessera/Put").
pub fn client_headers(access_key: &str, secret: &str, method: &str, now_ms: i64) -> [(&'static str, String); 3] {
    [
        (ACCESS_KEY, access_key.to_owned()),
        (DATE, now_ms.to_string()),
        (SIGNATURE, sign(secret, &string_to_sign(access_key, now_ms, method))),
    ]
}

pub struct Authenticator {
    meta: std::sync::Arc<MetaClient>,
    cache: Mutex<HashMap<String, (Instant, User)>>,
}

impl Authenticator {
    pub fn new(meta: std::sync::Arc<MetaClient>) -> Self {
        Self { meta, cache: Mutex::default() }
    }

    pub async fn user(&self, access_key: &str) -> Result<Option<User>, RouterError> {
        if let Some((at, user)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(access_key) {
            if at.elapsed() < CACHE_TTL {
                return Ok(Some(user.clone()));
            }
        }
        let q = GroupQuery::Cluster(ClusterQuery::UserByAccessKey(access_key.to_owned()));
        let user = match self.meta.query(0, &q).await? {
            GroupAnswer::Cluster(ClusterAnswer::User(u)) => u,
            other => return Err(RouterError::Metadata(format!("unexpected answer {other:?}"))),
        };
        if let Some(u) = &user {
            self.cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(access_key.to_owned(), (Instant::now(), u.clone()));
        }
        Ok(user)
    }

    /// Checks the request's credentials; returns the authenticated user.
    pub async fn verify(
        &self,
        access_key: Option<&str>,
        date: Option<&str>,
        signature: Option<&str>,
        method: &str,
        now_ms: i64,
    ) -> Result<User, RouterError> {
        let (Some(access_key), Some(date), Some(signature)) = (access_key, date, signature) else {
            return Err(RouterError::Unauthenticated("missing credentials (access key, date, signature)".into()));
        };
        let date_ms: i64 = date.parse().map_err(|_| RouterError::Unauthenticated("bad date".into()))?;
        if (now_ms - date_ms).unsigned_abs() > CLOCK_SKEW.as_millis() as u64 {
            return Err(RouterError::Unauthenticated("request date is too far from the server's clock".into()));
        }
        let user =
            self.user(access_key).await?.ok_or_else(|| RouterError::Unauthenticated("unknown access key".into()))?;
        let sig = hex::decode(signature).map_err(|_| RouterError::Unauthenticated("malformed signature".into()))?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(user.secret_key.as_bytes())
            .map_err(|_| RouterError::Unauthenticated("unusable secret".into()))?;
        mac.update(string_to_sign(access_key, date_ms, method).as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).map_err(|_| RouterError::Unauthenticated("signature does not match".into()))?;
        Ok(user)
    }
}
