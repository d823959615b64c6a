//! The change feed over HTTP, for web clients that cannot speak gRPC:
//! `GET /v1/changes?after=N&limit=M&wait_ms=W&device=D` on the router's port,
//! signed like native calls (`x-tessera-access-key`, `x-tessera-date`,
//! `x-tessera-signature` over the path `/v1/changes`). The answer is JSON
//! `{"events": [...], "next_cursor": N, "has_more": bool, "head_cursor": N}`; with
//! nothing new it waits for the next change up to `wait_ms` (capped like `Changes`).
//! A cursor older than the log keeps is 410 Gone ("cursor too old"): list the
//! tree again and follow from the head, which `head_only=1` reads.
//!
//! `owner=USER` (or the `x-tessera-owner` header, as on the native API) reads USER's
//! feed filtered to what USER shares with the caller (`crate::feed`); 403 when
//! nothing is shared (any more). Like the other parameters, the owner is not part of
//! the signature: it only selects, and access is checked for the signed caller.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::{Authenticator, ACCESS_KEY, DATE, SIGNATURE};
use crate::datapath::{now_ms, DataPath};
use crate::error::RouterError;
use crate::feed;

pub const PATH: &str = "/v1/changes";

#[derive(Clone)]
struct FeedState {
    dp: Arc<DataPath>,
    auth: Arc<Authenticator>,
    max_wait_ms: u64,
}

pub fn routes(dp: Arc<DataPath>, auth: Arc<Authenticator>, max_wait_ms: u64) -> axum::Router {
    axum::Router::new().route(PATH, get(changes)).with_state(FeedState { dp, auth, max_wait_ms })
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn error(e: RouterError) -> Response {
    let status = match &e {
        RouterError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        RouterError::InvalidArgument(_) => StatusCode::BAD_REQUEST,
        RouterError::NotFound(_) => StatusCode::NOT_FOUND,
        RouterError::PermissionDenied(_) => StatusCode::FORBIDDEN,
        RouterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        RouterError::CursorTooOld(_) => StatusCode::GONE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json(status, serde_json::json!({ "error": e.to_string() }))
}

async fn changes(State(s): State<FeedState>, headers: HeaderMap, uri: Uri) -> Response {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let user = match s.auth.verify(get(ACCESS_KEY), get(DATE), get(SIGNATURE), PATH, now_ms()).await {
        Ok(u) => u,
        Err(e) => return error(e),
    };
    let mut after = 0u64;
    let mut limit = 0u32;
    let mut wait_ms = 0u64;
    let mut device = String::new();
    let mut head_only = false;
    let mut owner = headers.get(crate::sharing::OWNER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        let bad = || error(RouterError::InvalidArgument(format!("{k} must be a number, not {v:?}")));
        match k.as_ref() {
            "after" => match v.parse() {
                Ok(n) => after = n,
                Err(_) => return bad(),
            },
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => return bad(),
            },
            "wait_ms" => match v.parse() {
                Ok(n) => wait_ms = n,
                Err(_) => return bad(),
            },
            "device" => device = v.into_owned(),
            "head_only" => head_only = matches!(v.as_ref(), "1" | "true"),
            "owner" => match &owner {
                Some(o) if *o != v => {
                    return error(RouterError::InvalidArgument(
                        "owner= and the x-tessera-owner header name different users".into(),
                    ))
                }
                _ => owner = Some(v.into_owned()),
            },
            _ => {}
        }
    }
    let wait = std::time::Duration::from_millis(wait_ms.min(s.max_wait_ms));
    let owner = owner.filter(|o| !o.is_empty());
    let page = if head_only {
        feed::head(&s.dp, &user.user_id, owner.as_deref(), &device).await
    } else {
        feed::changes(&s.dp, &user.user_id, owner.as_deref(), after, limit, &device, wait).await
    };
    match page {
        Ok(page) => match serde_json::to_value(&page) {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error(RouterError::Metadata(e.to_string())),
        },
        Err(e) => error(e),
    }
}
