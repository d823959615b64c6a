//! `tessera cluster up` (separate meta, block and router processes): with
//! 4+2 coding, two block nodes killed with kill -9 leave every file readable
//! bit-exact; a third gives a clear "unavailable" error, never wrong bytes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use tessera_tests::{binary, read_env_file, TestRng};

struct Cluster {
    dir: std::path::PathBuf,
    env: HashMap<String, String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(binary("tessera").unwrap()).args(["cluster", "down", "--dir"]).arg(&self.dir).output();
    }
}

fn tessera(env: &HashMap<String, String>, args: &[&str]) -> Output {
    Command::new(binary("tessera").unwrap()).args(args).envs(env).output().unwrap()
}

fn up(dir: &Path) -> Cluster {
    let out = Command::new(binary("tessera").unwrap()).args(["cluster", "up", "--dir"]).arg(dir).output().unwrap();
    let mut cluster = Cluster { dir: dir.to_path_buf(), env: HashMap::new() };
    assert!(out.status.success(), "cluster up failed: {}", String::from_utf8_lossy(&out.stderr));
    cluster.env = read_env_file(&dir.join("env")).unwrap();
    cluster
}

fn kill9(dir: &Path, id: &str) {
    let procs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json")).unwrap()).unwrap();
    let pid = procs.as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["pid"].as_i64().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
}

#[test]
fn two_killed_block_nodes_are_transparent_and_a_third_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("cluster");
    let cluster = up(&dir);
    let mut rng = TestRng::new(9);
    let mut files = Vec::new();
    for i in 0..4 {
        let data = rng.bytes(1_500_000 + i * 999_999);
        let local = work.path().join(format!("f{i}"));
        std::fs::write(&local, &data).unwrap();
        let out = tessera(&cluster.env, &["put", local.to_str().unwrap(), &format!("/d/f{i}")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        files.push((format!("/d/f{i}"), data));
    }
    let check_all = |expect_ok: bool| {
        let mut failures = 0;
        for (path, data) in &files {
            let back = work.path().join("back");
            let out = tessera(&cluster.env, &["get", path, back.to_str().unwrap()]);
            if out.status.success() {
                assert_eq!(&std::fs::read(&back).unwrap(), data, "{path} came back different");
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!expect_ok, "{path}: {err}");
                assert!(err.contains("unavailable"), "{path}: {err}");
                failures += 1;
            }
        }
        failures
    };
    kill9(&dir, "block-1");
    kill9(&dir, "block-4");
    assert_eq!(check_all(true), 0);
    kill9(&dir, "block-2");
    assert!(check_all(false) > 0, "with 3 of 6 fragments gone, reads must fail clearly");
}
