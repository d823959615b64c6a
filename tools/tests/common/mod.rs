//! What the CLI's integration tests share: a `tessera dev` cluster in its own
//! process, and running the `tessera` binary against it.
#![allow(dead_code)] // each test file uses its own part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
    command(env, args).envs(extra.iter().copied()).output().unwrap()
}

pub fn ok_json(env: &HashMap<String, String>, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
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

pub fn command(env: &HashMap<String, String>, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env);
    c
}

/// A failing command: non-zero exit and one line on stderr naming `expect`.
pub fn fails(env: &HashMap<String, String>, args: &[&str], expect: &str) {
    let out = tessera(env, args);
    assert!(!out.status.success(), "tessera {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect), "tessera {args:?}: expected {expect:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr, got {err:?}");
}

pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// The bytes of `path` as `env`'s user reads them.
pub fn read_back(env: &HashMap<String, String>, dir: &Path, path: &str) -> Vec<u8> {
    let out = dir.join("read-back");
    ok_json(env, &["get", path, out.to_str().unwrap()]);
    std::fs::read(&out).unwrap()
}

/// A signed `GET /v1/changes?QUERY` (the change feed over HTTP) as `env`'s user.
pub fn http_changes(env: &HashMap<String, String>, query: &str) -> tessera_tests::HttpResponse {
    let signed = tessera_router::auth::client_headers(
        &env["TESSERA_ACCESS_KEY"],
        &env["TESSERA_SECRET_KEY"],
        tessera_router::changes_http::PATH,
        tessera_router::datapath::now_ms(),
    );
    let headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tessera_tests::http_request(&env["TESSERA_ENDPOINT"], "GET", &format!("/v1/changes?{query}"), &headers, b"")
        .unwrap()
}
