//! `tessera`: the user and operator command line.
//!
//! File commands talk to a router (`TESSERA_ENDPOINT`, credentials from
//! `TESSERA_ACCESS_KEY`/`TESSERA_SECRET_KEY` or `AWS_ACCESS_KEY_ID`/
//! `AWS_SECRET_ACCESS_KEY`); admin commands talk to metadata nodes
//! (`TESSERA_META_ENDPOINT`); `tessera dev` runs a whole cluster in-process.
//! Failures print one line on stderr and exit non-zero.

mod admin;
mod bench;
mod cluster;
mod dev;
mod files;
mod gc;
mod local_cluster;
mod log_pump;
mod maintenance;
mod remote;
mod resumable;
mod shards;
mod sharing;
mod status;
mod sync;
mod tier;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera: on-prem file storage cluster")]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Act on this user's files that are shared with you (file commands and sharing).
    #[arg(long, global = true)]
    owner: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnConflict {
    Copy,
    Lww,
    Reject,
}

#[derive(Subcommand)]
enum Command {
    /// Upload a local file to a remote path.
    Put {
        local: PathBuf,
        remote: String,
        #[arg(long)]
        base_version: Option<u64>,
        #[arg(long, default_value = "cli")]
        device: String,
        #[arg(long, value_enum, default_value = "copy")]
        on_conflict: OnConflict,
        /// Upload through a resumable session: chunks are hashed locally, only
        /// missing ones are sent, and running the same command again after an
        /// interruption resumes. Used automatically for files of 64 MiB and more.
        #[arg(long)]
        resumable: bool,
    },
    /// Download a remote file to a local path.
    Get {
        remote: String,
        local: PathBuf,
        #[arg(long)]
        version: Option<u64>,
    },
    /// List a remote folder.
    Ls {
        #[arg(default_value = "/")]
        path: String,
    },
    /// Show one remote file or folder.
    Stat { path: String },
    /// Create a remote folder (and missing parents).
    Mkdir { path: String },
    /// Move or rename a file or folder.
    Mv { from: String, to: String },
    /// Delete a file or folder (versions stay restorable unless --purge).
    Rm {
        path: String,
        /// Remove every version too, for good; GC then gives the space back.
        #[arg(long)]
        purge: bool,
    },
    /// List a file's versions, newest first.
    Versions {
        #[arg(required_unless_present = "detached")]
        path: Option<String>,
        /// A detached file's versions instead (its id from `tessera detached`).
        #[arg(long)]
        detached: Option<u64>,
    },
    /// Deleted files displaced from their path by a newer entry (they keep their versions).
    Detached,
    /// Put a detached file back, live, at PATH.
    Reattach { id: u64, path: String },
    /// Share a file or folder with another user (a folder share covers everything in it).
    Share {
        path: String,
        user: String,
        #[arg(long, default_value = "view", value_parser = ["view", "edit", "admin"])]
        permission: String,
        /// Stop the share after this long (e.g. 7d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
    },
    /// Stop sharing a path with a user.
    Unshare { path: String, user: String },
    /// Who a path is shared with.
    Shares { path: String },
    /// What other users share with you.
    SharedWithMe,
    /// Links anyone with the URL can open (in a browser, or with curl).
    Link {
        #[command(subcommand)]
        command: sharing::LinkCommand,
    },
    /// Your change feed: events after a cursor (what sync clients follow).
    Changes {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// With nothing new, wait up to this many seconds for the next change.
        #[arg(long, default_value_t = 0)]
        wait: u32,
        /// Leave out changes made by this device.
        #[arg(long, default_value = "")]
        device: String,
        /// Keep printing changes as they commit, until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// Keep a local folder and a remote folder identical (both ways), with
    /// offline edits, resumed transfers and conflict copies.
    Sync(sync::SyncArgs),
    /// Make an old version current again (no data is copied).
    Restore { path: String, version: u64 },
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Run a local development cluster in this process, keeping its data in DIR.
    Dev(dev::DevArgs),
    /// Load generators.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Start or stop a multi-process cluster on 127.0.0.1.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Against the native API at TESSERA_ENDPOINT.
    Native(bench::native::NativeArgs),
    /// Load an S3 endpoint (Tessera's or any other store's).
    S3(bench::s3::S3Args),
    /// Time how long a file saved in one synced folder takes to appear in another.
    Sync(bench::sync_latency::SyncLatencyArgs),
}

fn main() -> ExitCode {
    tessera_proto::config::init_logging();
    let cli = Cli::parse();
    // The log pump beside each `cluster up` process needs no async runtime.
    if let Command::Cluster { command: cluster::ClusterCommand::LogPump(args) } = &cli.command {
        return match log_pump::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tessera: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    let owner = cli.owner.clone().filter(|o| !o.is_empty());
    if let Some(owner) = owner.clone() {
        if !owner.is_ascii() {
            eprintln!("tessera: --owner must be a user id (ASCII)");
            return ExitCode::FAILURE;
        }
        remote::act_for_owner(owner);
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Put { local, remote, base_version, device, on_conflict, resumable } => {
                let large = std::fs::metadata(&local).map(|m| m.len() >= 64 << 20).unwrap_or(false);
                if resumable || large {
                    resumable::put(json, &local, &remote, base_version, &device, on_conflict).await
                } else {
                    files::put(json, &local, &remote, base_version, &device, on_conflict).await
                }
            }
            Command::Get { remote, local, version } => files::get(json, &remote, &local, version).await,
            Command::Ls { path } => files::ls(json, &path).await,
            Command::Stat { path } => files::stat(json, &path).await,
            Command::Mkdir { path } => files::mkdir(json, &path).await,
            Command::Mv { from, to } => files::mv(json, &from, &to).await,
            Command::Rm { path, purge } => files::rm(json, &path, purge).await,
            Command::Versions { path, detached } => {
                files::versions(json, path.as_deref().unwrap_or_default(), detached).await
            }
            Command::Detached => files::detached(json).await,
            Command::Reattach { id, path } => files::reattach(json, id, &path).await,
            Command::Changes { after, limit, wait, device, follow } => {
                files::changes(json, after, limit, wait, &device, follow).await
            }
            Command::Sync(args) => {
                let folder = sync::open(&args, owner.as_deref()).await?;
                if args.once {
                    sync::once(json, &folder).await
                } else {
                    sync::run(json, &args, folder).await
                }
            }
            Command::Restore { path, version } => files::restore(json, &path, version).await,
            Command::Share { path, user, permission, expires } => {
                sharing::share(json, &path, &user, &permission, expires).await
            }
            Command::Unshare { path, user } => sharing::unshare(json, &path, &user).await,
            Command::Shares { path } => sharing::shares(json, &path).await,
            Command::SharedWithMe => sharing::shared_with_me(json).await,
            Command::Link { command } => sharing::link(json, command).await,
            Command::Admin { command } => admin::run(json, command).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Cluster { command } => cluster::run(command).await,
            Command::Bench { command: BenchCommand::Native(args) } => bench::native::run(json, args).await,
            Command::Bench { command: BenchCommand::S3(args) } => bench::s3::run(json, args).await,
            Command::Bench { command: BenchCommand::Sync(args) } => bench::sync_latency::run(json, &args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e:#}");
            ExitCode::FAILURE
        }
    }
}
