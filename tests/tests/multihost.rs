//! Multi-host tests: every process on its own host of a simulated network
//! (Linux network namespaces on a bridge, `tessera_tests::netns`), brought up
//! from operators' configs and commands: 3 metadata hosts, 6 block hosts in 3
//! zones, 2 routers. Files cross hosts bit-exact; a metadata leader partitioned
//! from its followers is replaced and catches up after healing, losing nothing
//! acknowledged; a zone of block hosts cut off leaves reads working (degraded)
//! and writes refused below the write quorum, then working again once healed.
//!
//! Needs root and `ip netns`; skipped with the reason printed otherwise.
//! Partitions use nftables when `nft` is installed, else the leader's link is cut.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use tessera_tests::netns::nft_available;
use tessera_tests::netns_cluster::{self, group_replicas, zone_hosts, NetnsCluster, META_HOSTS, ROUTER_PORT};
use tessera_tests::{metric, poll_until, TestRng};

/// An acknowledged write.
struct Acked {
    path: String,
    version: u64,
    data: Vec<u8>,
}

/// Uploads `count` files of 1–3 MB under `prefix` through `router`.
fn put_files(c: &NetnsCluster, router: &str, prefix: &str, seed: u64, count: usize) -> Result<Vec<Acked>> {
    let mut rng = TestRng::new(seed);
    (0..count)
        .map(|i| {
            let extra = rng.below(4096) as usize;
            let data = rng.bytes(1_000_000 + (i % 3) * 1_000_003 + extra);
            let path = format!("{prefix}/f{i}");
            let version = c.put(router, &path, &data).with_context(|| format!("put {path} through {router}"))?;
            Ok(Acked { path, version, data })
        })
        .collect()
}

/// Every acknowledged version reads back bit-exact through `router`.
fn check_acked(c: &NetnsCluster, router: &str, acked: &[Acked]) -> Result<()> {
    for a in acked {
        let back = c.get(router, &a.path, a.version).with_context(|| format!("get {} through {router}", a.path))?;
        ensure!(back == a.data, "{} v{} came back different through {router}", a.path, a.version);
    }
    Ok(())
}

#[test]
fn files_written_through_one_router_read_back_exact_through_another() -> Result<()> {
    netns_cluster::run("files_written_through_one_router_read_back_exact_through_another", |c| {
        let files = put_files(c, "router-1", "/cross", 1, 3)?;
        check_acked(c, "router-2", &files)?;
        // The hosts really are apart: each router listens on its own address.
        let status = c.status("router-2")?;
        ensure!(status["summary"]["block_nodes_up"] == 6, "{status}");
        ensure!(status["summary"]["meta_nodes_up"] == 3, "{status}");
        // Cluster init is idempotent: a second run changes nothing.
        let replicas = c.replica_args()?;
        let mut args = vec!["--json", "admin", "cluster", "init"];
        args.extend(replicas.iter().map(String::as_str));
        let again: Value = serde_json::from_str(&c.admin("router-1", &args)?)?;
        ensure!(again["created"] == false && again["shard_groups"] == serde_json::json!([1]), "{again}");
        Ok(())
    })
}

/// The leader of `group` that every node in `status` agrees on.
fn agreed_leader(status: &Value, group: u64) -> Option<u64> {
    let views = group_replicas(status, group);
    let leader = views.first()?.leader?;
    views.iter().all(|v| v.leader == Some(leader)).then_some(leader)
}

#[test]
fn a_metadata_leader_partitioned_from_its_followers_is_replaced_and_catches_up() -> Result<()> {
    netns_cluster::run("a_metadata_leader_partitioned_from_its_followers_is_replaced_and_catches_up", |c| {
        let mut acked = put_files(c, "router-2", "/before", 2, 2)?;
        let status = c.status("router-2")?;
        let old = agreed_leader(&status, 1).with_context(|| format!("no agreed leader of shard group 1: {status}"))?;
        let old_host = NetnsCluster::meta_host(old)?;
        let followers: Vec<&str> = META_HOSTS.iter().copied().filter(|h| *h != old_host).collect();

        // The leader loses its followers and router-2; router-1 and the block
        // hosts still reach everyone. Without nftables, the leader's link is cut.
        if nft_available() {
            c.dc.partition(&[old_host], &[followers[0], followers[1], "router-2"])?;
        } else {
            eprintln!("nft not installed: cutting {old_host}'s link instead of a partition");
            c.dc.cut(old_host)?;
        }
        // Writes through the majority side go on once the followers elect a leader.
        let mut during = Vec::new();
        for i in 0..3 {
            let started = Instant::now();
            during.extend(put_files(c, "router-2", &format!("/during/{i}"), 3 + i, 1)?);
            eprintln!("write {i} on the majority side took {:?}", started.elapsed());
        }
        let status = c.status("router-2")?;
        let new =
            agreed_leader(&status, 1).with_context(|| format!("no agreed leader on the majority side: {status}"))?;
        ensure!(new != old, "shard group 1 is still led by the partitioned node {old}: {status}");
        let seen: Vec<u64> = group_replicas(&status, 1).iter().map(|r| r.node).collect();
        ensure!(!seen.contains(&old), "router-2 still reaches the partitioned leader {old}: {status}");
        acked.extend(during);
        check_acked(c, "router-2", &acked)?;

        // Healed: the old leader rejoins as a follower of the new term and
        // applies everything it missed.
        c.dc.heal()?;
        let healed = Instant::now();
        let caught_up = poll_until(Duration::from_secs(60), "the old leader catching up", || {
            let status = c.status("router-1").ok()?;
            let views = group_replicas(&status, 1);
            let leader = agreed_leader(&status, 1)?;
            let all_voters = views.iter().all(|v| {
                let mut voters = v.voters.clone();
                voters.sort();
                voters == [1, 2, 3]
            });
            let applied = views.iter().find(|v| v.node == leader)?.last_applied;
            let old_view = views.iter().find(|v| v.node == old)?;
            (views.len() == 3 && all_voters && old_view.last_applied == applied).then_some((leader, applied))
        })?;
        eprintln!(
            "old leader {old} caught up with leader {} at index {} in {:?}",
            caught_up.0,
            caught_up.1,
            healed.elapsed()
        );
        check_acked(c, "router-1", &acked)?;
        check_acked(c, "router-2", &acked)?;
        // And both routers write again.
        let after = put_files(c, "router-1", "/after", 4, 1)?;
        check_acked(c, "router-2", &after)?;
        Ok(())
    })
}

