//! Serving snapshots, the untrusted content of this server. A snapshot is never a
//! top-level document of its own: a browser that navigates to one (`Sec-Fetch-Dest:
//! document`) gets a small page that frames it, and the frame (`Sec-Fetch-Dest: iframe`)
//! gets the snapshot under [`snapshot_csp`]: a sandbox without same-origin, popups or top
//! navigation, no fetches, no form submissions. The framing page's `frame-src 'self'`
//! stops the frame from navigating anywhere else (script, meta refresh, links). A request
//! that would load a snapshot as a script, style sheet or worker is refused, and captured
//! originals that are not documents, images or PDF are served as attachments.

use askama::Template;
use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::session::Scoped;
use crate::error::ApiError;
use crate::state::AppState;

/// The `Content-Security-Policy` of every snapshot. `sandbox` without `allow-same-origin`
/// gives the page an opaque origin: its scripts run, but cannot read this origin's
/// cookies or storage; without `allow-popups` and `allow-top-navigation` they open no
/// window and cannot move the page that frames them. The fetch directives allow only what
/// a snapshot is made of (inline and `data:`/`blob:`), so nothing reaches the network.
/// `frame_ancestors`: who may frame it (`'self'`, and the app's origins on a snapshot
/// origin).
#[must_use]
pub fn snapshot_csp(frame_ancestors: &str) -> String {
    format!(
        "sandbox allow-scripts; default-src 'none'; \
script-src 'unsafe-inline' 'unsafe-eval' data: blob:; style-src 'unsafe-inline' data: blob:; \
img-src data: blob:; font-src data: blob:; media-src data: blob:; frame-src data: blob:; \
worker-src data: blob:; connect-src 'none'; form-action 'none'; base-uri 'none'; \
frame-ancestors {frame_ancestors}"
    )
}

/// The framing page's policy: no script at all, only its own style, frames only from
/// this origin (which is what keeps the framed snapshot from navigating away).
pub const FRAME_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
frame-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// Kinds of request a snapshot is never the answer to.
const REFUSED_DESTINATIONS: &[&str] = &[
    "script",
    "style",
    "worker",
    "sharedworker",
    "serviceworker",
    "audioworklet",
    "paintworklet",
    "xslt",
    "manifest",
    "object",
    "embed",
];

#[derive(Template)]
#[template(path = "snapshot_frame.html")]
struct FramePage<'a> {
    title: &'a str,
    src: &'a str,
}

/// How a snapshot request is answered.
pub(crate) struct View<'a> {
    /// The framing page's title.
    pub title: &'a str,
    /// `frame-ancestors` of the snapshot itself.
    pub frame_ancestors: &'a str,
    /// A public share: not for search engines.
    pub public: bool,
}

