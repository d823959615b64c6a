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
