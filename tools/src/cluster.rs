//! `tessera cluster up|down`: a real multi-process cluster on 127.0.0.1 —
//! separate `tessera-meta`, `tessera-block` and `tessera-router` processes
//! with generated TOML configs (readable examples for operators). `up` on an
//! existing dir starts whichever of its processes are not running (after a
//! crash, a kill or a `down`) on the same ports and data, and adds block nodes
//! when `--block` asks for more than the cluster has.
//! `DIR/cluster.json` lists every process (kind, id, pid, address, data dir,
//! config); `down` stops exactly those. Each process logs to `DIR/logs/NAME.log`,
//! rotated by size (`--log-max-size`, `--log-keep`; see `log_pump`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tessera_meta::client::MetaClient;

use crate::local_cluster::{create_user, ensure_shards, free_port, register_block, write_env, ClientEnv};
use crate::log_pump::{LogPumpArgs, LogRotation};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start the cluster in DIR, or the processes of it that are not running;
    /// a larger --block adds block nodes.
    Up {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        meta: u32,
        #[arg(long, default_value_t = 6)]
        block: u32,
        /// Block nodes labelled `cold`, started after the others, for a tier of
        /// `tessera admin tier set` (until tiers are set they hold data like any node).
        #[arg(long, default_value_t = 0)]
        cold: u32,
        #[arg(long, default_value_t = 1)]
        routers: u32,
        /// Metadata shard groups created on a new cluster (users are spread over
        /// them); ignored when the cluster exists (`tessera admin shard add`).
        #[arg(long, default_value_t = 2)]
        shards: u32,
        #[command(flatten)]
        background: BackgroundJobs,
        #[command(flatten)]
        logs: LogRotation,
    },
    /// Stop the processes listed in DIR/cluster.json.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Copy stdin into a size-rotated log until stdin ends (what `up` runs
    /// beside each process; not for use by hand).
    #[command(hide = true)]
    LogPump(LogPumpArgs),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ProcessEntry {
    pub kind: String,
    pub id: String,
    pub pid: u32,
    pub address: String,
    pub data_dir: PathBuf,
    pub config: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct Layout {
    meta_ports: Vec<u16>,
    block_ports: Vec<u16>,
    router_ports: Vec<u16>,
    /// S3 port of each router (same order).
    #[serde(default)]
    s3_ports: Vec<u16>,
    user_id: String,
    access_key: String,
    secret_key: String,
    /// The operator console of router-0 (generated on the first `up` that lacks it).
    #[serde(default)]
    admin_port: u16,
    #[serde(default)]
    admin_password: String,
    #[serde(default)]
    admin_password_hash: String,
    /// Labels of each block node (same order as `block_ports`).
    #[serde(default)]
    block_labels: Vec<Vec<String>>,
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name));
    if !path.exists() {
        bail!("{} not found next to {}; build all binaries first (cargo build --bins)", name, exe.display());
    }
    Ok(path)
}

/// A started process and the pump writing its output into its log.
struct Spawned {
    child: Child,
    pump: Child,
}

/// Starts `bin` with its stdout and stderr in a pipe to a `tessera cluster
/// log-pump` process, which appends them to `DIR/logs/NAME.log` and rotates it.
fn spawn(dir: &Path, bin: &str, name: &str, config: &Path, rotation: LogRotation) -> anyhow::Result<Spawned> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{name}.log"));
    // Fails here, with the path, rather than in the pump where nobody sees it.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    // Both ends are close-on-exec: only the pump (read end) and the process
    // (write end) hold them once the Commands below are dropped, so the pump
    // sees the end of its input when the process exits.
    let (read, write) = std::io::pipe()?;
    let pump = Command::new(std::env::current_exe()?)
        .args(["cluster", "log-pump", "--file"])
        .arg(&log)
        .arg("--log-max-size")
        .arg(rotation.max_bytes.to_string())
        .arg("--log-keep")
        .arg(rotation.keep.to_string())
        .stdin(read)
        // Not the caller's stdout/stderr: whoever waits for `cluster up`'s
        // output must not wait for the pumps too.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: Ctrl-C at a terminal, or a test runner
        // signalling the group, stops the process, and the pump still writes
        // its last lines before it ends by itself.
        .process_group(0)
        .spawn()
        .context("starting the log pump")?;
    let child = Command::new(sibling_binary(bin)?)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(write.try_clone()?)
        .stderr(write)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    Ok(Spawned { child, pump })
}

