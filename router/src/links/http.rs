//! Serving links over HTTP on the router's port (`/l/<token>`).
//!
//! * A browser (`Accept: text/html`) gets a small page: the file's name and
//!   size with a download button, a folder's listing, or a password form.
//! * Anything else (curl, scripts) gets the bytes, with single-range support
//!   (`Range: bytes=a-b`, 206/416). `/l/<token>/raw` always gives the bytes.
//! * A password comes from the form (POST), the `x-tessera-link-password`
//!   header or `?password=`. Wrong passwords are counted per link: after
//!   [`MAX_FAILURES`] within [`FAILURE_WINDOW`] every attempt is refused with 429
//!   until the window ends, right password or not.
//! * Unknown and revoked links are 404, expired ones 410, with the same short
//!   text for every link: nothing about the owner or the path leaks.
//! * Edit links to a folder take uploads ([`super::upload`]): `PUT /l/<token>/<name>`
//!   and the upload form on the folder's page (a multipart POST to `/l/<token>`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use futures::StreamExt;
use tessera_meta::model::links::{verify_link_password, Link, LinkPermission};
use tessera_meta::model::types::LinkToken;
use tessera_meta::model::EntryKind;

use super::{lookup, parse_token, url_path, Lookup};
use crate::datapath::DataPath;
use crate::error::RouterError;
use crate::{download, ops};

pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The header a script may send a link's password in.
pub const PASSWORD_HEADER: &str = "x-tessera-link-password";

/// Wrong-password counts per link.
#[derive(Default)]
pub struct PasswordGuard {
    failures: Mutex<HashMap<LinkToken, (u32, Instant)>>,
}

impl PasswordGuard {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<LinkToken, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds left of the block on `token`, if it is blocked.
    fn blocked(&self, token: &LinkToken) -> Option<u64> {
        let mut map = self.map();
        map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        let (count, since) = map.get(token)?;
        (*count >= MAX_FAILURES).then(|| FAILURE_WINDOW.saturating_sub(since.elapsed()).as_secs().max(1))
    }

    fn failed(&self, token: &LinkToken) {
        let mut map = self.map();
        let entry = map.entry(*token).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[derive(Clone)]
pub(super) struct LinkState {
    pub dp: Arc<DataPath>,
    guard: Arc<PasswordGuard>,
    pub config: super::LinksConfig,
}

/// Largest urlencoded form (a password, a sub-path) a POST may carry.
const MAX_FORM_BYTES: usize = 64 << 10;

/// The `/l/...` routes, to merge into the router's HTTP routes.
pub fn routes(dp: Arc<DataPath>, config: super::LinksConfig) -> axum::Router {
    let state = LinkState { dp, guard: Arc::new(PasswordGuard::default()), config };
    axum::Router::new()
        .route("/l/{token}", get(handle::<false>).post(post_page))
        // A file named "raw" at the top of the folder is uploaded here.
        .route("/l/{token}/raw", get(handle::<true>).post(handle::<true>).put(put_raw_name))
        .route("/l/{token}/{*name}", put(put_named))
        .with_state(state)
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub(super) fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}\
         button{{font-size:1.1em;padding:.4em 1.2em}}li{{margin:.3em 0}}</style></head>\
         <body><h1>{}</h1>{body}</body></html>",
        escape(title),
        escape(title)
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

pub(super) fn plain(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{text}\n")).into_response()
}

pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

pub(super) fn failure(browser: bool, status: StatusCode, text: &str) -> Response {
    if browser {
        html(status, text, "")
    } else {
        plain(status, text)
    }
}

fn query_pairs(uri: &Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// A path inside a folder link: relative, without `.`/`..`/empty segments, so the
/// result always stays below the link's folder.
pub(super) fn inside(link: &Link, relative: Option<&str>) -> Option<String> {
    let Some(rel) = relative.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty()) else {
        return Some(link.path.clone());
    };
    if rel.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return None;
    }
    Some(format!("{}/{rel}", link.path.trim_end_matches('/')))
}

pub(super) struct Ask {
    pub browser: bool,
    pub raw: bool,
    pub password: Option<String>,
    pub relative: Option<String>,
    pub range: Option<String>,
    /// A line shown above a folder's listing (after an upload).
    pub notice: Option<String>,
}

impl Ask {
    fn new(headers: &HeaderMap, uri: &Uri, form: Option<&Bytes>, raw: bool) -> Self {
        // Form fields of a POST join the query's.
        let mut fields = query_pairs(uri);
        if let Some(body) = form {
            fields.extend(form_urlencoded::parse(body).into_owned());
        }
        let header_password = headers.get(PASSWORD_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            browser: !raw && wants_html(headers),
            raw,
            password: header_password.or_else(|| fields.get("password").cloned()),
            relative: fields.get("path").cloned(),
            range: headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned),
            notice: None,
        }
    }
}

/// The password a script sends with a request: the header, or `?password=`.
pub(super) fn script_password(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get(PASSWORD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_pairs(uri).remove("password"))
}

