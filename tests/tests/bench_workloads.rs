//! `tessera bench` against a `tessera cluster up` cluster: every workload of
//! both APIs runs to its count without errors, and delta sync sends only a
//! fraction of what it uploads.

use tessera_tests::local_cluster::LocalCluster;

fn bench(cluster: &LocalCluster, api: &str, workload: &str, size: &str, count: u64) -> serde_json::Value {
    let count = count.to_string();
    let args = [
        "--json",
        "bench",
        api,
        "--workload",
        workload,
        "--size",
        size,
        "--concurrency",
        "2",
        "--count",
        &count,
        "--part-size",
        "5MiB",
    ];
    let out = cluster.tessera_ok(&args).unwrap();
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{api} {workload}: {report}");
    assert_eq!(report["ops"].as_u64(), Some(count.parse().unwrap()), "{api} {workload}: {report}");
    for field in ["ops_per_sec", "mib_per_sec", "client_cpu_seconds"] {
        assert!(report[field].as_f64().is_some(), "{field} in {report}");
    }
    for p in ["p50", "p90", "p99", "max"] {
        assert!(report["latency_ms"][p].as_f64().unwrap() > 0.0, "{p} in {report}");
    }
    report
}

#[test]
fn every_workload_runs_clean_on_both_apis() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    for workload in ["put", "get", "dedup", "mixed", "list"] {
        bench(&cluster, "s3", workload, "64KiB", 10);
        bench(&cluster, "native", workload, "64KiB", 10);
    }
    // Multipart in 5 MiB parts: three parts per object.
    bench(&cluster, "s3", "multipart", "12MiB", 2);
    bench(&cluster, "native", "multipart", "12MiB", 2);

    let delta = bench(&cluster, "native", "delta-sync", "48MiB", 4);
    let sent = delta["bytes_sent"].as_u64().unwrap();
    let uploaded = 4 * 48u64 << 20;
    assert!(sent > 0 && sent < uploaded / 2, "a 1% edit sends the changed chunks only: {sent} of {uploaded}");

    let out = cluster.tessera(&["bench", "s3", "--workload", "delta-sync", "--count", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("native workload"));
}

#[test]
fn puts_over_a_fixed_set_of_names_make_versions() {
    let work = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::up(&work.path().join("c"), &[]).unwrap();
    let args = ["--json", "bench", "native", "--workload", "put", "--size", "4KiB", "--count", "12", "--files", "4"];
    let report: serde_json::Value = serde_json::from_str(cluster.tessera_ok(&args).unwrap().trim()).unwrap();
    assert_eq!((report["ops"].as_u64(), report["errors"].as_u64()), (Some(12), Some(0)), "{report}");

    let json =
        |args: &[&str]| -> serde_json::Value { serde_json::from_str(&cluster.tessera_ok(args).unwrap()).unwrap() };
    let runs = json(&["--json", "ls", "/bench"]);
    let run = runs[0]["path"].as_str().expect("the run's folder").to_owned();
    let files = json(&["--json", "ls", &run]);
    assert_eq!(files.as_array().map(Vec::len), Some(4), "{files}");
    for i in 0..4 {
        let versions = json(&["--json", "versions", &format!("{run}/{i}")]);
        assert_eq!(versions.as_array().map(Vec::len), Some(3), "{run}/{i}: {versions}");
    }

    let out = cluster.tessera(&["bench", "native", "--workload", "put", "--files", "0"]);
    assert!(!out.status.success(), "--files 0 is refused");
}
