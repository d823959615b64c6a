//! The cluster multi-host tests run on a [`Datacenter`]: three metadata hosts,
//! six block hosts in three zones (two per zone) and two routers, one process
//! per host, each listening on its host's 198.18 address with a fixed port.
//!
//! It is brought up the way an operator would on real machines, from the same
//! TOML files and CLI commands (`docs/operations.md`, "Several hosts"):
//! meta-1 with `bootstrap = true`, meta-2 and meta-3 with `join`, block nodes
//! registered with `tessera admin node add`, shard group 1 created with
//! `tessera admin cluster init`, the first user with `tessera admin user
//! create`, then the routers. The CLI runs inside a host's namespace too (a
//! router's host), with the environment variables an operator would set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::netns::{self, Datacenter};
use crate::{binary, poll_until};

pub const META_PORT: u16 = 7000;
pub const BLOCK_PORT: u16 = 7100;
pub const ROUTER_PORT: u16 = 7200;
pub const S3_PORT: u16 = 7300;

pub const META_HOSTS: [&str; 3] = ["meta-1", "meta-2", "meta-3"];
pub const BLOCK_HOSTS: [&str; 6] = ["block-1", "block-2", "block-3", "block-4", "block-5", "block-6"];
pub const ROUTER_HOSTS: [&str; 2] = ["router-1", "router-2"];

/// The zone of a block host: two hosts per zone.
pub fn zone_of(block_host: &str) -> &'static str {
    match block_host {
        "block-1" | "block-2" => "zone-a",
        "block-3" | "block-4" => "zone-b",
        _ => "zone-c",
    }
}

/// The block hosts of `zone`.
pub fn zone_hosts(zone: &str) -> Vec<&'static str> {
    BLOCK_HOSTS.iter().copied().filter(|h| zone_of(h) == zone).collect()
}

/// Longest a CLI call may take. Refused writes wait out dead nodes' deadlines
/// (10 s), metadata calls retry for up to 15 s; anything longer is a hang.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest a process may take from spawn to listening on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Binaries {
    meta: PathBuf,
    block: PathBuf,
    router: PathBuf,
    tessera: PathBuf,
}

pub struct NetnsCluster {
    pub dc: Datacenter,
    bins: Binaries,
    /// The first user's access key and secret.
    keys: (String, String),
}

/// Runs `test` on a fresh cluster, or prints why it is skipped (not root, no
/// `ip netns`). A failure keeps the cluster's logs and names their directory.
pub fn run(name: &str, test: impl FnOnce(&mut NetnsCluster) -> Result<()>) -> Result<()> {
    if netns::skip(name) {
        return Ok(());
    }
    let mut cluster = NetnsCluster::start().context("bringing up the multi-host cluster")?;
    match test(&mut cluster) {
        Ok(()) => Ok(()),
        Err(e) => {
            let dir = cluster.dc.keep_dir();
            Err(e.context(format!("{name} failed; configs, data and logs kept in {}", dir.display())))
        }
    }
}

impl NetnsCluster {
    /// Builds the hosts and brings the cluster up.
    pub fn start() -> Result<Self> {
        let bins = Binaries {
            meta: binary("tessera-meta")?,
            block: binary("tessera-block")?,
            router: binary("tessera-router")?,
            tessera: binary("tessera")?,
        };
        let names: Vec<&str> = META_HOSTS.iter().chain(&BLOCK_HOSTS).chain(&ROUTER_HOSTS).copied().collect();
        let dc = Datacenter::new(&names)?;
        let mut cluster = Self { dc, bins, keys: (String::new(), String::new()) };
        if let Err(e) = cluster.bring_up() {
            let dir = cluster.dc.keep_dir();
            return Err(e.context(format!("configs, data and logs kept in {}", dir.display())));
        }
        Ok(cluster)
    }

