//! `tessera share|unshare|shares|shared-with-me`: sharing files and folders with
//! other users of the cluster. With the global `--owner USER`, file commands act
//! on USER's files that are shared with you.

use std::time::Duration;

use serde_json::json;
use tessera_proto::api as pb;

use crate::remote::{connect, explain};

fn share_json(s: &pb::ShareInfo) -> serde_json::Value {
    json!({"owner": s.owner, "path": s.path, "grantee": s.grantee, "permission": s.permission,
        "expires_at_ms": s.expires_at_ms})
}

fn share_line(s: &pb::ShareInfo) -> String {
    let expiry = match s.expires_at_ms {
        Some(at) => {
            let left = (at - tessera_router::datapath::now_ms()).max(0) / 1000;
            format!(", expires in {}", humantime::format_duration(Duration::from_secs(left as u64)))
        }
        None => String::new(),
    };
    format!("{}:{} → {} ({}{expiry})", s.owner, s.path, s.grantee, s.permission)
}

pub async fn share(
    json: bool,
    path: &str,
    grantee: &str,
    permission: &str,
    expires: Option<Duration>,
) -> anyhow::Result<()> {
    let req = pb::ShareRequest {
        path: path.into(),
        grantee: grantee.into(),
        permission: permission.into(),
        expires_in_secs: expires.map(|d| d.as_secs().max(1)),
        device_id: "cli".into(),
    };
    let s = connect().await?.raw().share(req).await.map_err(explain)?.into_inner();
    if json {
        println!("{}", share_json(&s));
    } else {
        println!("shared {}", share_line(&s));
    }
    Ok(())
}

pub async fn unshare(json: bool, path: &str, grantee: &str) -> anyhow::Result<()> {
    let req = pb::UnshareRequest { path: path.into(), grantee: grantee.into(), device_id: "cli".into() };
    connect().await?.raw().unshare(req).await.map_err(explain)?;
    if json {
        println!("{}", json!({"unshared": path, "grantee": grantee}));
    } else {
        println!("{path} is no longer shared with {grantee}");
    }
    Ok(())
}

fn print_all(json: bool, shares: &[pb::ShareInfo], empty: &str) {
    if json {
        println!("{}", serde_json::Value::Array(shares.iter().map(share_json).collect()));
    } else if shares.is_empty() {
        println!("{empty}");
    } else {
        for s in shares {
            println!("{}", share_line(s));
        }
    }
}

pub async fn shares(json: bool, path: &str) -> anyhow::Result<()> {
    let req = pb::ListSharesRequest { path: path.into() };
    let r = connect().await?.raw().list_shares(req).await.map_err(explain)?.into_inner();
    print_all(json, &r.shares, &format!("{path} is not shared"));
    Ok(())
}

pub async fn shared_with_me(json: bool) -> anyhow::Result<()> {
    let r = connect().await?.raw().shared_with_me(pb::SharedWithMeRequest {}).await.map_err(explain)?.into_inner();
    print_all(json, &r.shares, "nothing is shared with you");
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum LinkCommand {
    /// Make a URL that lets anyone holding it read PATH (a file, or a folder and
    /// everything in it); an edit link to a folder also takes uploads into it.
    Create {
        path: String,
        #[arg(long, default_value = "view", value_parser = ["view", "edit"])]
        permission: String,
        /// Ask for a password: read from the first line of standard input.
        #[arg(long)]
        password: bool,
        /// Stop the link after this long (e.g. 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// Revoke a link (its URL answers 404 from then on).
    Rm { token: String },
    /// The links of a path.
    Ls { path: String },
}

fn link_url(path: &str) -> String {
    let base = std::env::var("TESSERA_ENDPOINT").unwrap_or_default();
    let base = if base.starts_with("http") { base } else { format!("http://{base}") };
    format!("{}{path}", base.trim_end_matches('/'))
}

fn link_json(l: &pb::LinkInfo) -> serde_json::Value {
    json!({"token": l.token, "url": link_url(&l.url_path), "path": l.path, "permission": l.permission,
        "has_password": l.has_password, "expires_at_ms": l.expires_at_ms})
}

pub async fn link(json: bool, command: LinkCommand) -> anyhow::Result<()> {
    let client = connect().await?;
    match command {
        LinkCommand::Create { path, permission, password, expires } => {
            let password = if password {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                let line = line.trim_end_matches(['\r', '\n']).to_owned();
                anyhow::ensure!(!line.is_empty(), "--password: no password on standard input");
                line
            } else {
                String::new()
            };
            let req = pb::CreateLinkRequest {
                path,
                permission,
                password,
                expires_in_secs: expires.map(|d| d.as_secs().max(1)),
                device_id: "cli".into(),
            };
            let l = client.raw().create_link(req).await.map_err(explain)?.into_inner();
            if json {
                println!("{}", link_json(&l));
            } else {
                println!("{}", link_url(&l.url_path));
            }
        }
        LinkCommand::Rm { token } => {
            client
                .raw()
                .revoke_link(pb::RevokeLinkRequest { token: token.clone(), device_id: "cli".into() })
                .await
                .map_err(explain)?;
            if json {
                println!("{}", json!({"revoked": token}));
            } else {
                println!("link revoked");
            }
        }
        LinkCommand::Ls { path } => {
            let r = client
                .raw()
                .list_links(pb::ListLinksRequest { path: path.clone() })
                .await
                .map_err(explain)?
                .into_inner();
            if json {
                println!("{}", serde_json::Value::Array(r.links.iter().map(link_json).collect()));
            } else if r.links.is_empty() {
                println!("{path} has no links");
            } else {
                for l in &r.links {
                    println!(
                        "{} ({}{})",
                        link_url(&l.url_path),
                        l.permission,
                        if l.has_password { ", password" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}
