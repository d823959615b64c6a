//! What the CLI's integration tests share: a `tessera dev` cluster in its own
//! process, and running the `tessera` binary against it.
#![allow(dead_code)] // each test file uses its own part

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use tessera_tests::{poll_until, ProcessGuard};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

pub struct Dev {
    pub guard: ProcessGuard,
    pub env: HashMap<String, String>,
}

/// Starts `tessera dev --data DIR` and waits for its env file (a restart on the
/// same DIR keeps users, keys and files; ports change).
pub fn start_dev(dir: &Path) -> Dev {
    let env_file = dir.join("env");
    let _ = std::fs::remove_file(&env_file);
    let log = dir.with_extension(format!("log-{}", std::process::id()));
    let mut guard = ProcessGuard::spawn(
        "tessera dev",
        Path::new(BIN),
        &["dev".into(), "--data".into(), dir.display().to_string()],
        &log,
    )
    .unwrap();
    let text = poll_until(Duration::from_secs(60), "DIR/env", || {
        assert!(guard.is_running(), "tessera dev exited:\n{}", guard.log_text());
        std::fs::read_to_string(&env_file).ok()
    })
    .unwrap();
    Dev { guard, env: tessera_tests::env_lines(&text) }
}

pub fn tessera(env: &HashMap<String, String>, args: &[&str]) -> Output {
    tessera_with(env, &[], args)
}

/// Runs `tessera` with only `env` (and PATH) plus `extra`.
pub fn tessera_with(env: &HashMap<String, String>, extra: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

pub fn ok_json(env: &HashMap<String, String>, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = tessera(env, &all);
    assert!(out.status.success(), "tessera {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Another user of the dev cluster, with the environment to act as them.
pub fn user_env(env: &HashMap<String, String>, name: &str) -> HashMap<String, String> {
    let user = ok_json(env, &["admin", "user", "create", name]);
    let mut other = env.clone();
    other.insert("TESSERA_ACCESS_KEY".into(), user["access_key"].as_str().unwrap().into());
    other.insert("TESSERA_SECRET_KEY".into(), user["secret_key"].as_str().unwrap().into());
    other
}
