//! A `tessera cluster up` cluster (separate meta, block and router processes)
//! driven through the `tessera` CLI, as an operator would, with the fault
//! injection the cluster tests need: kill -9, stop/continue (a node that hangs
//! instead of dying), restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{anyhow, bail, Context, Result};

use crate::{binary, read_env_file};

/// Stopped with `tessera cluster down` when dropped (then SIGKILL for anything
/// left, so a failed test never leaves processes behind).
pub struct LocalCluster {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
    /// Environment of the cluster's processes (e.g. `RUST_LOG`).
    process_env: Vec<(String, String)>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A stopped (SIGSTOP) process would ignore SIGTERM until continued.
        for p in self.processes().unwrap_or_default() {
            let _ = signal_quietly(p.1, "CONT");
        }
        if let Ok(bin) = binary("tessera") {
            let _ = Command::new(bin).args(["cluster", "down", "--dir"]).arg(&self.dir).output();
        }
    }
}

/// Runs the CLI with `env` (a cluster's `env` file), e.g. from another thread.
pub fn tessera_with(env: &HashMap<String, String>, args: &[&str]) -> Output {
    let bin = binary("tessera").expect("tessera binary");
    Command::new(bin).args(args).envs(env).output().expect("running tessera")
}

/// Runs `tessera --json ARGS` with `env` and parses its output; panics with the
/// CLI's message when it fails (for tests).
pub fn ok_json(env: &HashMap<String, String>, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = tessera_with(env, &all);
    assert!(out.status.success(), "tessera {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// Reads every `(remote path, bytes)` of `files` back with `tessera get` (into
/// `work`) and compares the bytes; the first difference or failure is the error.
pub fn read_back(env: &HashMap<String, String>, work: &Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    for (remote, data) in files {
        let back = work.join(format!("back-{}", remote.replace('/', "_")));
        let out = tessera_with(env, &["get", remote, &back.display().to_string()]);
        if !out.status.success() {
            return Err(format!("{remote}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        match std::fs::read(&back) {
            Ok(got) if got == *data => {}
            Ok(_) => return Err(format!("{remote} came back different")),
            Err(e) => return Err(format!("{remote}: reading {}: {e}", back.display())),
        }
    }
    Ok(())
}

/// As [`signal`], for processes that may be gone already (no message then).
fn signal_quietly(pid: i64, name: &str) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).stderr(std::process::Stdio::null()).status()
}

fn signal(pid: i64, name: &str) -> Result<()> {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status()?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

impl LocalCluster {
    /// `tessera cluster up --dir DIR EXTRA...`.
    pub fn up(dir: &Path, extra: &[&str]) -> Result<Self> {
        Self::up_with_env(dir, extra, &[])
    }

    /// As [`up`](Self::up), with extra environment for every process.
    pub fn up_with_env(dir: &Path, extra: &[&str], process_env: &[(&str, &str)]) -> Result<Self> {
        let process_env = process_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut cluster = Self { dir: dir.to_path_buf(), env: HashMap::new(), process_env };
        cluster.start(extra)?;
        Ok(cluster)
    }

    /// `tessera cluster up` again: starts whatever is not running (and adds block
    /// nodes when `extra` asks for more).
    pub fn start(&mut self, extra: &[&str]) -> Result<()> {
        let out = Command::new(binary("tessera")?)
            .args(["cluster", "up", "--dir"])
            .arg(&self.dir)
            .args(extra)
            .envs(self.process_env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !out.status.success() {
            bail!("cluster up failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        self.env = read_env_file(&self.dir.join("env"))?;
        Ok(())
    }

    /// Runs the CLI with the cluster's environment.
    pub fn tessera(&self, args: &[&str]) -> Output {
        tessera_with(&self.env, args)
    }

    /// Runs the CLI and returns stdout; fails with stderr if it exits non-zero.
    pub fn tessera_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.tessera(args);
        if !out.status.success() {
            bail!(
                "tessera {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The entries of `cluster.json`, one per process.
    fn entries(&self) -> Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(self.dir.join("cluster.json"))?;
        match serde_json::from_str(&text)? {
            serde_json::Value::Array(entries) => Ok(entries),
            _ => bail!("cluster.json is not a list"),
        }
    }

    /// The address (host:port) of process `id` of `kind`.
    pub fn address(&self, kind: &str, id: &str) -> Result<String> {
        self.entries()?
            .iter()
            .find(|p| p["kind"] == kind && p["id"] == id)
            .and_then(|p| p["address"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no {kind} process {id} in cluster.json"))
    }

    /// The log of process `name` (`DIR/logs/<name>.log`).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
    }

    /// (id, pid, kind) of every process in `cluster.json`.
    pub fn processes(&self) -> Result<Vec<(String, i64, String)>> {
        self.entries()?
            .iter()
            .map(|p| {
                Ok((
                    p["id"].as_str().context("id")?.to_owned(),
                    p["pid"].as_i64().context("pid")?,
                    p["kind"].as_str().context("kind")?.to_owned(),
                ))
            })
            .collect()
    }

    fn pid(&self, kind: &str, id: &str) -> Result<i64> {
        self.processes()?
            .into_iter()
            .find(|(i, _, k)| i == id && k == kind)
            .map(|(_, pid, _)| pid)
            .ok_or_else(|| anyhow!("no {kind} process {id} in cluster.json"))
    }

    /// kill -9 of process `id` of `kind` (`meta` ids are "1", "2", …; blocks "block-0"…).
    pub fn kill9(&self, kind: &str, id: &str) -> Result<()> {
        signal(self.pid(kind, id)?, "KILL")
    }

    /// kill -9 of every process of the cluster at once (a power cut).
    pub fn kill9_all(&self) -> Result<()> {
        for (_, pid, _) in self.processes()? {
            let _ = signal_quietly(pid, "KILL");
        }
        Ok(())
    }

    /// SIGTERM, then waits (≤ 30 s) until the process has exited: a clean stop.
    pub fn stop(&self, kind: &str, id: &str) -> Result<()> {
        let pid = self.pid(kind, id)?;
        signal(pid, "TERM")?;
        crate::poll_until(std::time::Duration::from_secs(30), "a clean stop", || {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.split_whitespace().nth(2).is_some_and(|state| state == "Z"))
                .unwrap_or(false);
            (!alive).then_some(())
        })
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing, like a node
    /// behind a dead link.
    pub fn freeze(&self, kind: &str, id: &str) -> Result<()> {
        signal(self.pid(kind, id)?, "STOP")
    }

    pub fn thaw(&self, kind: &str, id: &str) -> Result<()> {
        signal(self.pid(kind, id)?, "CONT")
    }

    /// The data dir of a process (`DIR/<name>/data`).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("data")
    }

    /// `tessera admin status --json`.
    pub fn status(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.tessera_ok(&["--json", "admin", "status"])?)?)
    }
}