/// Writes `cluster.json`: the processes started so far, plus the recorded ones
/// not reached yet, so `down` can stop a cluster whose `up` failed half-way.
fn record(dir: &Path, procs: &[ProcessEntry], earlier: &[ProcessEntry]) -> anyhow::Result<()> {
    let mut all = procs.to_vec();
    all.extend(earlier.iter().filter(|e| !procs.iter().any(|p| p.kind == e.kind && p.id == e.id)).cloned());
    let tmp = dir.join("cluster.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&all)?)?;
    std::fs::rename(&tmp, dir.join("cluster.json"))?;
    Ok(())
}

/// Longest a process may take from spawn to listening. Start-up is normally well
/// under a second; this bounds a hung start on a machine loaded by other work.
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);

/// How long each process took to start, for the summary and `TESSERA_STARTUP_LOG`.
#[derive(Default)]
struct StartupTimes(Vec<(String, Duration)>);

impl StartupTimes {
    fn slowest(&self) -> Option<&(String, Duration)> {
        self.0.iter().max_by_key(|(_, d)| *d)
    }
}

/// Starts process `id` of `kind` (logging as `name`) unless the one recorded in
/// `running` is still alive; returns its pid once it has written its address file.
fn launch(
    dir: &Path,
    running: &[ProcessEntry],
    kind: &str,
    (id, name): (&str, &str),
    config: &Path,
    (times, rotation): (&mut StartupTimes, LogRotation),
) -> anyhow::Result<u32> {
    let home = config.parent().unwrap_or(dir);
    if let Some(p) = running.iter().find(|p| p.kind == kind && p.id == id && ours(p)) {
        return Ok(p.pid);
    }
    let _ = std::fs::remove_file(home.join("addr"));
    let started = Instant::now();
    let mut spawned = spawn(dir, &format!("tessera-{kind}"), name, config, rotation)?;
    let log = dir.join("logs").join(format!("{name}.log"));
    wait_for_start(&mut spawned, &home.join("addr"), name, &log)?;
    let took = started.elapsed();
    record_startup(dir, name, took);
    times.0.push((name.to_owned(), took));
    Ok(spawned.child.id())
}

/// Waits until `child` has written its address file. A child that exits first
/// (a port taken, a bad config, a data dir it cannot open) fails at once with
/// the end of its log, instead of after the deadline.
fn wait_for_start(spawned: &mut Spawned, addr_file: &Path, what: &str, log: &Path) -> anyhow::Result<String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Ok(s) = std::fs::read_to_string(addr_file) {
            if !s.trim().is_empty() {
                return Ok(s.trim().to_owned());
            }
        }
        if let Some(status) = spawned.child.try_wait()? {
            // The pump ends once it has written the process's last lines.
            let pumped = Instant::now() + Duration::from_secs(5);
            while spawned.pump.try_wait()?.is_none() && Instant::now() < pumped {
                std::thread::sleep(Duration::from_millis(10));
            }
            bail!("{what} exited during start-up ({status}); the end of {}:\n{}", log.display(), log_tail(log));
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not start within {} s; the end of {}:\n{}",
                STARTUP_DEADLINE.as_secs(),
                log.display(),
                log_tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of a process log, for start-up failures.
fn log_tail(log: &Path) -> String {
    crate::log_pump::tail(log, 15)
}

/// Appends "MILLISECONDS NAME DIR" to the file `TESSERA_STARTUP_LOG` names, if
/// any: the test suite reports its slowest process start-ups from it.
fn record_startup(dir: &Path, name: &str, took: Duration) {
    use std::io::Write;
    let Some(path) = std::env::var_os("TESSERA_STARTUP_LOG") else { return };
    let line = format!("{} {name} {}\n", took.as_millis(), dir.display());
    // One write of one short line: concurrent clusters' lines do not interleave.
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(line.as_bytes());
    }
}

