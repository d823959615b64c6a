//! What `tessera dev` and `tessera cluster up` both do to a new cluster:
//! pick ports, register block nodes, create the metadata shard and the
//! default user, and write `DIR/env`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, NodeInfo, NodeKind, User};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery};

/// How long a port claim keeps other clusters off a port: longer than any
/// cluster of a test run lives, short enough that claims of clusters long gone
/// do not pile up.
const PORT_CLAIM_TTL: Duration = Duration::from_secs(6 * 3600);

/// A port for a process of a local cluster (`tessera dev`, `tessera cluster up`),
/// which binds it later and again after every restart:
/// - below the kernel's ephemeral range, so no outgoing connection of any process
///   can take it while its process is down between a kill and a restart (ports the
///   kernel hands out for port 0 are in that range and are taken that way);
/// - claimed by a file in a machine-wide directory, so clusters started at the
///   same moment never pick the same port;
/// - free on 127.0.0.1 right now (a bind succeeds).
pub fn free_port() -> anyhow::Result<u16> {
    let (low, high) = claimable_range();
    let claims = std::env::temp_dir().join("tessera-port-claims");
    std::fs::create_dir_all(&claims).with_context(|| format!("creating {}", claims.display()))?;
    for _ in 0..1000 {
        let port = rand::random_range(low..high);
        let claim = claims.join(port.to_string());
        if let Ok(meta) = std::fs::metadata(&claim) {
            let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
            if age > PORT_CLAIM_TTL {
                let _ = std::fs::remove_file(&claim);
            }
            continue;
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("claiming port {port} in {}", claims.display())),
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
        // In use by something that is not a local cluster: leave the claim so
        // nobody tries it again soon.
    }
    anyhow::bail!("no free port on 127.0.0.1 in {low}..{high} after 1000 tries")
}

/// Ports from 10000 up to the start of the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`).
fn claimable_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32_768);
    if ephemeral_start >= LOW + 1000 {
        (LOW, ephemeral_start)
    } else {
        // A machine whose ephemeral range starts low: use the ports above it.
        (61_000, 65_535)
    }
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

/// Creates metadata shard groups 1..=`count` on `replicas` unless the shard map
/// has groups already; returns the groups already in the map (empty when it
/// created them). Group g's replica list starts at replica (g-1) mod n, and the
/// first replica initializes the group and leads it, so the nodes share leadership.
pub async fn ensure_shards(meta: &MetaClient, replicas: &[(u64, String)], count: u32) -> anyhow::Result<Vec<u64>> {
    if count == 0 {
        anyhow::bail!("a cluster needs at least one shard group");
    }
    let shards = match meta.query(0, &GroupQuery::Cluster(ClusterQuery::ShardMap)).await? {
        GroupAnswer::Cluster(ClusterAnswer::ShardMap(s)) => s,
        other => anyhow::bail!("unexpected answer {other:?}"),
    };
    if shards.is_empty() {
        for group in 1..=u64::from(count) {
            let mut rotated = replicas.to_vec();
            if !rotated.is_empty() {
                let start = ((group - 1) % rotated.len() as u64) as usize;
                rotated.rotate_left(start);
            }
            meta.create_shard(group, &rotated, 64)
                .await
                .with_context(|| format!("creating metadata shard group {group}"))?;
        }
    }
    Ok(shards.iter().map(|s| s.group_id).collect())
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
