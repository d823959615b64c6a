//! Uploads through edit links to a folder, over plain HTTP:
//!
//! * `PUT /l/<token>/<name>` with the file as the raw body (curl -T); `name` is
//!   percent-decoded and may name subfolders (`a/b.txt`, created as needed); `.`,
//!   `..` and empty segments are refused (400). 201 for a new file, 200 for a new
//!   version, with `{"name", "version", "size", "sha256"}`.
//! * The upload form on the folder's page: a multipart POST to `/l/<token>` (fields
//!   `password` and `path` before the `file` parts, as the page writes them; read by
//!   [`multer`] through [`super::multipart`]); the files go into the folder shown,
//!   then the browser is sent back to the listing. A malformed form is 400.
//!
//! Passwords and their rate limit are those of reads; a view link refuses writes with
//! 403, after the password. The body streams through the normal upload path
//! (chunking, dedup, the owner's quota), never held whole, up to `[links]
//! max_upload_bytes` (413 beyond). A name that exists gets a new version (last writer
//! wins; the earlier versions stay restorable by the owner). Versions are recorded as
//! written by the link's owner from device `link`.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use tessera_meta::model::links::{Link, LinkPermission};
use tessera_meta::model::types::LinkToken;
use tessera_meta::model::versions::ConflictPolicy;
use tessera_meta::model::EntryKind;

use super::http::{
    blocked, failure, find_link, inside, plain, render, script_password, unlock, wants_html, Ask, LinkState,
};
use super::multipart::{self, Multipart, MultipartError};
use super::url_path;
use crate::error::RouterError;
use crate::ops;
use crate::upload::{self, UploadReport, UploadRequest};

/// The device versions written through links are recorded with.
pub const LINK_DEVICE: &str = "link";
/// Most bytes of a text field of the upload form.
const MAX_FIELD_BYTES: usize = 4096;

/// The upload form of a folder page (edit links); `carried` holds the hidden
/// password and sub-path fields, which come first so the server reads them before
/// the files.
pub(super) fn form_html(token: &LinkToken, carried: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" enctype=\"multipart/form-data\" id=\"upload-form\">{carried}\
         <input type=\"file\" name=\"file\" id=\"file\" multiple required> \
         <button type=\"submit\" id=\"upload\">Upload</button></form>",
        url_path(token)
    )
}

/// An edit link whose path is a folder, or the refusal.
async fn writable_folder(s: &LinkState, link: &Link, browser: bool) -> Result<(), Response> {
    if link.permission != LinkPermission::Edit {
        return Err(failure(browser, StatusCode::FORBIDDEN, "This link does not accept uploads."));
    }
    match ops::stat(&s.dp, &link.owner, &link.path).await {
        Ok(entry) if matches!(entry.kind, EntryKind::Folder) => Ok(()),
        Ok(_) => Err(failure(browser, StatusCode::FORBIDDEN, "Uploads go to links of folders.")),
        Err(RouterError::NotFound(_)) => Err(failure(browser, StatusCode::NOT_FOUND, "Not found.")),
        Err(e) => {
            tracing::warn!(error = %e, "link upload: stat failed");
            Err(failure(browser, StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment."))
        }
    }
}

/// Where `relative` lands in the link's folder: None for names that would leave it
/// (or name the folder itself).
fn target(link: &Link, relative: &str) -> Option<String> {
    if relative.trim_matches('/').is_empty() {
        return None;
    }
    inside(link, Some(relative))
}

/// `body` with its errors as router errors, ending in `TooLarge` past `max` bytes.
fn limited<S, E>(body: S, max: u64) -> impl Stream<Item = Result<Bytes, RouterError>> + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    use futures::StreamExt;
    Box::pin(futures::stream::unfold((body, 0u64, false), move |(mut body, total, failed)| async move {
        if failed {
            return None;
        }
        match body.next().await {
            Some(Ok(piece)) => {
                let total = total.saturating_add(piece.len() as u64);
                if total > max {
                    let e = RouterError::TooLarge(format!("uploads through links are limited to {max} bytes"));
                    return Some((Err(e), (body, total, true)));
                }
                Some((Ok(piece), (body, total, false)))
            }
            Some(Err(e)) => {
                let e = RouterError::InvalidArgument(format!("the upload broke off: {e}"));
                Some((Err(e), (body, total, true)))
            }
            None => None,
        }
    }))
}

async fn store<S>(s: &LinkState, link: &Link, path: String, body: S) -> Result<UploadReport, RouterError>
where
    S: Stream<Item = Result<Bytes, RouterError>> + Unpin,
{
    let req = UploadRequest {
        user_id: link.owner.clone(),
        created_by: link.owner.clone(),
        path,
        device_id: LINK_DEVICE.into(),
        base_version: None,
        policy: ConflictPolicy::LastWriterWins,
        meta: Default::default(),
    };
    upload::upload(&s.dp, &req, body).await
}

/// A file part's data for the upload path: past the link's limit `TooLarge`, and a
/// form broken off or malformed inside the file `InvalidArgument`.
fn file_data(part: multer::Field<'static>, max: u64) -> impl Stream<Item = Result<Bytes, RouterError>> + Unpin {
    use futures::StreamExt;
    multipart::data(part).map(move |piece| {
        piece.map_err(|e| match e {
            MultipartError::TooLarge(_) => {
                RouterError::TooLarge(format!("uploads through links are limited to {max} bytes"))
            }
            e => RouterError::InvalidArgument(e.to_string()),
        })
    })
}

/// What an uploader is told when the write fails; never the owner's paths.
fn upload_failure(browser: bool, e: RouterError) -> Response {
    let (status, text) = match &e {
        RouterError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "That file is too large for this link."),
        RouterError::QuotaExceeded(_) => (StatusCode::INSUFFICIENT_STORAGE, "There is no room left for uploads here."),
        RouterError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "That file name or upload is not valid."),
        RouterError::WrongKind(_) | RouterError::AlreadyExists(_) | RouterError::Conflict { .. } => {
            (StatusCode::CONFLICT, "Something of that name is in the way.")
        }
        RouterError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found."),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "The upload failed; try again in a moment."),
    };
    if status.is_server_error() {
        tracing::warn!(error = %e, "link upload failed");
    }
    failure(browser, status, text)
}