    fn bring_up(&mut self) -> Result<()> {
        // The cluster group: meta-1 creates it, the others join through it.
        self.start_meta("meta-1")?;
        for host in &META_HOSTS[1..] {
            self.start_meta(host)?;
        }
        poll_until(START_TIMEOUT, "three voters in the cluster group", || {
            let status = self.status("router-1").ok()?;
            let voters = group_replicas(&status, 0).iter().map(|r| r.voters.len()).max()?;
            (voters == META_HOSTS.len()).then_some(())
        })?;
        for host in BLOCK_HOSTS {
            self.start_block(host)?;
        }
        for host in BLOCK_HOSTS {
            let addr = self.addr(host, BLOCK_PORT)?;
            self.admin("router-1", &["admin", "node", "add", host, &addr, "--zone", zone_of(host)])?;
        }
        let replicas = self.replica_args()?;
        let mut args = vec!["--json", "admin", "cluster", "init"];
        args.extend(replicas.iter().map(String::as_str));
        let init: Value = serde_json::from_str(&self.admin("router-1", &args)?)?;
        if init["created"] != true {
            bail!("admin cluster init did not create shard group 1 on a new cluster: {init}");
        }
        let user: Value =
            serde_json::from_str(&self.admin("router-1", &["--json", "admin", "user", "create", "alice"])?)?;
        let key = |k: &str| user[k].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no {k} in {user}"));
        self.keys = (key("access_key")?, key("secret_key")?);
        for host in ROUTER_HOSTS {
            self.start_router(host)?;
        }
        // Ready when each router knows the user and the shard map.
        for host in ROUTER_HOSTS {
            poll_until(START_TIMEOUT, &format!("{host} serving alice"), || {
                self.tessera(host, &["ls", "/"]).ok().filter(|o| o.status.success()).map(|_| ())
            })?;
        }
        Ok(())
    }

    /// `--replica ID=HOST:PORT` of every metadata host.
    pub fn replica_args(&self) -> Result<Vec<String>> {
        let mut args = Vec::new();
        for (i, host) in META_HOSTS.iter().enumerate() {
            args.push("--replica".to_owned());
            args.push(format!("{}={}", i + 1, self.addr(host, META_PORT)?));
        }
        Ok(args)
    }

    /// `ADDRESS:PORT` of `host`.
    pub fn addr(&self, host: &str, port: u16) -> Result<String> {
        Ok(format!("{}:{port}", self.dc.host(host)?.addr))
    }