/// What router-0 of a `cluster up` cluster runs in the background.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct BackgroundJobs {
    /// Seconds between the background repair passes of router-0 (0 = off).
    #[arg(long, default_value_t = 600)]
    repair_interval: u64,
    /// Seconds between the background garbage-collection passes of router-0 (0 = off).
    #[arg(long, default_value_t = 3600)]
    gc_interval: u64,
    /// Seconds a chunk must have gone untouched before GC deletes it.
    #[arg(long, default_value_t = 3600)]
    gc_grace_secs: u64,
    /// Seconds between the background tiering passes of router-0 (0 = off).
    #[arg(long, default_value_t = 3600)]
    tier_interval: u64,
    /// Longest a tiering move batch of router-0 may take from first write to commit.
    #[arg(long, default_value_t = 60)]
    tier_move_deadline: u64,
}

async fn start(
    dir: &Path,
    meta_n: u32,
    (block_n, cold_n): (u32, u32),
    (routers, shards): (u32, u32),
    (jobs, rotation): (BackgroundJobs, LogRotation),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let running = if dir.join("cluster.json").exists() { read_processes(&dir)? } else { Vec::new() };
    let layout_path = dir.join("layout.json");
    let (mut layout, fresh) = match std::fs::read_to_string(&layout_path) {
        Ok(text) => (serde_json::from_str::<Layout>(&text)?, false),
        Err(_) => {
            let (access_key, secret_key) = crate::admin::new_credentials();
            let layout = Layout {
                meta_ports: (0..meta_n).map(|_| free_port()).collect::<Result<_, _>>()?,
                block_ports: Vec::new(),
                router_ports: (0..routers).map(|_| free_port()).collect::<Result<_, _>>()?,
                s3_ports: (0..routers).map(|_| free_port()).collect::<Result<_, _>>()?,
                user_id: "dev".into(),
                access_key,
                secret_key,
                admin_port: 0,
                admin_password: String::new(),
                admin_password_hash: String::new(),
                block_labels: Vec::new(),
            };
            (layout, true)
        }
    };
    // Growing: new block nodes get fresh ports; nothing ever shrinks here.
    layout.block_labels.resize(layout.block_ports.len(), Vec::new());
    let plain = layout.block_labels.iter().filter(|l| l.is_empty()).count();
    let cold = layout.block_labels.len() - plain;
    for _ in plain..block_n as usize {
        layout.block_ports.push(free_port()?);
        layout.block_labels.push(Vec::new());
    }
    for _ in cold..cold_n as usize {
        layout.block_ports.push(free_port()?);
        layout.block_labels.push(vec!["cold".to_owned()]);
    }
    let mut procs = Vec::new();
    let mut times = StartupTimes::default();
    let meta_addrs: Vec<String> = layout.meta_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    for (i, addr) in meta_addrs.iter().enumerate() {
        let id = i + 1;
        let home = dir.join(format!("meta-{id}"));
        std::fs::create_dir_all(&home)?;
        let cfg = home.join("meta.toml");
        let role = if i == 0 { "bootstrap = true".to_owned() } else { format!("join = \"{}\"", meta_addrs[0]) };
        let text = format!(
            "# tessera-meta {id}: generated by `tessera cluster up`\nlisten = \"{addr}\"\naddr_file = \"{}\"\ndata_dir = \"{}\"\nnode_id = {id}\n{role}\n\n[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n",
            home.join("addr").display(),
            home.join("data").display()
        );
        std::fs::write(&cfg, text)?;
        let pid =
            launch(&dir, &running, "meta", (&id.to_string(), &format!("meta-{id}")), &cfg, (&mut times, rotation))?;
        procs.push(ProcessEntry {
            kind: "meta".into(),
            id: id.to_string(),
            pid,
            address: addr.clone(),
            data_dir: home.join("data"),
            config: cfg,
        });
        record(&dir, &procs, &running)?;
    }
    let meta = Arc::new(MetaClient::new(meta_addrs.clone()));
    // Wait until every metadata node is a voter of the cluster group.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let voters = meta
            .status(&meta_addrs[0])
            .await
            .ok()
            .and_then(|s| s.groups.into_iter().find(|g| g.group_id == 0))
            .map(|g| g.voters.len());
        if voters == Some(meta_addrs.len()) {
            break;
        }
        if Instant::now() > deadline {
            bail!("metadata nodes did not form the cluster group within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, port) in layout.block_ports.iter().enumerate() {
        let name = format!("block-{i}");
        let home = dir.join(&name);
        std::fs::create_dir_all(&home)?;
        let cfg = home.join("block.toml");
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(
            &cfg,
            format!(
                "# tessera-block {name}: generated by `tessera cluster up`\nlisten = \"{addr}\"\naddr_file = \"{}\"\ndata_dir = \"{}\"\nnode_id = \"{name}\"\nzone = \"zone-{i}\"\nmin_free_bytes = 0\n",
                home.join("addr").display(),
                home.join("data").display()
            ),
        )?;
        let pid = launch(&dir, &running, "block", (&name, &name), &cfg, (&mut times, rotation))?;
        let labels = layout.block_labels.get(i).cloned().unwrap_or_default();
        register_block(&meta, &name, &addr, &format!("zone-{i}"), labels).await?;
        procs.push(ProcessEntry {
            kind: "block".into(),
            id: name,
            pid,
            address: addr,
            data_dir: home.join("data"),
            config: cfg,
        });
        record(&dir, &procs, &running)?;
    }
    let replicas: Vec<(u64, String)> = meta_addrs.iter().enumerate().map(|(i, a)| (i as u64 + 1, a.clone())).collect();
    ensure_shards(&meta, &replicas, shards).await?;
    if fresh {
        create_user(&meta, &layout.user_id, "Default user", &layout.access_key, &layout.secret_key).await?;
        std::fs::write(&layout_path, serde_json::to_string_pretty(&layout)?)?;
    }
    // Layouts written before the console get its port and password now.
    if layout.admin_port == 0 {
        layout.admin_port = free_port()?;
    }
    if layout.admin_password.is_empty() || layout.admin_password_hash.is_empty() {
        (layout.admin_password, layout.admin_password_hash) = crate::local_cluster::new_admin_password()?;
    }
    // Layouts written before routers served S3 get S3 ports now.
    while layout.s3_ports.len() < layout.router_ports.len() {
        layout.s3_ports.push(free_port()?);
    }
    let meta_list = meta_addrs.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    for (i, port) in layout.router_ports.iter().enumerate() {
        let name = format!("router-{i}");
        let home = dir.join(&name);
        std::fs::create_dir_all(&home)?;
        let cfg = home.join("router.toml");
        let addr = format!("127.0.0.1:{port}");
        let s3_addr = format!("127.0.0.1:{}", layout.s3_ports[i]);
        // One router runs the background jobs; more would only repeat their work.
        let (repair, gc, tier) =
            if i == 0 { (jobs.repair_interval, jobs.gc_interval, jobs.tier_interval) } else { (0, 0, 0) };
        let gc_grace = jobs.gc_grace_secs;
        let tier_deadline = jobs.tier_move_deadline;
        // router-0 serves the operator console.
        let admin = if i == 0 {
            format!(
                "\n[admin]\nlisten = \"127.0.0.1:{}\"\npassword_hash = \"{}\"\n",
                layout.admin_port, layout.admin_password_hash
            )
        } else {
            String::new()
        };
        std::fs::write(
            &cfg,
            format!(
                "# tessera-router {name}: generated by `tessera cluster up`\nlisten = \"{addr}\"\naddr_file = \"{}\"\nmeta = [{meta_list}]\nrefresh_ms = 1000\n\n[datapath]\ndata_shards = 4\nparity_shards = 2\nparallel_chunks = 4\n\n[s3]\nlisten = \"{s3_addr}\"\n\n[repair]\ninterval_secs = {repair}\n\n[gc]\ninterval_secs = {gc}\ngrace_secs = {gc_grace}\n\n[tiering]\ninterval_secs = {tier}\nmove_deadline_secs = {tier_deadline}\n{admin}",
                home.join("addr").display()
            ),
        )?;
        let pid = launch(&dir, &running, "router", (&name, &name), &cfg, (&mut times, rotation))?;
        procs.push(ProcessEntry {
            kind: "router".into(),
            id: name,
            pid,
            address: addr,
            data_dir: home.clone(),
            config: cfg,
        });
        record(&dir, &procs, &running)?;
    }
    record(&dir, &procs, &[])?;
    let router = procs.iter().find(|p| p.kind == "router").map(|p| format!("http://{}", p.address)).unwrap_or_default();
    let admin_url = format!("http://127.0.0.1:{}", layout.admin_port);
    let s3 = layout.s3_ports.first().map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
    std::fs::write(&layout_path, serde_json::to_string_pretty(&layout)?)?;
    let env = ClientEnv {
        router: &router,
        s3: &s3,
        meta: &meta_addrs.join(","),
        access_key: &layout.access_key,
        secret_key: &layout.secret_key,
        admin: Some((&admin_url, &layout.admin_password)),
    };
    write_env(&dir, &env)?;
    println!(
        "cluster up in {}: {} meta, {} block, {} router processes; source {}",
        dir.display(),
        meta_n.max(layout.meta_ports.len() as u32),
        layout.block_ports.len(),
        layout.router_ports.len(),
        dir.join("env").display()
    );
    if let Some((name, took)) = times.slowest() {
        println!("started {} processes; slowest start-up: {name} in {} ms", times.0.len(), took.as_millis());
    }
    println!("operator console: {admin_url} (password: TESSERA_ADMIN_PASSWORD in {})", dir.join("env").display());
    println!(
        "logs: {} (each rotated past {} bytes, {} rotated files kept)",
        dir.join("logs").display(),
        rotation.max_bytes,
        rotation.keep
    );
    Ok(())
}

fn read_processes(dir: &Path) -> anyhow::Result<Vec<ProcessEntry>> {
    let path = dir.join("cluster.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no cluster in {} ({} missing)", dir.display(), path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// True when `pid` is alive and still runs one of our binaries (pids are
/// reused; never signal a stranger).
fn ours(p: &ProcessEntry) -> bool {
    std::fs::read(format!("/proc/{}/cmdline", p.pid))
        .map(|c| String::from_utf8_lossy(&c).contains(&format!("tessera-{}", p.kind)))
        .unwrap_or(false)
}

fn stop(dir: &Path) -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let procs = read_processes(dir)?;
    // Routers first, metadata last.
    let order = ["router", "block", "meta"];
    let mut stopped = 0;
    for kind in order {
        let group: Vec<&ProcessEntry> = procs.iter().filter(|p| p.kind == kind && ours(p)).collect();
        for p in &group {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while group.iter().any(|p| ours(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in group.iter().filter(|p| ours(p)) {
            let _ = kill(Pid::from_raw(p.pid as i32), Signal::SIGKILL);
        }
        stopped += group.len();
    }
    println!("stopped {stopped} processes of the cluster in {}", dir.display());
    Ok(())
}

pub async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Up { dir, meta, block, cold, routers, shards, background, logs } => {
            if meta == 0 || routers == 0 || block < 6 || shards == 0 {
                bail!("need at least 1 meta, 6 block (4+2 coding) and 1 router process, and 1 shard group");
            }
            start(&dir, meta, (block, cold), (routers, shards), (background, logs)).await
        }
        ClusterCommand::Down { dir } => stop(&dir),
        ClusterCommand::LogPump(args) => crate::log_pump::run(&args),
    }
}
