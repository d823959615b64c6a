//! Operator commands: users and cluster status, through the metadata nodes.

use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, ClusterResponse, NodeInfo, NodeKind, User};
use tessera_meta::command::{GroupAnswer, GroupCommand, GroupQuery, GroupResponse};
use tessera_meta::model::{QueryResponse, ShardCommand, ShardQuery, ShardResponse};
use tessera_router::cluster_view::ClusterView;
use tessera_router::repair::Mode;

use crate::remote::meta_endpoints;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Cluster at a glance: nodes up/down, group leaders, capacity, under-replicated chunks.
    Status,
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Scrub every block node, then rebuild missing or corrupt fragments of every
    /// referenced chunk onto their placement nodes.
    Repair {
        /// Skip the scrub (only fragments that are absent get rebuilt).
        #[arg(long)]
        no_scrub: bool,
        #[command(flatten)]
        args: crate::maintenance::RepairArgs,
    },
    /// Move fragments whose placement changed (after adding or removing block
    /// nodes) and delete the copies left behind, never dropping below full redundancy.
    Rebalance {
        #[command(flatten)]
        args: crate::maintenance::RepairArgs,
    },
    /// Garbage collection: give back the space of unreferenced chunks.
    Gc {
        #[command(subcommand)]
        command: crate::gc::GcCommand,
    },
    /// Storage tiers: set them, see bytes per tier, run a tiering pass.
    Tier {
        #[command(subcommand)]
        command: crate::tier::TierCommand,
    },
    /// The cluster's metadata shards.
    Cluster {
        #[command(subcommand)]
        command: ClusterAdminCommand,
    },
    /// Metadata shard groups: add, fill, drain, status.
    Shard {
        #[command(subcommand)]
        command: crate::shards::ShardAdminCommand,
    },
    /// Block node membership.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Print the argon2id hash of a console password read from stdin, for
    /// `[admin] password_hash` in router.toml.
    HashPassword,
    /// A user's change log (what sync clients read), oldest first.
    Changes {
        user: String,
        /// Only events after this cursor.
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Register a block node (or change its address or zone); placement changes
    /// at once, run `rebalance` to move existing fragments.
    Add {
        id: String,
        /// host:port the node listens on.
        addr: String,
        #[arg(long, default_value = "")]
        zone: String,
        /// A label (repeatable); a storage tier is the set of nodes carrying its label.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Remove a block node from placement; run `rebalance` to rebuild its
    /// fragments elsewhere before retiring the machine.
    Remove { id: String },
}

#[derive(Subcommand)]
pub enum ClusterAdminCommand {
    /// Create metadata shard group 1 on the given metadata nodes, once every one
    /// of them runs and has joined the cluster group. Does nothing when the shard
    /// map already has a shard, so it can be run again safely.
    Init {
        /// A replica as NODE_ID=HOST:PORT (its `node_id` and the address it
        /// listens on); repeat for each, usually three.
        #[arg(long = "replica", required = true, value_parser = parse_replica)]
        replicas: Vec<(u64, String)>,
        /// Shard groups to create (users are spread over them).
        #[arg(long, default_value_t = 1)]
        shards: u32,
    },
}

/// `ID=HOST:PORT` of `admin cluster init --replica`.
pub(crate) fn parse_replica(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("expected NODE_ID=HOST:PORT, got {s:?}"))?;
    let id: u64 = id.trim().parse().map_err(|_| format!("node id {id:?} is not a number"))?;
    if id == 0 {
        return Err("node ids start at 1".into());
    }
    let addr = addr.trim();
    if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
        return Err(format!("{addr:?} is not HOST:PORT"));
    }
    Ok((id, addr.to_owned()))
}

