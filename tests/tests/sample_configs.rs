//! The sample configs under `deploy/examples/` parse with the binaries' own
//! config types (unknown keys are rejected, as at start-up), describe one
//! consistent cluster, and match the config paths and data dirs the systemd
//! units in `deploy/systemd/` use. A renamed or removed config key fails here
//! instead of in an operator's first start.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tessera_block::BlockConfig;
use tessera_meta::node::MetaConfig;
use tessera_proto::config::load_toml;
use tessera_router::server::RouterConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn three_hosts() -> PathBuf {
    repo().join("deploy/examples/three-hosts")
}

/// Every sample of one host, parsed by file name: `meta.toml`, `block-N.toml`, `router.toml`.
#[derive(Default)]
struct Host {
    meta: Vec<(String, MetaConfig)>,
    blocks: Vec<(String, BlockConfig)>,
    routers: Vec<(String, RouterConfig)>,
}

fn load_hosts() -> BTreeMap<String, Host> {
    let mut hosts = BTreeMap::new();
    for entry in std::fs::read_dir(three_hosts()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let mut host = Host::default();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            match name.as_str() {
                "meta.toml" => host.meta.push((name.clone(), load_toml(&path).unwrap_or_else(|e| panic!("{e}")))),
                "router.toml" => host.routers.push((name.clone(), load_toml(&path).unwrap_or_else(|e| panic!("{e}")))),
                n if n.starts_with("block-") && n.ends_with(".toml") => {
                    host.blocks.push((name.clone(), load_toml(&path).unwrap_or_else(|e| panic!("{e}"))))
                }
                _ => panic!("{}: not a sample this test knows how to parse", path.display()),
            }
        }
        hosts.insert(dir.file_name().unwrap().to_string_lossy().into_owned(), host);
    }
    hosts
}

#[test]
fn every_sample_config_parses_with_the_real_config_types() {
    let hosts = load_hosts();
    assert_eq!(hosts.len(), 3, "hosts: {:?}", hosts.keys().collect::<Vec<_>>());
    for (name, host) in &hosts {
        assert_eq!(host.meta.len(), 1, "{name}: one metadata node");
        assert_eq!(host.blocks.len(), 2, "{name}: two block nodes");
        assert_eq!(host.routers.len(), 1, "{name}: one router");
    }
}

#[test]
fn the_loader_used_here_rejects_unknown_keys() {
    // Guards the test above: a typo in a sample must fail it.
    let dir = tempfile::tempdir().unwrap();
    for (sample, file) in
        [("host-1/meta.toml", "meta"), ("host-1/block-1.toml", "block"), ("host-1/router.toml", "router")]
    {
        let text = std::fs::read_to_string(three_hosts().join(sample)).unwrap();
        let path = dir.path().join(format!("{file}.toml"));
        // A top-level key must come before the first table.
        std::fs::write(&path, format!("listen_typo = \"x\"\n{text}")).unwrap();
        let err = match file {
            "meta" => load_toml::<MetaConfig>(&path).map(|_| ()),
            "block" => load_toml::<BlockConfig>(&path).map(|_| ()),
            _ => load_toml::<RouterConfig>(&path).map(|_| ()),
        }
        .unwrap_err()
        .to_string();
        assert!(err.contains("listen_typo"), "{sample}: {err}");
    }
}

