//! `tessera admin shard …` and `tessera admin user move`: growing, draining and
//! inspecting the metadata tier. Every change of where a user lives goes
//! through a user move (`tessera_router::user_move`); the cluster group
//! refuses shard-map changes that would strand anyone's data.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};
use tessera_meta::client::MetaClient;
use tessera_meta::cluster::{ClusterAnswer, ClusterCommand, ClusterQuery, ShardGroup};
use tessera_meta::command::{GroupAnswer, GroupQuery};
use tessera_meta::model::{QueryResponse, ShardQuery};
use tessera_meta::user_placement::UserPlacement;
use tessera_router::user_move::{self, MoveOptions, MoveProgress};

use crate::admin::{cluster, cluster_command};

#[derive(Subcommand)]
pub enum ShardAdminCommand {
    /// Create a shard group and move to it the users the ring now gives it.
    Add {
        /// A replica as NODE_ID=HOST:PORT; repeat for each (default: up to
        /// three metadata nodes of TESSERA_META_ENDPOINT, the one leading the
        /// fewest groups first, so it becomes the new group's leader).
        #[arg(long = "replica", value_parser = crate::admin::parse_replica)]
        replicas: Vec<(u64, String)>,
        /// Ring positions of the group (its share of users relative to the others).
        #[arg(long, default_value_t = 64)]
        vnodes: u32,
    },
    /// Move to GROUP every user the ring places there but who still lives
    /// elsewhere (finishes an interrupted `shard add`).
    Fill { group: u64 },
    /// Move every user off GROUP, then remove it from the shard map.
    Drain { group: u64 },
    /// Users, keys, bytes of metadata and commit rate per group, and which
    /// users to move to even them out.
    Status,
}

/// `tessera admin user move USER --to GROUP`.
pub async fn move_one(
    meta: &MetaClient,
    user: &str,
    to: u64,
    page_records: usize,
    json_out: bool,
) -> anyhow::Result<()> {
    let options = MoveOptions { page_records, ..MoveOptions::by("tessera admin user move") };
    let done = user_move::move_user(meta, user, to, &options, print_progress).await?;
    end_progress_line();
    report(&done, json_out);
    Ok(())
}

/// Progress lines are rewritten in place, for people; logs get the final report only.
fn on_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn end_progress_line() {
    if on_terminal() {
        eprintln!();
    }
}

fn print_progress(p: &MoveProgress) {
    if !on_terminal() {
        return;
    }
    let secs = (p.elapsed_ms as f64 / 1000.0).max(0.001);
    eprint!(
        "\rmoving {} from group {} to {}: {} records, {} ({}/s)   ",
        p.user_id,
        p.from,
        p.to,
        p.records,
        indicatif::HumanBytes(p.bytes),
        indicatif::HumanBytes((p.bytes as f64 / secs) as u64)
    );
}

fn report(p: &MoveProgress, json_out: bool) {
    if json_out {
        println!("{}", json!(p));
    } else {
        println!(
            "user {} moved from group {} to group {}: {} records, {} in {:.1}s ({} written meanwhile; writes waited {} ms)",
            p.user_id,
            p.from,
            p.to,
            p.records,
            indicatif::HumanBytes(p.bytes),
            p.elapsed_ms as f64 / 1000.0,
            p.replayed,
            p.fenced_ms
        );
    }
}

