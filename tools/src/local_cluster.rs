//! What `tessera dev` and `tessera cluster up` both do to a new cluster:
//! pick ports, register block nodes, create the metadata shard and the
//! default user, and write `DIR/env`.

use std::path::Path;

use anyhow::Context;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, NodeInfo, NodeKind, User};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> anyhow::Result<u16> {
    // The kernel may hand the same free port out twice in a row; a cluster's
    // processes must not share one.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no new free port on 127.0.0.1")
}

/// Registers (or updates) a block node in the cluster group.
pub async fn register_block(
    meta: &MetaClient,
    id: &str,
    addr: &str,
    zone: &str,
    labels: Vec<String>,
) -> anyhow::Result<()> {
    let info =
        NodeInfo { kind: NodeKind::Block, id: id.to_owned(), addr: addr.to_owned(), zone: zone.to_owned(), labels };
    meta.propose(0, &GroupCommand::Cluster(ClusterCommand::RegisterNode(info))).await?;
    Ok(())
}

/// Creates metadata shard 1 on `replicas` unless a shard exists already.
pub async fn ensure_shard(meta: &MetaClient, replicas: &[(u64, String)]) -> anyhow::Result<()> {
    let shards = match meta.query(0, &GroupQuery::Cluster(ClusterQuery::ShardMap)).await? {
        GroupAnswer::Cluster(ClusterAnswer::ShardMap(s)) => s,
        other => anyhow::bail!("unexpected answer {other:?}"),
    };
    if shards.is_empty() {
        meta.create_shard(1, replicas, 64).await.context("creating the metadata shard")?;
    }
    Ok(())
}

/// Creates the cluster's default user with the given credentials.
pub async fn create_user(
    meta: &MetaClient,
    user_id: &str,
    display: &str,
    access: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let user = User {
        user_id: user_id.to_owned(),
        display_name: display.to_owned(),
        access_key: access.to_owned(),
        secret_key: secret.to_owned(),
        created_at_ms: tessera_router::datapath::now_ms(),
    };
    meta.propose(0, &GroupCommand::Cluster(ClusterCommand::CreateUser(user))).await?;
    Ok(())
}

/// The endpoints and credentials a local cluster hands to its clients.
pub struct ClientEnv<'a> {
    pub router: &'a str,
    pub s3: &'a str,
    pub meta: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// The operator console's URL and admin password, when it is on.
    pub admin: Option<(&'a str, &'a str)>,
}

/// Writes `DIR/env`: `export` lines for the CLI and S3 tools (atomically).
pub fn write_env(dir: &Path, env: &ClientEnv<'_>) -> anyhow::Result<()> {
    let ClientEnv { router, s3, meta, access_key: access, secret_key: secret, admin } = env;
    let mut text = format!(
        "export TESSERA_ENDPOINT={router}\nexport TESSERA_META_ENDPOINT={meta}\nexport TESSERA_ACCESS_KEY={access}\n\
         export TESSERA_SECRET_KEY={secret}\nexport TESSERA_S3_ENDPOINT={s3}\nexport AWS_ENDPOINT_URL={s3}\n\
         export AWS_ACCESS_KEY_ID={access}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_REGION=us-east-1\n"
    );
    if let Some((url, password)) = admin {
        text.push_str(&format!("export TESSERA_ADMIN_URL={url}\nexport TESSERA_ADMIN_PASSWORD={password}\n"));
    }
    let path = dir.join("env");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// A new console password (24 characters) and its argon2id hash for `[admin] password_hash`.
pub fn new_admin_password() -> anyhow::Result<(String, String)> {
    let any = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let password: String = (0..24).map(|_| any[rand::random_range(0..any.len())] as char).collect();
    Ok((password.clone(), admin_password_hash(&password)?))
}

/// The argon2id PHC string of a console password (random salt).
pub fn admin_password_hash(password: &str) -> anyhow::Result<String> {
    Ok(tessera_meta::password::hash_password(password, &rand::random::<[u8; 16]>())?)
}