#[test]
fn the_samples_describe_one_consistent_cluster() {
    let hosts = load_hosts();
    let metas: Vec<&MetaConfig> = hosts.values().flat_map(|h| h.meta.iter().map(|(_, c)| c)).collect();
    let meta_addrs: BTreeSet<&str> = metas.iter().map(|c| c.listen.as_str()).collect();
    assert_eq!(meta_addrs.len(), 3, "distinct metadata addresses");
    let ids: BTreeSet<u64> = metas.iter().map(|c| c.node_id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]), "metadata node ids");
    assert_eq!(metas.iter().filter(|c| c.bootstrap).count(), 1, "exactly one bootstrap node");
    for c in metas.iter().filter(|c| !c.bootstrap) {
        let join = c.join.as_deref().unwrap_or_else(|| panic!("node {} neither bootstraps nor joins", c.node_id));
        let first = metas.iter().find(|m| m.bootstrap).unwrap();
        assert_eq!(join, first.listen, "node {} joins through the bootstrap node", c.node_id);
    }

    let mut block_ids = BTreeSet::new();
    let mut listens: BTreeSet<String> = meta_addrs.iter().map(|a| a.to_string()).collect();
    let mut zones = BTreeSet::new();
    for (host, h) in &hosts {
        let host_zones: BTreeSet<&str> = h.blocks.iter().map(|(_, c)| c.zone.as_str()).collect();
        assert_eq!(host_zones.len(), 1, "{host}: its block nodes share one zone");
        assert!(zones.insert(host_zones.into_iter().next().unwrap().to_owned()), "{host}: a zone of its own");
        for (file, c) in &h.blocks {
            assert_eq!(format!("{}.toml", c.node_id), *file, "{host}/{file}: file named after node_id");
            assert!(block_ids.insert(c.node_id.clone()), "{host}/{file}: node_id {} used twice", c.node_id);
            assert!(listens.insert(c.listen.clone()), "{host}/{file}: address {} used twice", c.listen);
            assert!(c.min_free_bytes > 0, "{host}/{file}: keep a free-space floor in production");
        }
        for (file, r) in &h.routers {
            assert!(listens.insert(r.listen.clone()), "{host}/{file}: address {} used twice", r.listen);
            assert!(listens.insert(r.s3.listen.clone()), "{host}/{file}: S3 address {} used twice", r.s3.listen);
            let meta: BTreeSet<&str> = r.meta.iter().map(String::as_str).collect();
            assert_eq!(meta, meta_addrs, "{host}/{file}: lists every metadata node");
            let (k, m) = (r.datapath.data_shards, r.datapath.parity_shards);
            let q = r.datapath.write_quorum.unwrap_or(k + 1);
            assert!(q > k && q <= k + m, "{host}/{file}: write_quorum {q} outside k+1..=k+m");
            assert!(
                std::time::Duration::from_secs(r.gc.grace_secs) >= tessera_router::gc::MIN_GRACE,
                "{host}/{file}: gc grace below the minimum"
            );
            assert!(r.admin.listen.is_empty(), "{host}/{file}: the console needs a password hash; leave it off");
        }
        // Every block node of a host and its router are distinct processes on the same address.
        let ip = |a: &str| a.rsplit_once(':').unwrap().0.to_owned();
        let host_ips: BTreeSet<String> = h
            .blocks
            .iter()
            .map(|(_, c)| ip(&c.listen))
            .chain(h.meta.iter().map(|(_, c)| ip(&c.listen)))
            .chain(h.routers.iter().map(|(_, c)| ip(&c.listen)))
            .collect();
        assert_eq!(host_ips.len(), 1, "{host}: every process on the host's one address");
    }
    assert_eq!(block_ids.len(), 6, "six block nodes for 4+2 coding");
    let routers: Vec<&RouterConfig> = hosts.values().flat_map(|h| h.routers.iter().map(|(_, c)| c)).collect();
    let with_jobs = routers.iter().filter(|r| r.repair.interval_secs > 0 || r.gc.interval_secs > 0).count();
    assert_eq!(with_jobs, 1, "one router runs the background repair and GC jobs");
}

/// `KEY=VALUE` lines of a systemd unit.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).unwrap();
    text.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_owned).collect()
}

#[test]
fn the_systemd_units_match_the_sample_configs() {
    let hosts = load_hosts();
    // (unit, binary, config path, writable data dir); %i is the block node's number.
    let units = [
        ("tessera-meta.service", "tessera-meta", "/etc/tessera/meta.toml", Some("/var/lib/tessera/meta")),
        ("tessera-block@.service", "tessera-block", "/etc/tessera/block-%i.toml", Some("/var/lib/tessera/block-%i")),
        ("tessera-router.service", "tessera-router", "/etc/tessera/router.toml", None),
    ];
    for (unit, bin, config, data) in units {
        let exec = unit_values(unit, "ExecStart");
        assert_eq!(exec, [format!("/usr/local/bin/{bin} --config {config}")], "{unit}");
        let writable = unit_values(unit, "ReadWritePaths");
        assert_eq!(writable, data.map(|d| vec![d.to_owned()]).unwrap_or_default(), "{unit}");
        for key in ["NoNewPrivileges", "PrivateTmp", "ProtectHome"] {
            assert_eq!(unit_values(unit, key), ["yes"], "{unit}: {key}");
        }
        assert_eq!(unit_values(unit, "ProtectSystem"), ["strict"], "{unit}");
        assert_eq!(unit_values(unit, "CapabilityBoundingSet"), [""], "{unit}");
        assert_eq!(unit_values(unit, "Restart"), ["on-failure"], "{unit}");
    }
    for (host, h) in &hosts {
        for (_, c) in &h.meta {
            assert_eq!(c.data_dir, Path::new("/var/lib/tessera/meta"), "{host}: meta data_dir the unit allows");
        }
        for (file, c) in &h.blocks {
            let n = c.node_id.strip_prefix("block-").unwrap();
            let expected = PathBuf::from(format!("/var/lib/tessera/block-{n}"));
            assert_eq!(c.data_dir, expected, "{host}/{file}: the data dir tessera-block@{n} allows");
        }
    }
}