/// The answer to a request for a snapshot: the framing page, a refusal, or the snapshot.
pub(crate) fn answer(
    headers: &HeaderMap,
    uri: &Uri,
    view: &View<'_>,
    content: impl FnOnce() -> (bytes::Bytes, String),
) -> Response {
    let dest = headers
        .get("sec-fetch-dest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut r = if dest == "document" {
        frame_page(view.title, uri)
    } else if REFUSED_DESTINATIONS.contains(&dest.as_str()) {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_resource",
            format!("a snapshot is not loaded as a {dest}"),
        )
        .into_response()
    } else {
        let (bytes, media_type) = content();
        untrusted(bytes, &media_type, view.frame_ancestors)
    };
    if view.public {
        r.headers_mut().insert(
            "x-robots-tag",
            HeaderValue::from_static("noindex, nofollow, noarchive"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

fn frame_page(title: &str, uri: &Uri) -> Response {
    let src = uri.path_and_query().map_or("/", |p| p.as_str());
    let page = FramePage {
        title: if title.trim().is_empty() {
            "Snapshot"
        } else {
            title
        },
        src,
    };
    match page.render() {
        Ok(html) => {
            let headers = headers_of(
                HeaderValue::from_static("text/html; charset=utf-8"),
                HeaderValue::from_static(FRAME_PAGE_CSP),
                "private, no-cache",
            );
            (headers, html).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering the snapshot frame failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Whether a captured original of this type is shown in place (documents, images, PDF,
/// plain text); anything else (scripts, styles, data) is a download.
fn shown_inline(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/html" | "application/xhtml+xml" | "application/pdf" | "text/plain"
    ) || essence.starts_with("image/")
}

/// The headers of both answers here (the framing page and the snapshot): their type and
/// policy, no sniffing, no referrer, how long a browser keeps them.
fn headers_of(content_type: HeaderValue, csp: HeaderValue, cache: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers
}

/// A snapshot's bytes with the headers every untrusted page gets.
pub(crate) fn untrusted(bytes: bytes::Bytes, media_type: &str, frame_ancestors: &str) -> Response {
    let mut headers = headers_of(
        HeaderValue::from_str(media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        HeaderValue::from_str(&snapshot_csp(frame_ancestors))
            .unwrap_or(HeaderValue::from_static("sandbox; default-src 'none'")),
        "private, max-age=3600",
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !shown_inline(media_type) {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"original\""),
        );
    }
    (headers, bytes).into_response()
}

/// `latest`, or a version number (`3` or `v3`).
fn parse_version(v: &str) -> Result<Option<i64>, ApiError> {
    match v {
        "latest" => Ok(None),
        v => v
            .trim_start_matches('v')
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such version")),
    }
}

/// `/snapshots/{id}/{version}`: a signed-in user's snapshot (see the module's rules), or,
/// with a snapshot origin, a redirect to a signed address there.
pub(crate) async fn snapshot(
    Scoped(s): Scoped,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let id = id
        .parse::<i64>()
        .map(linksnap_store::LinkId)
        .map_err(|_| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such link"))?;
    let v = parse_version(&version)?;
    let link = s.library.get(id).await?;
    if let Some(origin) = &s.snapshot_origin {
        // Never on the app's origin: off to a signed address on the snapshot origin.
        let name = library_name(&s);
        let v = v.map_or_else(|| "latest".to_owned(), |v| v.to_string());
        s.library
            .versions(id)
            .await?
            .first()
            .ok_or(linksnap_store::StoreError::NoVersion {
                link: id,
                version: 0,
            })?;
        return Ok((
            StatusCode::SEE_OTHER,
            [(header::LOCATION, origin.url(&name, id.0, &v))],
        )
            .into_response());
    }
    let (bytes, media_type) = s.library.render(id, v).await?;
    let view = View {
        title: &link.title,
        frame_ancestors: "'self'",
        public: false,
    };
    Ok(answer(&headers, &uri, &view, || (bytes, media_type)))
}

/// `/s/{secret}`: a public share link, to anyone (see the module's rules); 404 once
/// revoked. With a snapshot origin, a redirect to a signed address there: a share is never
/// served on the app's origin then.
pub(crate) async fn shared_snapshot(
    State(s): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such share link (revoked?)",
        )
    };
    // Share links of every user's library: the secret names one of them.
    let mut found = None;
    for library in s.libs.all().await {
        if let Some(share) = library.resolve_share(&secret).await? {
            found = Some((library, share));
            break;
        }
    }
    let (library, (link, version)) = found.ok_or_else(gone)?;
    if let Some(origin) = &s.snapshot_origin {
        let mut scoped = s.clone();
        scoped.library = library.clone();
        let name = library_name(&scoped);
        let v = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
        let mut r = (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, origin.url(&name, link.0, &v))],
        )
            .into_response();
        r.headers_mut().insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        r.headers_mut().insert(
            "x-robots-tag",
            HeaderValue::from_static("noindex, nofollow, noarchive"),
        );
        return Ok(r);
    }
    let title = library.get(link).await.map_err(|_| gone())?.title;
    let (bytes, media_type) = library.render(link, version).await.map_err(|_| gone())?;
    let view = View {
        title: &title,
        frame_ancestors: "'self'",
        public: true,
    };
    Ok(answer(&headers, &uri, &view, || (bytes, media_type)))
}

/// The name of a library in snapshot addresses: `main`, or `u` + the user's id.
#[must_use]
pub fn library_name(s: &AppState) -> String {
    let main = &s.libs.main().data_dir().path;
    s.library
        .data_dir()
        .path
        .strip_prefix(main)
        .ok()
        .and_then(|rel| rel.to_str())
        .and_then(|rel| rel.strip_prefix("users/"))
        .map_or_else(|| "main".to_owned(), |id| format!("u{id}"))
}

#[derive(Deserialize)]
pub(crate) struct Signed {
    e: i64,
    s: String,
}

/// `/v/{lib}/{id}/{version}` on the snapshot origin: the snapshot, if the signature holds.
pub(crate) async fn signed_snapshot(
    State(st): State<AppState>,
    Path((lib, id, version)): Path<(String, i64, String)>,
    Query(q): Query<Signed>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such snapshot, or the address expired",
        )
    };
    let origin = st.snapshot_origin.as_ref().ok_or_else(gone)?;
    if !origin.valid(&lib, id, &version, q.e, &q.s) {
        return Err(gone());
    }
    let library = match lib.as_str() {
        "main" => st.libs.main().clone(),
        u => {
            let uid: i64 = u
                .strip_prefix('u')
                .and_then(|n| n.parse().ok())
                .ok_or_else(gone)?;
            st.libs.of_user_id(uid).await.map_err(|_| gone())?
        }
    };
    let v = match version.as_str() {
        "latest" => None,
        v => Some(v.parse::<i64>().map_err(|_| gone())?),
    };
    let id = linksnap_store::LinkId(id);
    let title = library.get(id).await.map_err(|_| gone())?.title;
    let (bytes, media_type) = library.render(id, v).await.map_err(|_| gone())?;
    // Framed by its own framing page, and by the app's link pages.
    let mut ancestors = String::from("'self'");
    for o in st.names.app_origins() {
        ancestors.push(' ');
        ancestors.push_str(o);
    }
    let view = View {
        title: &title,
        frame_ancestors: &ancestors,
        public: true,
    };
    Ok(answer(&headers, &uri, &view, || (bytes, media_type)))
}
