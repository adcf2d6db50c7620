//! The middleware every request passes, outermost first: the client guard (the real
//! client, bans, the request rate), then one gate for the Host check (421), the
//! request-body limits and budget and the headers every answer carries; with a snapshot
//! origin, the two origins kept apart. Each layer holds only what it reads (cloning the
//! whole `AppState` per request touches every shared counter in it from every core).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::json::rfc3339;
use crate::net::conn::{ConnInfo, Peer};

/// The app's own pages: only their own script and style, frames only from this origin
/// (the snapshot view, itself sandboxed), no plugins, not framable by other sites.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'self'";

/// The client a request is from (after trusted proxies), as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Resolves the client, refuses banned ones (403 `banned`) and answers 429 `rate_limited`
/// with `Retry-After` beyond the per-address rate. Requests over Unix sockets and
/// `/healthz` are not limited.
pub(crate) async fn client_guard(
    State(guard): State<Arc<crate::net::guard::Guard>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = match req.extensions().get::<ConnInfo>().map(|c| c.0.peer.clone()) {
        Some(Peer::Tcp(a)) => a.ip(),
        _ => return next.run(req).await,
    };
    if peer.is_loopback() && forwarded(req.headers()) && !guard.is_trusted(peer) {
        warn_untrusted_proxy(peer);
    }
    let client = guard.client_ip(peer, req.headers());
    req.extensions_mut().insert(ClientIp(client));
    if let Some(ban) = guard.banned(client) {
        guard.refused_banned.fetch_add(1, Ordering::Relaxed);
        let until = ban.expires_at.map_or_else(
            || "until lifted".to_owned(),
            |t| format!("until {}", rfc3339(t)),
        );
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "banned",
            format!("{client} is banned {until}"),
        )
        .into_response();
    }
    if req.uri().path() != "/healthz"
        && let Err(wait) = guard.check_rate(client)
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut res = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from {client}; try again in {secs} s"),
        )
        .into_response();
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return res;
    }
    next.run(req).await
}

/// `/metrics` in Prometheus' text format; who may read it is `metrics` in the config.
/// Once per process: a same-host proxy forwards for its clients, but is not trusted, so
/// they all count as that one loopback address (one client's failed sign-ins limit
/// everyone's).
fn warn_untrusted_proxy(peer: std::net::IpAddr) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "requests from {peer} carry forwarded-for headers, but {peer} is not a trusted proxy:              every client behind it counts as {peer} (rate limits, sign-in limits, bans);              start with --trusted-proxy {peer} if a proxy on this host serves linksnap"
        );
    }
}

/// Whether a request says it was forwarded for another client.
pub(crate) fn forwarded(headers: &axum::http::HeaderMap) -> bool {
    ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h))
}

/// What a request says of its body.
enum Declared {
    None,
    Length(u64),
    /// Chunked (or an HTTP/2 stream): any size.
    Unknown,
    Bad,
}

fn declared(req: &Request) -> Declared {
    let headers = req.headers();
    if let Some(v) = headers.get(header::CONTENT_LENGTH) {
        return match v.to_str().ok().and_then(|v| v.trim().parse().ok()) {
            Some(0) => Declared::None,
            Some(n) => Declared::Length(n),
            None => Declared::Bad,
        };
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        Declared::Unknown
    } else {
        Declared::None
    }
}

/// The body rules of a request: refused (413/400/503) before a byte is read, or let
/// through cut at its route's limit, holding its share of the body budget.
async fn admit_body(
    bodies: &crate::bodies::Bodies,
    req: Request,
) -> Result<(Request, Option<tokio::sync::OwnedSemaphorePermit>), Response> {
    let limit = bodies.limit_of(req.uri().path());
    let length = match declared(&req) {
        Declared::None => return Ok((req, None)),
        Declared::Length(n) if n > limit as u64 => {
            let which = if limit == bodies.upload_limit {
                "body_limit"
            } else {
                "form_limit"
            };
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is larger than this route takes ({limit} bytes, {which})"
                ),
            )
            .into_response());
        }
        Declared::Length(n) => n,
        Declared::Unknown => limit as u64,
        Declared::Bad => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Content-Length is not a number",
            )
            .into_response());
        }
    };
    let Some(permit) = bodies.reserve(length).await else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many large requests at once; try again shortly",
        );
        r.retry_after = Some(5);
        return Err(r.into_response());
    };
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    Ok((req, Some(permit)))
}

/// What [`gate`] holds: the server's names and the body limits.
pub struct Gate {
    pub names: Arc<crate::access::names::ServerNames>,
    pub bodies: Arc<crate::bodies::Bodies>,
}

/// One layer for the cheap checks every request gets (one layer, not three: each layer
/// costs every request a clone of its state and of the service below it): the Host
/// check (421), the body rules, and the headers every answer carries.
pub(crate) async fn gate(State(g): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    if let Some(refused) = check_host(&g.names, &req) {
        return refused;
    }
    let (req, permit) = match admit_body(&g.bodies, req).await {
        Ok(x) => x,
        Err(refused) => return refused,
    };
    let res = next.run(req).await;
    drop(permit);
    common_headers(res)
}

/// 421 for a TCP request to a name that is not this server's (see `names`).
fn check_host(names: &crate::access::names::ServerNames, req: &Request) -> Option<Response> {
    let over_tcp = req
        .extensions()
        .get::<ConnInfo>()
        .is_none_or(|c| matches!(c.0.peer, Peer::Tcp(_)));
    if !over_tcp {
        return None;
    }
    // HTTP/2 sends `:authority`, which hyper puts in the URI.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if host.is_some_and(|h| names.allows(h)) {
        return None;
    }
    tracing::warn!(host = ?host, "a request for a name this server does not have (421)");
    Some(
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            "this server does not answer to that name; its operator can add it with --public-name",
        )
        .into_response(),
    )
}

/// Keeps the two origins apart: on the snapshot origin only `/v/…` exists; on the app's,
/// `/v/…` does not.
pub(crate) async fn separate(
    State(origin): State<Arc<crate::access::snaporigin::SnapshotOrigin>>,
    req: Request,
    next: Next,
) -> Response {
    let snapshot_path = req.uri().path().starts_with("/v/");
    if origin.is_mine(req.headers()) != snapshot_path {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    }
    next.run(req).await
}

/// Headers every answer carries unless it set its own: opening an original from a page
/// tells that site nothing of this server (`same-origin`: no referrer leaves this origin;
/// `no-referrer` would also make browsers send `Origin: null` on this origin's own forms,
/// which the CSRF check rightly refuses); no type sniffing.
fn common_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    res
}

/// Pages may frame the snapshot origin (the link page's snapshot frame) when there is one.
pub(crate) async fn page_csp(
    State(origin): State<Arc<crate::access::snaporigin::SnapshotOrigin>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut res = next.run(req).await;
    if res
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        == Some(PAGE_CSP)
    {
        let csp = PAGE_CSP.replace(
            "frame-src 'self'",
            &format!("frame-src 'self' {}", origin.origin()),
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}