    /// The metadata host of node id `id` (meta-1 is node 1, ...).
    pub fn meta_host(id: u64) -> Result<&'static str> {
        META_HOSTS.get((id as usize).wrapping_sub(1)).copied().ok_or_else(|| anyhow!("no metadata node {id}"))
    }

    fn write_config(&self, host: &str, file: &str, text: &str) -> Result<PathBuf> {
        let path = self.dc.host_dir(host).join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The `meta.toml` of a metadata host, as an operator would write it.
    pub fn meta_config(&self, host: &str) -> Result<String> {
        let id = META_HOSTS.iter().position(|h| *h == host).ok_or_else(|| anyhow!("{host} is no metadata host"))? + 1;
        let home = self.dc.host_dir(host);
        let role = if id == 1 {
            "bootstrap = true".to_owned()
        } else {
            format!("join = \"{}\"", self.addr("meta-1", META_PORT)?)
        };
        Ok(format!(
            "# tessera-meta on {host}\nlisten = \"{}\"\naddr_file = \"{}\"\ndata_dir = \"{}\"\nnode_id = {id}\n{role}\n\n\
             [raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n",
            self.addr(host, META_PORT)?,
            home.join("addr").display(),
            home.join("data").display(),
        ))
    }

    /// The `block.toml` of a block host.
    pub fn block_config(&self, host: &str) -> Result<String> {
        let home = self.dc.host_dir(host);
        Ok(format!(
            "# tessera-block on {host}\nlisten = \"{}\"\naddr_file = \"{}\"\ndata_dir = \"{}\"\nnode_id = \"{host}\"\n\
             zone = \"{}\"\n# a test machine's disk may be fuller than production's margin\nmin_free_bytes = 0\n",
            self.addr(host, BLOCK_PORT)?,
            home.join("addr").display(),
            home.join("data").display(),
            zone_of(host),
        ))
    }

    /// The `router.toml` of a router host.
    pub fn router_config(&self, host: &str) -> Result<String> {
        let meta = META_HOSTS
            .iter()
            .map(|h| Ok(format!("\"{}\"", self.addr(h, META_PORT)?)))
            .collect::<Result<Vec<_>>>()?
            .join(", ");
        Ok(format!(
            "# tessera-router on {host}\nlisten = \"{}\"\naddr_file = \"{}\"\nmeta = [{meta}]\nrefresh_ms = 1000\n\n\
             [datapath]\ndata_shards = 4\nparity_shards = 2\n# fragments durable before a chunk counts as stored (k+1)\n\
             write_quorum = 5\n\n[s3]\nlisten = \"{}\"\n",
            self.addr(host, ROUTER_PORT)?,
            self.dc.host_dir(host).join("addr").display(),
            self.addr(host, S3_PORT)?,
        ))
    }

    /// Starts (or restarts) the process of `host` from its config file; returns
    /// once it listens.
    fn start_process(&mut self, host: &str, program: PathBuf, file: &str, config: String) -> Result<()> {
        let path = self.write_config(host, file, &config)?;
        let addr_file = self.dc.host_dir(host).join("addr");
        let _ = std::fs::remove_file(&addr_file);
        self.dc.spawn(host, host, &program, &path)?;
        self.dc.wait_listening(host, &addr_file, START_TIMEOUT)?;
        Ok(())
    }

    pub fn start_meta(&mut self, host: &str) -> Result<()> {
        let config = self.meta_config(host)?;
        self.start_process(host, self.bins.meta.clone(), "meta.toml", config)
    }

    pub fn start_block(&mut self, host: &str) -> Result<()> {
        let config = self.block_config(host)?;
        self.start_process(host, self.bins.block.clone(), "block.toml", config)
    }

    pub fn start_router(&mut self, host: &str) -> Result<()> {
        let config = self.router_config(host)?;
        self.start_process(host, self.bins.router.clone(), "router.toml", config)
    }

    /// The client environment of an operator or user working through `router`.
    pub fn env(&self, router: &str) -> Result<HashMap<String, String>> {
        let meta = META_HOSTS.iter().map(|h| self.addr(h, META_PORT)).collect::<Result<Vec<_>>>()?.join(",");
        let mut env = HashMap::from([
            ("TESSERA_ENDPOINT".to_owned(), format!("http://{}", self.addr(router, ROUTER_PORT)?)),
            ("TESSERA_META_ENDPOINT".to_owned(), meta),
        ]);
        if !self.keys.0.is_empty() {
            env.insert("TESSERA_ACCESS_KEY".into(), self.keys.0.clone());
            env.insert("TESSERA_SECRET_KEY".into(), self.keys.1.clone());
        }
        Ok(env)
    }

    /// `tessera ARGS` run on `router`'s host against that router.
    pub fn tessera(&self, router: &str, args: &[&str]) -> Result<Output> {
        self.dc.run(router, &self.bins.tessera, args, &self.env(router)?, CLI_TIMEOUT)
    }

    /// As [`tessera`](Self::tessera); fails with the CLI's message when it exits non-zero.
    pub fn admin(&self, router: &str, args: &[&str]) -> Result<String> {
        let out = self.tessera(router, args)?;
        if !out.status.success() {
            bail!("tessera {args:?} on {router}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `tessera --json admin status` as seen from `host`.
    pub fn status(&self, host: &str) -> Result<Value> {
        Ok(serde_json::from_str(&self.admin(host, &["--json", "admin", "status"])?)?)
    }

    /// Uploads `data` to `remote` through `router`; returns the version.
    pub fn put(&self, router: &str, remote: &str, data: &[u8]) -> Result<u64> {
        let out = self.try_put(router, remote, data)?;
        if !out.status.success() {
            bail!("put {remote} through {router}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let report: Value = serde_json::from_slice(&out.stdout)?;
        report["version"].as_u64().ok_or_else(|| anyhow!("no version in {report}"))
    }

    /// `tessera --json put` of `data` to `remote` through `router`, as it ended.
    pub fn try_put(&self, router: &str, remote: &str, data: &[u8]) -> Result<Output> {
        let local = self.local_file(remote, "put");
        std::fs::write(&local, data).with_context(|| format!("writing {}", local.display()))?;
        self.tessera(router, &["--json", "put", local.to_str().context("non-UTF-8 path")?, remote])
    }

    /// Downloads version `version` of `remote` through `router`.
    pub fn get(&self, router: &str, remote: &str, version: u64) -> Result<Vec<u8>> {
        let local = self.local_file(remote, &format!("get-{router}"));
        let _ = std::fs::remove_file(&local);
        let v = version.to_string();
        self.admin(router, &["get", remote, local.to_str().context("non-UTF-8 path")?, "--version", &v])?;
        std::fs::read(&local).with_context(|| format!("reading {}", local.display()))
    }

    /// A client-side file for `remote` (the CLI runs in a namespace but shares
    /// the file system).
    fn local_file(&self, remote: &str, what: &str) -> PathBuf {
        let dir = self.dc.dir().join("client");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(format!("{what}{}", remote.replace('/', "_")))
    }

    /// `DIR/<host>`.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.dc.host_dir(host)
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        self.dc.dir()
    }
}

/// One metadata node's view of one Raft group, from `admin status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub node: u64,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    pub last_applied: u64,
}

/// Every reachable metadata node's view of `group` in an `admin status` answer.
pub fn group_replicas(status: &Value, group: u64) -> Vec<Replica> {
    status["raft_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["group"] == group)
        .filter_map(|g| {
            Some(Replica {
                node: g["node"].as_u64()?,
                leader: g["leader"].as_u64(),
                voters: g["voters"].as_array()?.iter().filter_map(Value::as_u64).collect(),
                last_applied: g["last_applied"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}