// GET and POST alike (a GET's body is empty); `RAW` for `/l/<token>/raw`.
async fn handle<const RAW: bool>(
    State(s): State<LinkState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    serve(&s, &token, Ask::new(&headers, &uri, Some(&body), RAW)).await
}

/// POST to a link's page: the upload form (multipart) or a password/sub-path form.
async fn post_page(
    State(s): State<LinkState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(boundary) = super::multipart::boundary(content_type) {
        return super::upload::form(&s, &token, &headers, &uri, body, &boundary).await;
    }
    match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(form) => serve(&s, &token, Ask::new(&headers, &uri, Some(&form), false)).await,
        Err(_) => failure(wants_html(&headers), StatusCode::PAYLOAD_TOO_LARGE, "That form is too large."),
    }
}

async fn put_named(
    State(s): State<LinkState>,
    Path((token, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    super::upload::put(&s, &token, &name, &headers, &uri, body).await
}

async fn put_raw_name(
    State(s): State<LinkState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    super::upload::put(&s, &token, "raw", &headers, &uri, body).await
}

pub(super) fn password_form(token: &LinkToken, wrong: bool) -> Response {
    let note = if wrong { "<p>That password is not right.</p>" } else { "" };
    let body = format!(
        "{note}<form method=\"post\" action=\"{}\"><input type=\"password\" name=\"password\" autofocus> \
         <button type=\"submit\">Open</button></form>",
        url_path(token)
    );
    html(if wrong { StatusCode::UNAUTHORIZED } else { StatusCode::OK }, "This link needs a password", &body)
}

/// The link behind `token_text`, or the page that says why there is none (404 for
/// unknown and revoked, 410 for expired).
pub(super) async fn find_link(s: &LinkState, token_text: &str, browser: bool) -> Result<(LinkToken, Link), Response> {
    let Some(token) = parse_token(token_text) else {
        return Err(failure(browser, StatusCode::NOT_FOUND, "This link does not exist."));
    };
    match lookup(&s.dp, token).await {
        Ok(Lookup::Found(link)) => Ok((token, link)),
        Ok(Lookup::Missing) => Err(failure(browser, StatusCode::NOT_FOUND, "This link does not exist.")),
        Ok(Lookup::Expired) => Err(failure(browser, StatusCode::GONE, "This link has expired.")),
        Err(e) => {
            tracing::warn!(error = %e, "link lookup failed");
            Err(failure(browser, StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment."))
        }
    }
}

/// 429 with `Retry-After` while a password link is blocked after wrong passwords.
pub(super) fn blocked(s: &LinkState, token: &LinkToken, link: &Link, browser: bool) -> Option<Response> {
    let wait = s.guard.blocked(token).filter(|_| link.password_hash.is_some())?;
    let mut r = failure(browser, StatusCode::TOO_MANY_REQUESTS, "Too many wrong passwords; try later.");
    if let Ok(v) = wait.to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Some(r)
}

/// Lets a request through a link's password: None when it may go on, else the refusal
/// (429 while blocked; 401, or the password form for a browser, when the password is
/// missing or wrong — a wrong one counts towards the block).
pub(super) async fn unlock(
    s: &LinkState,
    token: &LinkToken,
    link: &Link,
    given: Option<&str>,
    browser: bool,
) -> Option<Response> {
    // No password: nothing to unlock.
    link.password_hash.as_ref()?;
    if let Some(r) = blocked(s, token, link, browser) {
        return Some(r);
    }
    let Some(given) = given.map(str::to_owned) else {
        // Asking without a password is not a wrong guess.
        if browser {
            return Some(password_form(token, false));
        }
        return Some(plain(StatusCode::UNAUTHORIZED, "This link needs a password."));
    };
    let check = link.clone();
    let right = tokio::task::spawn_blocking(move || verify_link_password(&check, &given)).await.unwrap_or(false);
    if right {
        return None;
    }
    s.guard.failed(token);
    if browser {
        return Some(password_form(token, true));
    }
    Some(plain(StatusCode::UNAUTHORIZED, "This link needs a password."))
}

async fn serve(s: &LinkState, token_text: &str, ask: Ask) -> Response {
    let (token, link) = match find_link(s, token_text, ask.browser).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = unlock(s, &token, &link, ask.password.as_deref(), ask.browser).await {
        return refusal;
    }
    render(s, &token, &link, &ask).await
}

/// The page or bytes `ask` wants from an unlocked link.
pub(super) async fn render(s: &LinkState, token: &LinkToken, link: &Link, ask: &Ask) -> Response {
    let Some(path) = inside(link, ask.relative.as_deref()) else {
        return failure(ask.browser, StatusCode::NOT_FOUND, "Not found.");
    };
    match content(s, token, link, &path, ask).await {
        Ok(r) => r,
        Err(RouterError::NotFound(_)) | Err(RouterError::WrongKind(_)) => {
            failure(ask.browser, StatusCode::NOT_FOUND, "Not found.")
        }
        Err(e) => {
            tracing::warn!(error = %e, "link content failed");
            failure(ask.browser, StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment.")
        }
    }
}

pub(super) fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Hidden fields that carry the password and sub-path on to the next form.
pub(super) fn carried(ask: &Ask, relative: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(p) = &ask.password {
        out += &format!("<input type=\"hidden\" name=\"password\" value=\"{}\">", escape(p));
    }
    if let Some(r) = relative {
        out += &format!("<input type=\"hidden\" name=\"path\" value=\"{}\">", escape(r));
    }
    out
}

async fn content(
    s: &LinkState,
    token: &LinkToken,
    link: &Link,
    path: &str,
    ask: &Ask,
) -> Result<Response, RouterError> {
    let entry = ops::stat(&s.dp, &link.owner, path).await?;
    let relative = path.strip_prefix(link.path.as_str()).map(|r| r.trim_start_matches('/')).filter(|r| !r.is_empty());
    match &entry.kind {
        EntryKind::Folder => {
            let page = ops::list(&s.dp, &link.owner, path, None, 1000).await?;
            if ask.raw {
                let names: Vec<String> = page
                    .entries
                    .iter()
                    .map(|e| format!("{}{}", name_of(&e.path), if e.is_folder() { "/" } else { "" }))
                    .collect();
                return Ok(plain(StatusCode::OK, &names.join("\n")));
            }
            let mut items = String::new();
            for e in &page.entries {
                let rel = match relative {
                    Some(r) => format!("{r}/{}", name_of(&e.path)),
                    None => name_of(&e.path).to_owned(),
                };
                let (action, label) = if e.is_folder() {
                    (url_path(token), format!("{}/", name_of(&e.path)))
                } else {
                    (format!("{}/raw", url_path(token)), name_of(&e.path).to_owned())
                };
                let size = e.file().map(|f| format!(" · {}", human(f.size))).unwrap_or_default();
                items += &format!(
                    "<li><form method=\"post\" action=\"{action}\" style=\"display:inline\">{}\
                     <button type=\"submit\">{}</button></form>{size}</li>",
                    carried(ask, Some(&rel)),
                    escape(&label)
                );
            }
            let notice =
                ask.notice.as_deref().map(|n| format!("<p id=\"notice\">{}</p>", escape(n))).unwrap_or_default();
            let upload = if link.permission == LinkPermission::Edit {
                super::upload::form_html(token, &carried(ask, relative))
            } else {
                String::new()
            };
            Ok(html(StatusCode::OK, name_of(path), &format!("{notice}<ul>{items}</ul>{upload}")))
        }
        EntryKind::File(f) => {
            if ask.browser {
                let body = format!(
                    "<p>{}</p><form method=\"post\" action=\"{}/raw\">{}<button type=\"submit\" id=\"download\">Download</button></form>",
                    human(f.size),
                    url_path(token),
                    carried(ask, relative)
                );
                return Ok(html(StatusCode::OK, name_of(path), &body));
            }
            bytes(s, link, path, ask).await
        }
    }
}

fn human(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", units(bytes))
}

/// "1.5 MiB"-style sizes for the page.
fn units(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`: Ok(None) for no range,
/// Err(()) for one that cannot be served (416).
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.map(str::trim) else { return Ok(None) };
    let spec = spec.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().map_err(|_| ())?, size),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| ())?, b.parse().map_err(|_| ())?);
            (a, b.saturating_add(1).min(size))
        }
    };
    if start >= end || start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn bytes(s: &LinkState, link: &Link, path: &str, ask: &Ask) -> Result<Response, RouterError> {
    let file = download::resolve(&s.dp, &link.owner, path, None).await?;
    let size = file.size;
    let range = match parse_range(ask.range.as_deref(), size) {
        Ok(r) => r,
        Err(()) => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "That range is outside the file.");
            if let Ok(v) = format!("bytes */{size}").parse() {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let name = name_of(path).replace(['"', '\\', '\r', '\n'], "_");
    let (status, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, b - a),
        None => (StatusCode::OK, size),
    };
    let stream = download::stream_file(s.dp.clone(), file, range).map(|r| r.map_err(std::io::Error::other));
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, header::HeaderValue::from_static("bytes"));
    if let Ok(v) = len.to_string().parse() {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some((a, b)) = range {
        if let Ok(v) = format!("bytes {a}-{}/{size}", b - 1).parse() {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_http_says() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Err(()));
        assert_eq!(parse_range(Some("items=0-1"), 10), Err(()));
    }

    #[test]
    fn folder_links_never_reach_outside_their_folder() {
        let link = Link {
            token: [0; 32],
            owner: "o".into(),
            path: "/share".into(),
            permission: tessera_meta::model::LinkPermission::View,
            password_hash: None,
            expires_at_ms: None,
            created_at_ms: 0,
        };
        assert_eq!(inside(&link, None).as_deref(), Some("/share"));
        assert_eq!(inside(&link, Some("a/b.txt")).as_deref(), Some("/share/a/b.txt"));
        assert_eq!(inside(&link, Some("../secret")), None);
        assert_eq!(inside(&link, Some("a//b")), None);
        assert_eq!(inside(&link, Some("./a")), None);
    }
}
