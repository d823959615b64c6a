//! The process logs of a `tessera cluster up` cluster: each is rotated by size
//! (`--log-max-size`, `--log-keep`) so its total stays bounded, the cluster
//! works while they rotate, a process that fails at start still has the end
//! of its log shown, and the log pumps end with their processes.

use std::path::Path;
use std::time::Duration;

use tessera_tests::local_cluster::LocalCluster;
use tessera_tests::poll_until;

const LIMIT: u64 = 64 << 10;
const KEEP: u64 = 2;
/// Longest piece the pump writes at once (`tools/src/log_pump.rs`).
const MAX_LINE: u64 = 64 << 10;

/// Pids of the log pumps writing into `dir/logs`.
fn pumps(dir: &Path) -> Vec<u32> {
    let logs = dir.join("logs").display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("log-pump") && cmdline.contains(&logs)
        })
        .collect()
}

/// (file name, size) of every log of process `name`.
fn logs_of(dir: &Path, name: &str) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.log")))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

#[test]
fn cluster_up_rotates_process_logs_by_size() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("c");
    let limits = ["--log-max-size", "64KiB", "--log-keep", "2"];
    // Debug logging: the metadata nodes' Raft traffic alone fills 64 KiB within seconds.
    let mut cluster = LocalCluster::up_with_env(&dir, &limits, &[("RUST_LOG", "debug")]).unwrap();
    let names: Vec<String> = (1..=3)
        .map(|i| format!("meta-{i}"))
        .chain((0..6).map(|i| format!("block-{i}")))
        .chain(["router-0".to_owned()])
        .collect();
    assert_eq!(pumps(&dir).len(), names.len(), "one log pump per process");

    // Rotated twice: meta-1.log.2, the oldest file kept, exists.
    let oldest = dir.join("logs").join("meta-1.log.2");
    let first_line = |p: &Path| std::fs::read_to_string(p).ok()?.lines().next().map(str::to_owned);
    let before = poll_until(Duration::from_secs(120), "meta-1.log rotated twice", || first_line(&oldest)).unwrap();
    // The cluster works while its logs rotate.
    let local = work.path().join("f");
    std::fs::write(&local, vec![5u8; 300_000]).unwrap();
    cluster.tessera_ok(&["put", local.to_str().unwrap(), "/while-rotating"]).unwrap();
    let back = work.path().join("back");
    cluster.tessera_ok(&["get", "/while-rotating", back.to_str().unwrap()]).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), vec![5u8; 300_000]);
    // Once more: the oldest file is replaced (the one before it deleted), not added to.
    poll_until(Duration::from_secs(120), "meta-1.log rotated past its oldest kept file", || {
        first_line(&oldest).filter(|l| *l != before)
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    for name in &names {
        let files = logs_of(&dir, name);
        assert!(files.len() as u64 <= KEEP + 1, "{name}: {files:?}");
        let total: u64 = files.iter().map(|(_, s)| s).sum();
        assert!(total <= (KEEP + 1) * (LIMIT + MAX_LINE), "{name}: {total} bytes in {files:?}");
        assert!(files.iter().all(|(_, s)| *s <= LIMIT + MAX_LINE), "{name}: {files:?}");
    }
    let meta1: u64 = logs_of(&dir, "meta-1").iter().map(|(_, s)| s).sum();
    assert!(meta1 > 2 * LIMIT, "meta-1 wrote {meta1} bytes: rotated files are real logs");

    // A process that fails at start: its last lines (through the pump) are in
    // `cluster up`'s error.
    cluster.stop("block", "block-0").unwrap();
    let data = cluster.data_dir("block-0");
    std::fs::rename(&data, data.with_extension("moved")).unwrap();
    std::fs::write(&data, "not a directory").unwrap();
    let err = cluster.start(&limits).unwrap_err().to_string();
    assert!(err.contains("block-0 exited during start-up"), "{err}");
    assert!(err.contains("cannot open data dir"), "the end of block-0's log is shown: {err}");
    std::fs::remove_file(&data).unwrap();
    std::fs::rename(data.with_extension("moved"), &data).unwrap();
    cluster.start(&limits).unwrap();

    // `cluster down` (on drop): the pumps end with their processes.
    drop(cluster);
    poll_until(Duration::from_secs(30), "every log pump to end", || pumps(&dir).is_empty().then_some(())).unwrap();
}