/// `tessera admin cluster init`: what `tessera cluster up` does to a new
/// cluster's shard map, for clusters started by hand.
async fn init_cluster(meta: &MetaClient, replicas: &[(u64, String)], shards: u32, json: bool) -> anyhow::Result<()> {
    let mut ids: Vec<u64> = replicas.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    if ids.len() != replicas.len() {
        anyhow::bail!("each --replica needs its own node id");
    }
    let existing = crate::local_cluster::ensure_shards(meta, replicas, shards).await?;
    let created = existing.is_empty();
    let groups: Vec<u64> = if created { (1..=u64::from(shards)).collect() } else { existing.clone() };
    if json {
        println!("{}", json!({"created": created, "shard_groups": groups, "replicas": ids}));
    } else if created {
        println!("shard groups {groups:?} created on metadata nodes {ids:?}");
    } else {
        println!("the shard map already has shard groups {existing:?}; nothing done");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a new access key and secret.
    Create { name: String },
    /// A user's storage usage (logical bytes of every kept version), quota, and what
    /// deduplication saves (distinct chunk bytes beside the logical bytes).
    Show { name: String },
    /// Set a user's storage quota (e.g. 10GiB, or `none` for no limit).
    Quota { name: String, size: String },
    /// Move a user's metadata to another shard group while the user keeps working.
    Move {
        name: String,
        /// The shard group to move to.
        #[arg(long)]
        to: u64,
        /// Records copied per page (smaller is gentler on a busy group, and slower).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        page_records: u64,
    },
}

fn random_token(len: usize, alphabet: &[u8]) -> String {
    (0..len).map(|_| alphabet[rand::random_range(0..alphabet.len())] as char).collect()
}

/// New credentials: a 20-character access key and a 40-character secret.
pub fn new_credentials() -> (String, String) {
    let upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let any = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (format!("TK{}", random_token(18, upper)), random_token(40, any))
}

pub async fn create_user(meta: &MetaClient, name: &str) -> anyhow::Result<User> {
    let (access_key, secret_key) = new_credentials();
    let user = User {
        user_id: name.to_owned(),
        display_name: name.to_owned(),
        access_key,
        secret_key,
        created_at_ms: tessera_router::datapath::now_ms(),
    };
    match meta.propose(0, &GroupCommand::Cluster(ClusterCommand::CreateUser(user.clone()))).await? {
        (GroupResponse::Cluster(Ok(_)), _) => Ok(user),
        (GroupResponse::Cluster(Err(e)), _) => anyhow::bail!("{}", e.message),
        (other, _) => anyhow::bail!("unexpected answer {other:?}"),
    }
}

fn print_usage(json: bool, user: &str, u: &tessera_meta::model::usage::Usage) {
    if json {
        println!("{}", json!({"user_id": user, "usage_bytes": u.bytes, "quota_bytes": u.quota_bytes}));
    } else {
        let quota = match u.quota_bytes {
            Some(q) => {
                format!("{} ({:.1}% used)", indicatif::HumanBytes(q), 100.0 * u.bytes as f64 / (q.max(1)) as f64)
            }
            None => "none".into(),
        };
        println!(
            "user_id: {user}
usage:   {} ({} bytes)
quota:   {quota}",
            indicatif::HumanBytes(u.bytes),
            u.bytes
        );
    }
}

/// Proposes a membership change; returns the placement epoch after it.
pub(crate) async fn cluster_command(meta: &MetaClient, cmd: ClusterCommand) -> anyhow::Result<u64> {
    match meta.propose(0, &GroupCommand::Cluster(cmd)).await? {
        (GroupResponse::Cluster(Ok(ClusterResponse::Epoch(e))), _) => Ok(e),
        (GroupResponse::Cluster(Ok(_)), _) => cluster(meta, ClusterQuery::Epoch).await.and_then(|a| match a {
            ClusterAnswer::Epoch(e) => Ok(e),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }),
        (GroupResponse::Cluster(Err(e)), _) => anyhow::bail!("{}", e.message),
        (other, _) => anyhow::bail!("unexpected answer {other:?}"),
    }
}

pub async fn cluster(meta: &MetaClient, q: ClusterQuery) -> anyhow::Result<ClusterAnswer> {
    match meta.query(0, &GroupQuery::Cluster(q)).await? {
        GroupAnswer::Cluster(a) => Ok(a),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// `tessera admin hash-password`: a console password from stdin, its hash on stdout.
fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.len() < 12 {
        anyhow::bail!("use a console password of at least 12 characters");
    }
    println!("{}", crate::local_cluster::admin_password_hash(password)?);
    Ok(())
}

pub async fn run(json: bool, command: AdminCommand) -> anyhow::Result<()> {
    // Needs no cluster (nor TESSERA_META_ENDPOINT).
    if let AdminCommand::HashPassword = command {
        return hash_password();
    }
    let endpoints = meta_endpoints()?;
    let meta = MetaClient::new(endpoints.clone());
    match command {
        AdminCommand::Repair { no_scrub, args } => {
            return crate::maintenance::run(meta, Mode::Repair, !no_scrub, args, json).await;
        }
        AdminCommand::Rebalance { args } => {
            return crate::maintenance::run(meta, Mode::Rebalance, false, args, json).await;
        }
        AdminCommand::Gc { command } => return crate::gc::run(meta, command, json).await,
        AdminCommand::Tier { command } => return crate::tier::run(meta, command, json).await,
        AdminCommand::Shard { command } => return crate::shards::run(&meta, &endpoints, command, json).await,
        AdminCommand::User { command: UserCommand::Move { name, to, page_records } } => {
            return crate::shards::move_one(&meta, &name, to, page_records as usize, json).await;
        }
        AdminCommand::Cluster { command: ClusterAdminCommand::Init { replicas, shards } } => {
            return init_cluster(&meta, &replicas, shards, json).await;
        }
        AdminCommand::Node { command: NodeCommand::Add { id, addr, zone, labels } } => {
            let info = NodeInfo { kind: NodeKind::Block, id: id.clone(), addr, zone, labels };
            let epoch = cluster_command(&meta, ClusterCommand::RegisterNode(info)).await?;
            println!("block node {id} registered; placement epoch {epoch}");
        }
        AdminCommand::Node { command: NodeCommand::Remove { id } } => {
            let epoch =
                cluster_command(&meta, ClusterCommand::RemoveNode { kind: NodeKind::Block, id: id.clone() }).await?;
            println!("block node {id} removed; placement epoch {epoch}; run `tessera admin rebalance`");
        }
        AdminCommand::User { command: UserCommand::Create { name } } => {
            let u = create_user(&meta, &name).await?;
            if json {
                println!("{}", json!({"user_id": u.user_id, "access_key": u.access_key, "secret_key": u.secret_key}));
            } else {
                println!("user_id:    {}\naccess_key: {}\nsecret_key: {}", u.user_id, u.access_key, u.secret_key);
            }
        }
        AdminCommand::User { command: UserCommand::Show { name } } => {
            let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
            let q = ShardQuery::Usage { user_id: name.clone() };
            let QueryResponse::Usage(u) = view.shard_query(&name, q, std::time::Duration::ZERO).await? else {
                anyhow::bail!("unexpected answer to the usage query");
            };
            let q = ShardQuery::DedupStats { user_id: name.clone() };
            let QueryResponse::DedupStats(d) = view.shard_query(&name, q, std::time::Duration::ZERO).await? else {
                anyhow::bail!("unexpected answer to the dedup query");
            };
            if json {
                println!(
                    "{}",
                    json!({"user_id": name, "usage_bytes": u.bytes, "quota_bytes": u.quota_bytes,
                        "unique_chunk_bytes": d.unique_chunk_bytes, "dedup_savings_bytes": d.savings_bytes(),
                        "versions": d.versions, "distinct_chunks": d.distinct_chunks})
                );
            } else {
                print_usage(false, &name, &u);
                println!(
                    "stored:  {} in {} distinct chunks of {} versions (dedup saves {})",
                    indicatif::HumanBytes(d.unique_chunk_bytes),
                    d.distinct_chunks,
                    d.versions,
                    indicatif::HumanBytes(d.savings_bytes())
                );
            }
        }
        AdminCommand::User { command: UserCommand::Quota { name, size } } => {
            let quota_bytes = match size.as_str() {
                "none" | "unlimited" => None,
                s => Some(crate::bench::parse_size(s)?),
            };
            let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
            let cmd = ShardCommand::SetQuota { user_id: name.clone(), quota_bytes };
            match view.propose_for_user(&name, &GroupCommand::Shard(cmd)).await? {
                GroupResponse::Shard(Ok(ShardResponse::QuotaSet(u))) => print_usage(json, &name, &u),
                GroupResponse::Shard(Err(e)) => anyhow::bail!("{}", e.message),
                other => anyhow::bail!("unexpected answer {other:?}"),
            }
        }
        AdminCommand::Changes { user, after, limit } => {
            let view = ClusterView::without_mirrors(Arc::new(meta)).await?;
            let q = ShardQuery::ReadChanges {
                user_id: user.clone(),
                after_cursor: after,
                limit: limit.max(1),
                exclude_device: None,
            };
            let QueryResponse::Changes(page) = view.shard_query(&user, q, std::time::Duration::ZERO).await? else {
                anyhow::bail!("unexpected answer to the change-log query");
            };
            for e in &page.events {
                if json {
                    println!("{}", serde_json::to_string(e)?);
                } else {
                    let to = e.new_path.as_deref().map(|p| format!(" -> {p}")).unwrap_or_default();
                    println!("{:>8} {:?} {}{to} (device {})", e.cursor, e.kind, e.path, e.device_id);
                }
            }
        }
        AdminCommand::HashPassword => return hash_password(),
        AdminCommand::Status => {
            let status = crate::status::collect(&meta, &endpoints).await?;
            if json {
                println!("{status}");
            } else {
                crate::status::print(&status);
            }
        }
    }
    Ok(())
}
