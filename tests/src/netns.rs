//! Several hosts on one machine, for multi-host tests: a [`Datacenter`] owns a
//! set of Linux network namespaces — one per host, plus a "switch" namespace
//! holding a bridge that every host is wired to by a veth pair — the addresses
//! it gives them, the processes it starts inside them, and the faults it
//! injects (a host's link down, nftables partitions between sets of hosts).
//!
//! Addresses come only from 198.18.0.0/15 (RFC 2544, benchmarking, never
//! routed): each datacenter claims its own subnet 198.18.N.0/24 so tests run in
//! parallel without clashing, and its hosts are 198.18.N.1, .2, ... Nothing is
//! created in the root namespace (veth pairs are made inside the host
//! namespaces) and its routes are never touched. Processes run with
//! `ip netns exec NS BINARY ...`, so each host has its own network stack and
//! fixed ports can be reused on every host.
//!
//! On drop every process is killed and every namespace deleted, also when a test
//! panics; namespaces left by a test process that was itself killed are removed
//! by the next datacenter that claims the same subnet.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{read_addr_file, ProcessGuard};

/// Where subnet claims live: tmpfs, like `/run/netns`, so both vanish together.
const CLAIM_DIR: &str = "/run/tessera-netns";
/// The name of each host's interface (inside its own namespace).
const HOST_DEV: &str = "eth0";
/// The nftables table that holds a host's partition rules.
const FAULT_TABLE: &str = "tessera_faults";

/// Why multi-host tests cannot run here, or `None` when they can: they need
/// root (network namespaces need CAP_SYS_ADMIN) and a working `ip netns`.
pub fn unsupported() -> Option<String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Some(format!("not running as root (uid {uid}); network namespaces need root")),
        None => return Some("cannot read the effective uid from /proc/self/status".into()),
    }
    let probe = format!("tsnprobe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(_) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!("`ip netns` does not work here: {e:#}")),
    }
}