async fn shard_map(meta: &MetaClient) -> anyhow::Result<Vec<ShardGroup>> {
    match cluster(meta, ClusterQuery::ShardMap).await? {
        ClusterAnswer::ShardMap(s) => Ok(s),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

async fn user_ids(meta: &MetaClient) -> anyhow::Result<Vec<String>> {
    match cluster(meta, ClusterQuery::Users).await? {
        ClusterAnswer::Users(u) => Ok(u.into_iter().map(|u| u.user_id).collect()),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

fn ring(groups: &[ShardGroup]) -> Vec<(u64, u32)> {
    groups.iter().map(|g| (g.group_id, g.vnodes)).collect()
}

/// The metadata nodes of `endpoints` with their node ids and how many groups each leads.
async fn meta_nodes(meta: &MetaClient, endpoints: &[String]) -> anyhow::Result<Vec<(u64, String, usize)>> {
    let mut nodes = Vec::new();
    for addr in endpoints {
        let status = meta.status(addr).await.with_context(|| format!("asking metadata node {addr}"))?;
        let leads = status.groups.iter().filter(|g| g.leader == Some(status.node_id)).count();
        nodes.push((status.node_id, addr.clone(), leads));
    }
    nodes.sort_by_key(|(id, _, leads)| (*leads, *id));
    Ok(nodes)
}

/// Moves users one after another, with a progress line per user and totals.
/// `what` names the operation; each move record carries it with the count so
/// far, so `admin status` and the console show how far the operation got.
async fn move_users(meta: &MetaClient, what: &str, moves: &[(String, u64)], json_out: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut bytes, mut failed) = (0u64, Vec::new());
    for (i, (user, to)) in moves.iter().enumerate() {
        eprintln!("[{}/{}] user {user} -> group {to}", i + 1, moves.len());
        let by = format!(
            "tessera admin shard {what}: user {} of {}, {} moved before it",
            i + 1,
            moves.len(),
            indicatif::HumanBytes(bytes)
        );
        match user_move::move_user(meta, user, *to, &MoveOptions::by(&by), print_progress).await {
            Ok(done) => {
                end_progress_line();
                bytes += done.bytes;
                report(&done, json_out);
            }
            Err(e) => {
                end_progress_line();
                eprintln!("user {user} not moved: {e}");
                failed.push(user.clone());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "{} of {} users moved, {} of metadata ({}/s)",
        moves.len() - failed.len(),
        moves.len(),
        indicatif::HumanBytes(bytes),
        indicatif::HumanBytes((bytes as f64 / secs) as u64)
    );
    if !failed.is_empty() {
        anyhow::bail!("{} user(s) not moved ({}); run the command again", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// Users the ring places on `group` who live elsewhere, with their target.
async fn misplaced_on(meta: &MetaClient, group: u64) -> anyhow::Result<Vec<(String, u64)>> {
    let groups = shard_map(meta).await?;
    let placement = user_move::user_placement(meta).await?;
    let ring_only = UserPlacement::new(&ring(&groups), BTreeMap::new());
    Ok(user_ids(meta)
        .await?
        .into_iter()
        .filter(|u| ring_only.group_for_user(u) == Some(group) && placement.group_for_user(u) != Some(group))
        .map(|u| (u, group))
        .collect())
}

async fn add(
    meta: &MetaClient,
    endpoints: &[String],
    replicas: Vec<(u64, String)>,
    vnodes: u32,
    json_out: bool,
) -> anyhow::Result<()> {
    if vnodes == 0 {
        anyhow::bail!("a shard group needs at least one vnode");
    }
    let groups = shard_map(meta).await?;
    if groups.is_empty() {
        anyhow::bail!("the cluster has no shard groups yet; create them with `tessera admin cluster init`");
    }
    let replicas = if replicas.is_empty() {
        meta_nodes(meta, endpoints).await?.into_iter().take(3).map(|(id, addr, _)| (id, addr)).collect()
    } else {
        replicas
    };
    let group = groups.iter().map(|g| g.group_id).max().unwrap_or(0) + 1;
    let voters = meta.create_group(group, &replicas).await.with_context(|| format!("creating Raft group {group}"))?;
    // Pin the users the new ring hands to the group where they are, so adding
    // it strands no one; then move them over one by one.
    let placement = user_move::user_placement(meta).await?;
    let mut grown = ring(&groups);
    grown.push((group, vnodes));
    let after = UserPlacement::new(&grown, placement.assignments().clone());
    let mut pinned = 0;
    for user in user_ids(meta).await? {
        if let (Some(now), Some(next)) = (placement.group_for_user(&user), after.group_for_user(&user)) {
            if now != next {
                cluster_command(meta, ClusterCommand::AssignUser { user_id: user, group_id: Some(now) }).await?;
                pinned += 1;
            }
        }
    }
    let entry = ShardGroup { group_id: group, replicas: voters.clone(), vnodes };
    let epoch = cluster_command(meta, ClusterCommand::PutShardGroup(entry)).await?;
    eprintln!(
        "shard group {group} created on metadata nodes {voters:?} (placement epoch {epoch}); {pinned} user(s) to move"
    );
    if json_out {
        println!("{}", json!({"group": group, "replicas": voters, "vnodes": vnodes, "users_to_move": pinned}));
    }
    move_users(meta, &format!("add {group}"), &misplaced_on(meta, group).await?, json_out).await
}

async fn drain(meta: &MetaClient, group: u64, json_out: bool) -> anyhow::Result<()> {
    let groups = shard_map(meta).await?;
    if !groups.iter().any(|g| g.group_id == group) {
        anyhow::bail!("no shard group {group} in the shard map");
    }
    let rest: Vec<ShardGroup> = groups.iter().filter(|g| g.group_id != group).cloned().collect();
    if rest.is_empty() {
        anyhow::bail!("shard group {group} is the only one; add another before draining it");
    }
    let ring_without = UserPlacement::new(&ring(&rest), BTreeMap::new());
    // Users created while the drain runs may land on the group: go round until none is left.
    for _ in 0..3 {
        let placement = user_move::user_placement(meta).await?;
        let moves: Vec<(String, u64)> = user_ids(meta)
            .await?
            .into_iter()
            .filter(|u| placement.group_for_user(u) == Some(group))
            .filter_map(|u| ring_without.group_for_user(&u).map(|to| (u, to)))
            .collect();
        if moves.is_empty() {
            break;
        }
        move_users(meta, &format!("drain {group}"), &moves, json_out).await?;
    }
    // The cluster group knows only the users it has; the group itself must
    // hold no user's record either before it leaves the map.
    let (_, _, left) = group_numbers(meta, group).await?;
    if left > 0 {
        anyhow::bail!(
            "shard group {group} still holds {left} user record(s) after its users moved off; it stays in the \
             shard map (run `tessera admin shard drain {group}` again, or look for users the cluster group does not know)"
        );
    }
    let epoch = cluster_command(meta, ClusterCommand::RemoveShardGroup { group_id: group }).await?;
    // The users moved off carry assignments to their ring group; without the
    // drained group in the ring those say nothing the ring does not.
    let placement = user_move::user_placement(meta).await?;
    for (user, to) in placement.assignments().clone() {
        if placement.ring_group_for(&user) == Some(to) {
            cluster_command(meta, ClusterCommand::AssignUser { user_id: user, group_id: None }).await?;
        }
    }
    eprintln!(
        "shard group {group} drained and removed from the shard map (placement epoch {epoch}); its Raft \
         replicas stay on the metadata nodes, idle"
    );
    Ok(())
}

/// Keys, bytes and user records of one group.
async fn group_numbers(meta: &MetaClient, group: u64) -> anyhow::Result<(u64, u64, u64)> {
    match meta.query(group, &GroupQuery::Shard(ShardQuery::Footprint)).await? {
        GroupAnswer::Shard(Ok(QueryResponse::Footprint { keys, bytes, user_records })) => {
            Ok((keys, bytes, user_records))
        }
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// The highest log index any node reports for each group.
async fn log_indexes(meta: &MetaClient, endpoints: &[String]) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for addr in endpoints {
        if let Ok(status) = meta.status(addr).await {
            for g in status.groups {
                let index = g.last_applied.unwrap_or(0);
                let e = out.entry(g.group_id).or_insert(0);
                *e = (*e).max(index);
            }
        }
    }
    out
}

async fn status(meta: &MetaClient, endpoints: &[String], json_out: bool) -> anyhow::Result<()> {
    const SAMPLE: Duration = Duration::from_secs(1);
    let groups = shard_map(meta).await?;
    let placement = user_move::user_placement(meta).await?;
    let users = user_ids(meta).await?;
    let before = log_indexes(meta, endpoints).await;
    tokio::time::sleep(SAMPLE).await;
    let after = log_indexes(meta, endpoints).await;
    let mut rows = Vec::new();
    for g in &groups {
        let on: Vec<&String> = users.iter().filter(|u| placement.group_for_user(u) == Some(g.group_id)).collect();
        let (keys, bytes, _) = group_numbers(meta, g.group_id).await?;
        let rate = after.get(&g.group_id).unwrap_or(&0).saturating_sub(*before.get(&g.group_id).unwrap_or(&0)) as f64
            / SAMPLE.as_secs_f64();
        let mut weights = Vec::new();
        for user in on.iter().take(1000) {
            weights.push(json!({"user_id": user, "usage_bytes": usage_of(meta, g.group_id, user).await?}));
        }
        rows.push(json!({"group": g.group_id, "users": on.len(), "keys": keys, "bytes": bytes,
            "commits_per_sec": rate, "vnodes": g.vnodes, "replicas": g.replicas,
            "user_ids": on.iter().take(1000).collect::<Vec<_>>(), "user_usage": weights}));
    }
    let suggestion = suggest(&rows);
    if json_out {
        println!("{}", json!({"groups": rows, "suggested_moves": suggestion}));
        return Ok(());
    }
    println!("{:>6} {:>7} {:>10} {:>10} {:>10}", "group", "users", "keys", "metadata", "commits/s");
    for r in &rows {
        println!(
            "{:>6} {:>7} {:>10} {:>10} {:>10.1}",
            r["group"].to_string(),
            r["users"].to_string(),
            r["keys"].to_string(),
            indicatif::HumanBytes(r["bytes"].as_u64().unwrap_or(0)).to_string(),
            r["commits_per_sec"].as_f64().unwrap_or(0.0)
        );
    }
    if suggestion.is_empty() {
        println!("no user move would bring the groups closer");
    }
    for s in suggestion {
        println!("suggest: tessera admin user move {} --to {}", s["user_id"].as_str().unwrap_or("?"), s["to"]);
    }
    Ok(())
}

/// A user's stored bytes (the weight `shard status` balances by).
async fn usage_of(meta: &MetaClient, group: u64, user: &str) -> anyhow::Result<u64> {
    let q = GroupQuery::Shard(ShardQuery::Usage { user_id: user.to_owned() });
    match meta.query(group, &q).await? {
        GroupAnswer::Shard(Ok(QueryResponse::Usage(u))) => Ok(u.bytes),
        // Moving right now: it counts as nothing here.
        GroupAnswer::Shard(Err(_)) => Ok(0),
        other => anyhow::bail!("unexpected answer {other:?}"),
    }
}

/// Users to move from the group with the most metadata bytes to the one with
/// the fewest, when the largest holds over 1.5× the smallest. A user's share
/// of its group's metadata is estimated by its share of the group's stored
/// bytes (equal shares when nobody stores anything); heaviest first, each
/// user that brings the two groups closer is named.
fn suggest(rows: &[Value]) -> Vec<Value> {
    let by_bytes = |r: &&Value| r["bytes"].as_u64().unwrap_or(0);
    let (Some(big), Some(small)) = (rows.iter().max_by_key(by_bytes), rows.iter().min_by_key(by_bytes)) else {
        return Vec::new();
    };
    let (b, s) = (big["bytes"].as_u64().unwrap_or(0), small["bytes"].as_u64().unwrap_or(0));
    let mut users: Vec<(String, u64)> = big["user_usage"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| (u["user_id"].as_str().unwrap_or_default().to_owned(), u["usage_bytes"].as_u64().unwrap_or(0)))
        .collect();
    if big["group"] == small["group"] || (b as f64) <= 1.5 * (s as f64).max(1.0) || users.len() < 2 {
        return Vec::new();
    }
    let total: u64 = users.iter().map(|(_, w)| w).sum();
    let estimate = |w: u64| if total == 0 { b as f64 / users.len() as f64 } else { b as f64 * w as f64 / total as f64 };
    let estimates: Vec<f64> = users.iter().map(|(_, w)| estimate(*w)).collect();
    let mut order: Vec<usize> = (0..users.len()).collect();
    order.sort_by(|x, y| estimates[*y].total_cmp(&estimates[*x]));
    let goal = (b - s) as f64 / 2.0;
    let (mut moved, mut picked) = (0.0, Vec::new());
    for i in order {
        // Never empty the group; take a user only if the two groups end up closer.
        if picked.len() + 1 == users.len() {
            break;
        }
        if (goal - (moved + estimates[i])).abs() < (goal - moved).abs() {
            moved += estimates[i];
            picked.push(i);
        }
    }
    picked.sort();
    picked
        .into_iter()
        .rev()
        .map(|i| users.swap_remove(i))
        .map(|(u, _)| json!({"user_id": u, "from": big["group"], "to": small["group"]}))
        .collect()
}

pub async fn run(
    meta: &MetaClient,
    endpoints: &[String],
    command: ShardAdminCommand,
    json_out: bool,
) -> anyhow::Result<()> {
    match command {
        ShardAdminCommand::Add { replicas, vnodes } => add(meta, endpoints, replicas, vnodes, json_out).await,
        ShardAdminCommand::Fill { group } => {
            move_users(meta, &format!("fill {group}"), &misplaced_on(meta, group).await?, json_out).await
        }
        ShardAdminCommand::Drain { group } => drain(meta, group, json_out).await,
        ShardAdminCommand::Status => status(meta, endpoints, json_out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_moving_the_heavy_users_from_the_heaviest_group_only_when_uneven() {
        let row = |g: u64, bytes: u64, users: &[(&str, u64)]| {
            let usage: Vec<Value> = users.iter().map(|(u, w)| json!({"user_id": u, "usage_bytes": w})).collect();
            json!({"group": g, "bytes": bytes, "user_usage": usage})
        };
        let even = [row(1, 1000, &[("a", 1), ("b", 1)]), row(2, 900, &[("c", 1), ("d", 1)])];
        assert!(suggest(&even).is_empty());
        // One heavy user carries the group: it alone goes.
        let one_heavy = [row(1, 4000, &[("light", 10), ("heavy", 1000)]), row(2, 0, &[])];
        let s = suggest(&one_heavy);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            (s[0]["user_id"].as_str(), s[0]["from"].as_u64(), s[0]["to"].as_u64()),
            (Some("heavy"), Some(1), Some(2))
        );
        // Equal users: half of them.
        let equal = [row(1, 4000, &[("a", 5), ("b", 5), ("c", 5), ("d", 5)]), row(2, 0, &[])];
        assert_eq!(suggest(&equal).len(), 2);
        // A lone user is never suggested away from its group.
        assert!(suggest(&[row(1, 4000, &[("solo", 5)]), row(2, 0, &[])]).is_empty());
    }
}