/// `PUT /l/<token>/<name>`.
pub(super) async fn put(
    s: &LinkState,
    token_text: &str,
    name: &str,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Response {
    let (token, link) = match find_link(s, token_text, false).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = unlock(s, &token, &link, script_password(headers, uri).as_deref(), false).await {
        return refusal;
    }
    if let Err(refusal) = writable_folder(s, &link, false).await {
        return refusal;
    }
    let Some(path) = target(&link, name) else {
        return plain(StatusCode::BAD_REQUEST, "That file name is not valid here.");
    };
    let max = s.config.max_upload_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|len: u64| len > max) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "That file is too large for this link.");
    }
    match store(s, &link, path, limited(body.into_data_stream(), max)).await {
        Ok(report) => {
            let status = if report.version == 1 { StatusCode::CREATED } else { StatusCode::OK };
            let body = serde_json::json!({
                "name": name.trim_matches('/'),
                "version": report.version,
                "size": report.size,
                "sha256": report.content_sha256,
            });
            (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        Err(e) => upload_failure(false, e),
    }
}

/// The last segment of a browser-sent file name (some send a whole local path).
fn base_name(filename: &str) -> &str {
    filename.rsplit(['/', '\\']).next().unwrap_or(filename).trim()
}

/// The upload form's POST (multipart) to `/l/<token>`.
pub(super) async fn form(
    s: &LinkState,
    token_text: &str,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    boundary: &str,
) -> Response {
    let browser = wants_html(headers);
    let bad = |text: &str| failure(browser, StatusCode::BAD_REQUEST, text);
    let (token, link) = match find_link(s, token_text, browser).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = blocked(s, &token, &link, browser) {
        return refusal;
    }
    let max = s.config.max_upload_bytes;
    // Each part, a file above all, is cut off past the link's limit (413).
    let mut form = Multipart::new(body.into_data_stream(), boundary, max);
    let mut password = script_password(headers, uri);
    let mut relative: Option<String> = None;
    let mut checked = false;
    let mut stored = Vec::new();
    loop {
        let part = match form.next_part().await {
            Ok(Some(part)) => part,
            Ok(None) => break,
            Err(e) => return bad(&e.to_string()),
        };
        let field = part.name().unwrap_or_default().to_owned();
        let Some(filename) = part.file_name().map(str::to_owned) else {
            let value = match multipart::text(part, MAX_FIELD_BYTES).await {
                Ok(v) => v,
                Err(e) => return bad(&e.to_string()),
            };
            match field.as_str() {
                "password" if !checked => password = Some(value),
                "path" if !checked => relative = Some(value).filter(|r| !r.trim_matches('/').is_empty()),
                _ => {}
            }
            continue;
        };
        // The first file: the password and the link's permission decide, before any
        // byte is stored.
        if !checked {
            if let Some(refusal) = unlock(s, &token, &link, password.as_deref(), browser).await {
                return refusal;
            }
            if let Err(refusal) = writable_folder(s, &link, browser).await {
                return refusal;
            }
            if relative.as_deref().is_some_and(|r| inside(&link, Some(r)).is_none()) {
                return bad("That folder is not valid here.");
            }
            checked = true;
        }
        let name = base_name(&filename).to_owned();
        if name.is_empty() {
            // A file input left empty.
            if let Err(e) = multipart::skip(part).await {
                return bad(&e.to_string());
            }
            continue;
        }
        let rel = match &relative {
            Some(r) => format!("{}/{name}", r.trim_matches('/')),
            None => name.clone(),
        };
        let Some(path) = target(&link, &rel) else { return bad("That file name is not valid here.") };
        match store(s, &link, path, file_data(part, max)).await {
            Ok(_) => stored.push(name),
            Err(e) => return upload_failure(browser, e),
        }
    }
    if stored.is_empty() {
        return bad("Choose a file to upload.");
    }
    if link.password_hash.is_none() {
        // Back to the listing (303: the browser GETs it, so a reload does not upload again).
        let mut location = url_path(&token);
        if let Some(r) = &relative {
            location += &format!("?path={}", form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>());
        }
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)], "").into_response();
    }
    // A redirect would lose the password (it must not go into a URL): the listing
    // comes back as the answer to the form, with the password carried on.
    let ask = Ask {
        browser: true,
        raw: false,
        password,
        relative,
        range: None,
        notice: Some(format!("Uploaded {}.", stored.join(", "))),
    };
    render(s, &token, &link, &ask).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_folder() {
        let link = Link {
            token: [0; 32],
            owner: "o".into(),
            path: "/drop".into(),
            permission: LinkPermission::Edit,
            password_hash: None,
            expires_at_ms: None,
            created_at_ms: 0,
        };
        assert_eq!(target(&link, "a/b.txt").as_deref(), Some("/drop/a/b.txt"));
        assert_eq!(target(&link, "../x"), None);
        assert_eq!(target(&link, "a/../../x"), None);
        assert_eq!(target(&link, ""), None);
        assert_eq!(target(&link, "/"), None, "never the folder itself");
        assert_eq!(base_name("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(base_name("dir/notes.txt"), "notes.txt");
    }

    #[tokio::test]
    async fn a_body_past_the_limit_ends_in_too_large() {
        use futures::StreamExt;
        let body = || {
            futures::stream::iter([
                Ok::<_, std::convert::Infallible>(Bytes::from_static(b"12345")),
                Ok(Bytes::from_static(b"678")),
            ])
        };
        let within: Vec<_> = limited(body(), 8).collect().await;
        assert!(matches!(within[..], [Ok(_), Ok(_)]));
        let past: Vec<_> = limited(body(), 7).collect().await;
        assert!(matches!(past[..], [Ok(_), Err(RouterError::TooLarge(_))]), "{past:?}");
    }

    #[tokio::test]
    async fn a_form_file_past_the_limit_ends_in_too_large_and_a_cut_one_is_invalid() {
        use futures::StreamExt;
        let file = |data: &'static [u8], closed: bool| {
            let mut text = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n".to_vec();
            text.extend_from_slice(data);
            if closed {
                text.extend_from_slice(b"\r\n--b--\r\n");
            }
            futures::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(text))])
        };
        let pieces = |body, max| async move {
            let mut form = Multipart::new(body, "b", max);
            let part = form.next_part().await.unwrap().unwrap();
            file_data(part, max).collect::<Vec<_>>().await
        };
        let within = pieces(file(b"12345678", true), 8).await;
        assert!(within.iter().all(|p| p.is_ok()) && within.iter().flatten().map(|p| p.len()).sum::<usize>() == 8);
        let past = pieces(file(b"123456789", true), 8).await;
        assert!(matches!(past.last(), Some(Err(RouterError::TooLarge(_)))), "{past:?}");
        let cut = pieces(file(b"1234", false), 8).await;
        assert!(matches!(cut.last(), Some(Err(RouterError::InvalidArgument(_)))), "{cut:?}");
    }
}
