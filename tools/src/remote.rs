//! Connecting to a router from the environment, and turning gRPC statuses
//! into one-line messages.

use anyhow::{anyhow, Context};
use tessera_router::client::TesseraClient;
use tonic::{Code, Status};

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

static OWNER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every client of this process act on `owner`'s shared files (`--owner`).
pub fn act_for_owner(owner: String) {
    let _ = OWNER.set(owner);
}

/// A client for `TESSERA_ENDPOINT` with the configured credentials.
pub async fn connect() -> anyhow::Result<TesseraClient> {
    let endpoint = env(&["TESSERA_ENDPOINT"])
        .ok_or_else(|| anyhow!("TESSERA_ENDPOINT is not set (source DIR/env of `tessera dev`)"))?;
    let access = env(&["TESSERA_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
        .ok_or_else(|| anyhow!("no access key: set TESSERA_ACCESS_KEY (or AWS_ACCESS_KEY_ID)"))?;
    let secret = env(&["TESSERA_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"])
        .ok_or_else(|| anyhow!("no secret key: set TESSERA_SECRET_KEY (or AWS_SECRET_ACCESS_KEY)"))?;
    TesseraClient::connect_for(&endpoint, &access, &secret, OWNER.get().map(String::as_str))
        .await
        .with_context(|| format!("cannot reach Tessera at {endpoint}"))
}

/// The metadata endpoint for admin commands.
pub fn meta_endpoints() -> anyhow::Result<Vec<String>> {
    let v = env(&["TESSERA_META_ENDPOINT"]).ok_or_else(|| anyhow!("TESSERA_META_ENDPOINT is not set"))?;
    Ok(v.split(',').map(|s| s.trim().trim_start_matches("http://").to_owned()).filter(|s| !s.is_empty()).collect())
}

/// One line a person can act on.
pub fn explain(status: Status) -> anyhow::Error {
    let what = match status.code() {
        Code::NotFound => "not found",
        Code::Unauthenticated => "bad credentials",
        Code::PermissionDenied => "permission denied",
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => "invalid request",
        Code::AlreadyExists => "already exists",
        Code::Aborted => "conflict",
        Code::Unavailable => "cluster unavailable",
        Code::DataLoss => "data integrity error",
        _ => "error",
    };
    let msg = status.message().lines().next().unwrap_or("").to_owned();
    anyhow!("{what}: {msg}")
}
