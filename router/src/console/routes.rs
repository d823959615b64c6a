//! The console's HTTP routes: login/logout, the pages, `/api/overview` (the
//! overview as JSON) and the POST actions that start passes. Every route but the
//! login form needs a session; every POST needs the session's CSRF token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{json, Value};

use super::auth::{LoginOutcome, Session};
use super::jobs::JobKind;
use super::{pages, Console};

type Shared = State<Arc<Console>>;

/// Largest form a POST may carry (a password or a token).
const MAX_FORM: usize = 16 << 10;
/// Rows of the recent-errors page.
const ERROR_ROWS: usize = 100;

pub fn router(console: Arc<Console>) -> axum::Router {
    axum::Router::new()
        .route("/", get(overview_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/users", get(users_page))
        .route("/errors", get(errors_page))
        .route("/api/overview", get(overview_json))
        .route("/actions/gc", post(start::<true>))
        .route("/actions/repair", post(start::<false>))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn html(status: StatusCode, page: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn json_body(v: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string())
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn form_field(body: &Bytes, name: &str) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// 401 with the login form (pages) when there is no session.
fn unauthorized() -> Response {
    html(StatusCode::UNAUTHORIZED, pages::login(None))
}

async fn login_page() -> Response {
    html(StatusCode::OK, pages::login(None))
}

async fn login(State(c): Shared, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    if body.len() > MAX_FORM {
        return html(StatusCode::PAYLOAD_TOO_LARGE, pages::login(Some("form too large")));
    }
    let password = form_field(&body, "password").unwrap_or_default();
    match c.auth.login(peer.ip(), password).await {
        LoginOutcome::Ok(id) => {
            c.metrics.login("ok");
            tracing::info!(peer = %peer.ip(), "console login");
            let mut r = see_other("/");
            if let Ok(v) = HeaderValue::from_str(&c.auth.cookie(&id)) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        LoginOutcome::Wrong => {
            c.metrics.login("failed");
            html(StatusCode::UNAUTHORIZED, pages::login(Some("wrong password")))
        }
        LoginOutcome::Limited(secs) => {
            c.metrics.login("limited");
            let mut r = html(
                StatusCode::TOO_MANY_REQUESTS,
                pages::login(Some(&format!("too many wrong passwords; try again in {secs} s"))),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
    }
}

async fn logout(State(c): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let csrf = form_field(&body, "csrf").unwrap_or_default();
    if c.auth.session_with_csrf(&headers, &csrf).is_none() {
        return unauthorized();
    }
    c.auth.logout(&headers);
    let mut r = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&super::auth::expired_cookie()) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Everything the overview shows, as one JSON document.
async fn gather(c: &Console) -> Result<Value, String> {
    // The job state first: a pass it shows finished is then finished in the status's record.
    let jobs = c.jobs.state();
    let status = crate::status::collect(&c.dp.view.meta, &c.meta_endpoints).await.map_err(|e| e.to_string())?;
    let users = crate::status::users(&c.dp.view).await.map_err(|e| e.to_string())?;
    Ok(json!({
        "status": status,
        "users": users,
        "console_jobs": jobs,
        "background": {
            "repair": {"interval_secs": c.background.repair.interval_secs, "running": c.background.repair_running.get() > 0},
            "gc": {"interval_secs": c.background.gc.interval_secs, "running": c.background.gc_running.get() > 0},
        },
        "tiering": if status["tiers"].as_array().is_some_and(|t| !t.is_empty()) { "configured" } else { "not configured" },
        "recent_errors": super::errors::recent(ERROR_ROWS).len(),
    }))
}

async fn render_overview(
    c: &Console,
    session: &Session,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let jobs = c.jobs.state();
    match crate::status::collect(&c.dp.view.meta, &c.meta_endpoints).await {
        Ok(st) => {
            let bg = &c.background;
            let o = pages::Overview {
                status: &st,
                jobs: &jobs,
                background: (
                    bg.repair.interval_secs,
                    bg.repair_running.get() > 0,
                    bg.gc.interval_secs,
                    bg.gc_running.get() > 0,
                ),
                csrf: &session.csrf,
                notice,
                error,
            };
            html(status, pages::overview(&o))
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: cluster status unavailable");
            html(StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(&session.csrf, &e.to_string()))
        }
    }
}

async fn overview_page(State(c): Shared, headers: HeaderMap) -> Response {
    let Some(session) = c.auth.session(&headers) else { return unauthorized() };
    render_overview(&c, &session, StatusCode::OK, None, None).await
}

async fn users_page(State(c): Shared, headers: HeaderMap) -> Response {
    let Some(session) = c.auth.session(&headers) else { return unauthorized() };
    match crate::status::users(&c.dp.view).await {
        Ok(users) => html(StatusCode::OK, pages::users(&session.csrf, &users)),
        Err(e) => html(StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(&session.csrf, &e.to_string())),
    }
}

async fn errors_page(State(c): Shared, headers: HeaderMap) -> Response {
    let Some(session) = c.auth.session(&headers) else { return unauthorized() };
    html(StatusCode::OK, pages::errors(&session.csrf, &super::errors::recent(ERROR_ROWS)))
}

async fn overview_json(State(c): Shared, headers: HeaderMap) -> Response {
    if c.auth.session(&headers).is_none() {
        return (StatusCode::UNAUTHORIZED, json_body(&json!({"error": "log in first (POST /login)"}))).into_response();
    }
    match gather(&c).await {
        Ok(v) => (StatusCode::OK, json_body(&v)).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, json_body(&json!({"error": e}))).into_response(),
    }
}

/// POST /actions/gc (`GC`) or /actions/repair: starts the pass, back to the overview.
async fn start<const GC: bool>(State(c): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let csrf = if body.len() > MAX_FORM { None } else { form_field(&body, "csrf") };
    let Some(session) = csrf.and_then(|t| c.auth.session_with_csrf(&headers, &t)) else {
        if c.auth.session(&headers).is_some() {
            return html(StatusCode::FORBIDDEN, pages::login(Some("the form's token is stale; reload the page")));
        }
        return unauthorized();
    };
    let kind = if GC { JobKind::Gc } else { JobKind::Repair };
    match c.jobs.start(kind).await {
        Ok(()) => {
            tracing::info!(kind = kind.label(), "console started a pass");
            c.metrics.passes_started.get_or_create(&vec![("kind".into(), kind.label().to_lowercase())]).inc();
            see_other("/#work")
        }
        Err(e) => {
            tracing::warn!(kind = kind.label(), error = %e, "console could not start a pass");
            render_overview(&c, &session, StatusCode::CONFLICT, None, Some(&e.to_string())).await
        }
    }
}