/// Prints why a test is skipped and returns true, when multi-host tests cannot
/// run on this machine (a developer's machine without root).
pub fn skip(test: &str) -> bool {
    match unsupported() {
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            true
        }
        None => false,
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// True when the `nft` command is installed (partitions need it).
pub fn nft_available() -> bool {
    Command::new("nft").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs `ip ARGS`; fails with its stderr.
fn ip(args: &[&str]) -> Result<String> {
    run_checked(Command::new("ip").args(args), &format!("ip {}", args.join(" ")))
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One simulated machine.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    pub addr: Ipv4Addr,
    /// Its end of the veth pair in the switch namespace.
    switch_port: String,
}

/// A subnet claimed for the life of a datacenter: `CLAIM_DIR/N` holds the pid
/// of the test process that uses 198.18.N.0/24.
struct Claim {
    subnet: u8,
    path: PathBuf,
}

impl Claim {
    /// The first subnet no live test process holds. Claims are taken under a
    /// lock, so two processes never see the same stale claim and both take it.
    fn take() -> Result<Self> {
        std::fs::create_dir_all(CLAIM_DIR).with_context(|| format!("creating {CLAIM_DIR}"))?;
        let lock_path = Path::new(CLAIM_DIR).join("lock");
        let lock = File::create(&lock_path).with_context(|| format!("opening {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;
        for subnet in 1..=254u8 {
            let path = Path::new(CLAIM_DIR).join(subnet.to_string());
            if let Ok(text) = std::fs::read_to_string(&path) {
                let alive = text.trim().parse::<u32>().is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
                if alive {
                    continue;
                }
            }
            // Ours now: whatever a dead owner left under this prefix goes first.
            remove_namespaces(&prefix(subnet))?;
            std::fs::write(&path, std::process::id().to_string())
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(Self { subnet, path });
        }
        bail!("every subnet 198.18.1-254.0/24 is claimed by a running test ({CLAIM_DIR})")
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Namespace names of subnet N start with this (short: interface and
/// namespace names show up in `ip` output and error messages).
fn prefix(subnet: u8) -> String {
    format!("tsn{subnet}-")
}

/// Kills whatever still runs in the namespaces named `prefix*` and deletes them.
fn remove_namespaces(prefix: &str) -> Result<()> {
    let list = ip(&["netns", "list"])?;
    let names: Vec<&str> = list.lines().filter_map(|l| l.split_whitespace().next()).collect();
    // Hosts before the switch, so the veth pairs go with their hosts.
    for name in names.iter().filter(|n| n.starts_with(prefix) && !n.ends_with("-switch")) {
        remove_namespace(name)?;
    }
    for name in names.iter().filter(|n| n.starts_with(prefix) && n.ends_with("-switch")) {
        remove_namespace(name)?;
    }
    Ok(())
}

fn remove_namespace(name: &str) -> Result<()> {
    for pid in ip(&["netns", "pids", name]).unwrap_or_default().split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    ip(&["netns", "del", name]).map(|_| ())
}

/// Hosts on one bridge, the processes started on them, and the faults between them.
pub struct Datacenter {
    claim: Claim,
    switch: String,
    hosts: Vec<Host>,
    processes: HashMap<String, ProcessGuard>,
    /// Hosts whose link is down.
    cut: BTreeSet<String>,
    /// Hosts that carry partition rules.
    partitioned: BTreeSet<String>,
    root: PathBuf,
    /// Removes `root` on drop unless kept.
    tmp: Option<tempfile::TempDir>,
}

impl Datacenter {
    /// Builds the switch and one namespace per name in `hosts`, in that order
    /// (host i gets 198.18.N.(i+1)). Call [`skip`] first.
    pub fn new(hosts: &[&str]) -> Result<Self> {
        if hosts.len() > 250 {
            bail!("a datacenter has at most 250 hosts");
        }
        let claim = Claim::take()?;
        let prefix = prefix(claim.subnet);
        let switch = format!("{prefix}switch");
        let dir = tempfile::Builder::new().prefix("tessera-netns-").tempdir().context("creating the test dir")?;
        let mut dc = Self {
            switch: switch.clone(),
            hosts: Vec::new(),
            processes: HashMap::new(),
            cut: BTreeSet::new(),
            partitioned: BTreeSet::new(),
            root: dir.path().to_path_buf(),
            tmp: Some(dir),
            claim,
        };
        ip(&["netns", "add", &switch])?;
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &switch, "link", "set", "br0", "up"])?;
        for (i, name) in hosts.iter().enumerate() {
            let host = Host {
                name: name.to_string(),
                ns: format!("{prefix}{name}"),
                addr: Ipv4Addr::new(198, 18, dc.claim.subnet, i as u8 + 1),
                switch_port: format!("h{}", i + 1),
            };
            // Pushed first: a failure below still removes the namespace on drop.
            dc.hosts.push(host.clone());
            dc.wire(&host).with_context(|| format!("wiring host {name} ({})", host.ns))?;
            std::fs::create_dir_all(dc.host_dir(name))?;
        }
        Ok(dc)
    }

    fn wire(&self, h: &Host) -> Result<()> {
        ip(&["netns", "add", &h.ns])?;
        // Both ends are made inside namespaces: nothing appears in the root one.
        ip(&[
            "-n",
            &h.ns,
            "link",
            "add",
            HOST_DEV,
            "type",
            "veth",
            "peer",
            "name",
            &h.switch_port,
            "netns",
            &self.switch,
        ])?;
        ip(&["-n", &self.switch, "link", "set", &h.switch_port, "master", "br0", "up"])?;
        ip(&["-n", &h.ns, "addr", "add", &format!("{}/24", h.addr), "dev", HOST_DEV])?;
        ip(&["-n", &h.ns, "link", "set", HOST_DEV, "up"])?;
        ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// The subnet number N of 198.18.N.0/24.
    pub fn subnet(&self) -> u8 {
        self.claim.subnet
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| anyhow!("no host {name}"))
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The test's directory (configs, data dirs and logs of every host).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// `DIR/<host>`: where a host's configs, data and logs go.
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.dir().join(host)
    }

    /// A command that runs `program` inside `host`'s namespace.
    pub fn command(&self, host: &str, program: &Path) -> Result<Command> {
        let h = self.host(host)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &h.ns]).arg(program).stdin(Stdio::null());
        Ok(cmd)
    }

    /// Runs `program ARGS` in `host` with `env` added; kills it and fails after
    /// `timeout` (a call stuck on a dead peer must not hang the test).
    pub fn run(
        &self,
        host: &str,
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        timeout: Duration,
    ) -> Result<Output> {
        let mut child = self
            .command(host, program)?
            .args(args)
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} on {host}", program.display()))?;
        // Read the pipes on threads so a chatty child never blocks on a full pipe.
        let mut stdout = child.stdout.take().context("stdout pipe")?;
        let mut stderr = child.stderr.take().context("stderr pipe")?;
        let out_reader = std::thread::spawn(move || read_all(&mut stdout));
        let err_reader = std::thread::spawn(move || read_all(&mut stderr));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = err_reader.join().unwrap_or_default();
                bail!(
                    "{} {args:?} on {host} did not finish within {timeout:?}; stderr: {}",
                    program.display(),
                    String::from_utf8_lossy(&err).trim()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_reader.join().map_err(|_| anyhow!("stdout reader panicked"))?;
        let stderr = err_reader.join().map_err(|_| anyhow!("stderr reader panicked"))?;
        Ok(Output { status, stdout, stderr })
    }

    /// Starts process `name` on `host`: `program --config CONFIG`, with its
    /// output in `DIR/<host>/<name>.log`. Replaces a dead process of that name.
    pub fn spawn(&mut self, host: &str, name: &str, program: &Path, config: &Path) -> Result<()> {
        if self.processes.get_mut(name).is_some_and(|p| p.is_running()) {
            bail!("process {name} is running already");
        }
        let ns = self.host(host)?.ns.clone();
        let log = self.host_dir(host).join(format!("{name}.log"));
        let args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            ns,
            program.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ];
        // `ip netns exec` execs the program, so the guard's pid is the program's.
        let guard = ProcessGuard::spawn(name, Path::new("ip"), &args, &log)?;
        self.processes.insert(name.to_owned(), guard);
        Ok(())
    }

    /// Waits until process `name` has written `addr_file`; fails at once with its
    /// log when it exits first.
    pub fn wait_listening(&mut self, name: &str, addr_file: &Path, timeout: Duration) -> Result<String> {
        let p = self.processes.get_mut(name).ok_or_else(|| anyhow!("no process {name}"))?;
        read_addr_file(addr_file, timeout, p)
    }

    /// kill -9 of process `name`.
    pub fn kill9(&mut self, name: &str) -> Result<()> {
        self.processes.get_mut(name).ok_or_else(|| anyhow!("no process {name}"))?.kill9();
        Ok(())
    }

    /// The end of process `name`'s log, for failure messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = self.processes.get(name).map(|p| p.log_text()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Cuts `host` off the network: its link goes down, as if its cable were pulled.
    pub fn cut(&mut self, host: &str) -> Result<()> {
        let ns = self.host(host)?.ns.clone();
        ip(&["-n", &ns, "link", "set", HOST_DEV, "down"])?;
        self.cut.insert(host.to_owned());
        Ok(())
    }

    /// Puts a cut host back on the network.
    pub fn reconnect(&mut self, host: &str) -> Result<()> {
        let ns = self.host(host)?.ns.clone();
        ip(&["-n", &ns, "link", "set", HOST_DEV, "up"])?;
        self.cut.remove(host);
        Ok(())
    }

    /// Drops every packet between the hosts of `a` and those of `b` (both ways,
    /// established connections too, silently: peers see timeouts, not resets).
    /// Hosts in neither set keep reaching everyone. Needs `nft`.
    pub fn partition(&mut self, a: &[&str], b: &[&str]) -> Result<()> {
        if !nft_available() {
            bail!("partitions need nftables (`apt-get install nftables`); use cut() without it");
        }
        let addrs = |names: &[&str]| -> Result<Vec<String>> {
            names.iter().map(|n| Ok(self.host(n)?.addr.to_string())).collect()
        };
        let (a_addrs, b_addrs) = (addrs(a)?, addrs(b)?);
        for (side, other) in [(a, &b_addrs), (b, &a_addrs)] {
            for host in side {
                let ns = self.host(host)?.ns.clone();
                let mut script = String::new();
                if !self.partitioned.contains(*host) {
                    script += &format!(
                        "table inet {FAULT_TABLE} {{\n  set blocked {{ type ipv4_addr; }}\n  \
                         chain input {{ type filter hook input priority 0; policy accept; ip saddr @blocked drop; }}\n  \
                         chain output {{ type filter hook output priority 0; policy accept; ip daddr @blocked drop; }}\n}}\n"
                    );
                }
                script += &format!("add element inet {FAULT_TABLE} blocked {{ {} }}\n", other.join(", "));
                self.nft(&ns, &script).with_context(|| format!("partition rules on {host}"))?;
                self.partitioned.insert(host.to_string());
            }
        }
        Ok(())
    }

    fn nft(&self, ns: &str, script: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting nft")?;
        child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("nft -f: {}\n{script}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Ends every fault: partition rules removed, cut links up again.
    pub fn heal(&mut self) -> Result<()> {
        for host in std::mem::take(&mut self.partitioned) {
            let ns = self.host(&host)?.ns.clone();
            run_checked(
                Command::new("ip").args(["netns", "exec", &ns, "nft", "delete", "table", "inet", FAULT_TABLE]),
                &format!("removing the partition rules of {host}"),
            )?;
        }
        for host in self.cut.clone() {
            self.reconnect(&host)?;
        }
        Ok(())
    }

    /// Plain HTTP GET of `path` at `addr` (host:port) from inside `host`'s
    /// namespace (metrics, health): returns (status code, body).
    pub fn http_get(&self, host: &str, addr: &str, path: &str) -> Result<(u16, String)> {
        let ns_file = Path::new("/run/netns").join(&self.host(host)?.ns);
        let (addr, path) = (addr.to_owned(), path.to_owned());
        // setns moves only the calling thread; a fresh one is thrown away afterwards.
        std::thread::spawn(move || -> Result<(u16, String)> {
            let ns = File::open(&ns_file).with_context(|| format!("opening {}", ns_file.display()))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).context("entering the host's namespace")?;
            crate::http_get(&addr, &path)
        })
        .join()
        .map_err(|_| anyhow!("the HTTP thread panicked"))?
    }

    /// Keeps the test's directory after drop (for a failed test); returns its path.
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.keep();
        }
        self.root.clone()
    }
}

fn read_all(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

impl Drop for Datacenter {
    fn drop(&mut self) {
        // Processes first: a namespace with a process left in it outlives `ip netns del`.
        for p in self.processes.values_mut() {
            p.kill9();
        }
        for h in &self.hosts {
            if let Err(e) = remove_namespace(&h.ns) {
                eprintln!("netns: {e:#}");
            }
        }
        if let Err(e) = remove_namespace(&self.switch) {
            eprintln!("netns: {e:#}");
        }
        // A failed test keeps its configs, data and logs for a look.
        if std::thread::panicking() && self.tmp.is_some() {
            eprintln!("netns: logs and data of the failed test kept in {}", self.keep_dir().display());
        }
    }
}