/// `tessera_router_degraded_reads_total` of `router`, read from its own host.
fn degraded_reads(c: &NetnsCluster, router: &str) -> Result<f64> {
    let (code, body) = c.dc.http_get(router, &c.addr(router, ROUTER_PORT)?, "/metrics")?;
    ensure!(code == 200, "/metrics of {router} answered {code}");
    Ok(metric(&body, "tessera_router_degraded_reads_total").unwrap_or(0.0))
}

/// `tessera --json admin repair`: its report, also when it exits non-zero
/// because some chunk is not fully redundant.
fn repair(c: &NetnsCluster) -> Result<Value> {
    let out = c.tessera("router-1", &["--json", "admin", "repair"])?;
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("repair printed no report: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_zone_cut_off_keeps_reads_exact_and_refuses_writes_below_the_quorum() -> Result<()> {
    netns_cluster::run("a_zone_cut_off_keeps_reads_exact_and_refuses_writes_below_the_quorum", |c| {
        let files = put_files(c, "router-1", "/zone", 5, 3)?;
        let degraded_before = degraded_reads(c, "router-1")? + degraded_reads(c, "router-2")?;
        let zone = zone_hosts("zone-a");
        for host in &zone {
            c.dc.cut(host)?;
        }

        // Reads rebuild the chunks from the four fragments left, bit-exact.
        check_acked(c, "router-2", &files)?;
        check_acked(c, "router-1", &files)?;
        let degraded_after = degraded_reads(c, "router-1")? + degraded_reads(c, "router-2")?;
        ensure!(degraded_after > degraded_before, "no degraded read counted with {zone:?} cut off");

        // Writes: 4 of 6 fragments can be stored, the quorum is 5. Refused, saying so.
        let refused = TestRng::new(6).bytes(1_500_000);
        let started = Instant::now();
        let out = c.try_put("router-1", "/zone/refused", &refused)?;
        eprintln!("the write below the quorum was refused after {:?}", started.elapsed());
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "a write below the write quorum was acknowledged: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        ensure!(
            err.contains("cluster unavailable:") && err.contains("only 4 of 6 fragments stored and 5 are needed"),
            "unexpected refusal: {err}"
        );
        // Nothing of it is visible, from either router.
        for router in ["router-1", "router-2"] {
            let stat = c.tessera(router, &["stat", "/zone/refused"])?;
            ensure!(!stat.status.success(), "the refused write is visible through {router}");
            ensure!(
                String::from_utf8_lossy(&stat.stderr).contains("not found"),
                "{}",
                String::from_utf8_lossy(&stat.stderr)
            );
            let ls: Value = serde_json::from_str(&c.admin(router, &["--json", "ls", "/zone"])?)?;
            ensure!(!ls.to_string().contains("refused"), "the refused write is listed through {router}: {ls}");
        }

        // Healed: writes work again (routers give up on nodes that failed for a
        // while), and repair finds nothing lost.
        c.dc.heal()?;
        let healed = Instant::now();
        let mut attempts = 0;
        let version = poll_until(Duration::from_secs(90), "a write after healing", || {
            attempts += 1;
            c.put("router-1", "/zone/healed", &refused).ok()
        })?;
        eprintln!("writes work again {:?} after healing ({attempts} attempts)", healed.elapsed());
        let report = poll_until(Duration::from_secs(60), "a repair pass reaching every block node", || {
            repair(c).ok().filter(|r| r["nodes_unreachable"].as_array().is_some_and(|n| n.is_empty()))
        })?;
        ensure!(report["chunks_lost"] == 0 && report["chunks_waiting_for_node"] == 0, "repair after healing: {report}");
        check_acked(c, "router-2", &files)?;
        let back = c.get("router-2", "/zone/healed", version)?;
        ensure!(back == refused, "the write after healing came back different");
        Ok(())
    })
}
