//! Observability of a `tessera cluster up` cluster: one request id follows a
//! write from the router to the metadata and block nodes in their (JSON)
//! logs, and every process serves Prometheus metrics, including per-RPC
//! request counts and latency histograms.

use std::time::Duration;

use tessera_tests::local_cluster::LocalCluster;
use tessera_tests::{http_get, metric, poll_until};

/// `(request id, path)` of every "served" line in a JSON log.
fn served(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "served")
        .filter_map(|v| Some((v["span"]["id"].as_str()?.to_owned(), v["fields"]["path"].as_str()?.to_owned())))
        .collect()
}

#[test]
fn a_request_id_follows_a_write_through_every_process() {
    let work = tempfile::tempdir().unwrap();
    let env = [("RUST_LOG", "info,tessera_proto::request_id=debug"), ("TESSERA_LOG_FORMAT", "json")];
    let cluster = LocalCluster::up_with_env(&work.path().join("c"), &[], &env).unwrap();
    let local = work.path().join("f");
    std::fs::write(&local, vec![7u8; 1_500_000]).unwrap();
    cluster.tessera_ok(&["put", local.to_str().unwrap(), "/traced"]).unwrap();
    let id = poll_until(Duration::from_secs(10), "the router's log line of the upload", || {
        served(&cluster.log("router-0")).into_iter().find(|(_, p)| p.ends_with("/Put")).map(|(id, _)| id)
    })
    .unwrap();
    let seen_in = |name: &str| {
        served(&cluster.log(name)).into_iter().filter(|(i, _)| *i == id).map(|(_, p)| p).collect::<Vec<_>>()
    };
    let block_calls: Vec<String> = (0..6).flat_map(|i| seen_in(&format!("block-{i}"))).collect();
    assert!(block_calls.iter().any(|p| p.ends_with("/PutFragment")), "block nodes saw {block_calls:?} for {id}");
    let meta_calls: Vec<String> = (1..=3).flat_map(|i| seen_in(&format!("meta-{i}"))).collect();
    assert!(meta_calls.iter().any(|p| p.ends_with("/Propose")), "metadata nodes saw {meta_calls:?} for {id}");
}

#[test]
fn every_process_serves_prometheus_metrics() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let local = work.path().join("f");
    std::fs::write(&local, vec![1u8; 600_000]).unwrap();
    cluster.tessera_ok(&["put", local.to_str().unwrap(), "/m"]).unwrap();
    cluster.tessera_ok(&["put", local.to_str().unwrap(), "/m2"]).unwrap();
    cluster.tessera_ok(&["get", "/m", work.path().join("back").to_str().unwrap()]).unwrap();
    // An anonymous S3 request: refused, and counted.
    let (code, _) = http_get(&cluster.env["TESSERA_S3_ENDPOINT"], "/").unwrap();
    assert_eq!(code, 403);

    let get = |addr: &str| {
        let (code, body) = http_get(addr, "/metrics").unwrap();
        assert_eq!(code, 200, "{addr}");
        assert!(body.ends_with("# EOF\n"), "one valid exposition from {addr}");
        body
    };
    let router = get(&cluster.env["TESSERA_ENDPOINT"]);
    assert!(metric(&router, "tessera_router_chunks_uploaded_total").unwrap() >= 1.0, "{router}");
    assert!(metric(&router, "tessera_router_chunks_deduped_total").unwrap() >= 1.0, "the second put deduplicates");
    assert!(metric(&router, "tessera_router_downloaded_bytes_total").unwrap() >= 600_000.0);
    for name in [
        "tessera_router_bloom_false_positives_total",
        "tessera_router_degraded_reads_total",
        "tessera_router_repair_passes_total",
    ] {
        assert!(metric(&router, name).is_some(), "{name} missing");
    }
    assert!(
        router.lines().any(|l| l.starts_with("tessera_rpc_requests_total{") && l.contains("Tessera/Put")),
        "per-RPC counts on the router"
    );
    assert!(router.contains("tessera_rpc_request_seconds_bucket{"), "per-RPC latency histograms");
    assert!(router.lines().any(|l| l.starts_with("tessera_router_s3_requests_total{") && l.contains("403")));

    let block = get(&cluster.address("block", "block-0").unwrap());
    assert!(metric(&block, "tessera_block_fragments").unwrap() >= 1.0, "{block}");
    assert!(block.lines().any(|l| l.starts_with("tessera_rpc_requests_total{") && l.contains("PutFragment")));

    // Raft gauges are refreshed periodically: wait until both groups show a term.
    let meta_addr = cluster.address("meta", "1").unwrap();
    let meta = poll_until(Duration::from_secs(10), "Raft gauges of both groups", || {
        let body = get(&meta_addr);
        let elected =
            |g: u32| metric(&body, &format!("tessera_meta_raft_term{{group=\"{g}\"}}")).is_some_and(|t| t >= 1.0);
        (elected(0) && elected(1)).then_some(body)
    })
    .unwrap();
    for group in [0, 1] {
        assert!(metric(&meta, &format!("tessera_meta_raft_commit_index{{group=\"{group}\"}}")).is_some());
    }

    // The Grafana dashboard in docs/ only queries metrics the processes serve.
    let served = format!("{router}{block}{meta}");
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/tessera-dashboard.json"))
            .unwrap();
    let mut names: Vec<&str> = dashboard
        .match_indices("tessera_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
        })
        .filter(|n| *n != "tessera_cluster")
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 20, "{names:?}");
    for name in names {
        let base = ["_total", "_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(served.contains(&format!("# TYPE {base} ")), "the dashboard queries {name}, which no process serves");
    }
}
