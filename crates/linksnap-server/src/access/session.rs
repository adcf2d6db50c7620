//! Who is asking: a bearer token, the local CLI, or a signed-in browser (session cookie).
//! Browsers are held to CSRF rules: every request that changes something carries the
//! session's CSRF token (form field `csrf` or header `x-csrf-token`), and a cross-origin
//! `Origin` is refused.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use linksnap_store::{Token, User};

use crate::error::ApiError;
use crate::net::conn::ConnInfo;
use crate::state::AppState;

/// The session cookie (HttpOnly, SameSite=Lax).
pub const SESSION_COOKIE: &str = "linksnap_session";
/// A random value set before sign-in, echoed by the login form (double submit).
pub const PRELOGIN_COOKIE: &str = "linksnap_prelogin";
/// The chosen UI language.
pub const LANG_COOKIE: &str = "linksnap_lang";

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The data directory's socket, this server's user.
    Local,
    Token(Token),
    Session {
        user: User,
        csrf: String,
        secret: String,
    },
}

impl Principal {
    /// The user whose tokens and data this principal acts on: `None` for the operator (the
    /// local CLI, or a token made on the command line for no user).
    pub fn acting_user(&self) -> Option<i64> {
        match self {
            Self::Local => None,
            Self::Token(t) => t.user_id,
            Self::Session { user, .. } => Some(user.id),
        }
    }

    /// The signed-in user, for pages.
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::Session { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// A cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: i64,
    http_only: bool,
    secure: bool,
) -> String {
    format!(
        "{name}={value}; Path=/; Max-Age={max_age_secs}; SameSite=Lax{}{}",
        if http_only { "; HttpOnly" } else { "" },
        if secure { "; Secure" } else { "" }
    )
}

/// Equality that takes as long whatever the inputs share.
pub fn same_secret(a: &str, b: &str) -> bool {
    blake3::hash(a.as_bytes()) == blake3::hash(b.as_bytes())
}

/// What identifies a request, read off it before any await (a request is not `Sync`).
struct Credentials {
    local: bool,
    bearer: Option<String>,
    session: Option<String>,
}

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case, RFC 9110 §11.1).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

fn credentials(req: &Request) -> Credentials {
    let headers = req.headers();
    Credentials {
        local: req
            .extensions()
            .get::<ConnInfo>()
            .is_some_and(|c| c.0.local),
        bearer: bearer(headers).map(str::to_owned),
        session: cookie(headers, SESSION_COOKIE).map(str::to_owned),
    }
}

async fn identify(state: &AppState, c: Credentials) -> Result<Option<Principal>, ApiError> {
    if c.local {
        return Ok(Some(Principal::Local));
    }
    if let Some(token) = c.bearer {
        return Ok(state
            .accounts
            .verify_token(&token)
            .await?
            .map(Principal::Token));
    }
    if let Some(secret) = c.session
        && let Some((user, csrf)) = state.accounts.session(&secret).await?
    {
        return Ok(Some(Principal::Session { user, csrf, secret }));
    }
    Ok(None)
}

fn changes_something(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks a browser request that changes something: same origin, and the session's CSRF
/// token in the `x-csrf-token` header or the form's `csrf` field. Returns the request
/// (its form body read and put back).
pub(crate) async fn check_csrf(
    req: Request,
    expected: &str,
    body_limit: usize,
) -> Result<Request, ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, "csrf", m.to_owned());
    if !changes_something(req.method()) {
        return Ok(req);
    }
    let headers = req.headers();
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return Err(forbidden("a request from another site was refused"));
        }
    }
    if headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| same_secret(v, expected))
    {
        return Ok(req);
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, body_limit).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the form is too large",
            )
        })?;
        let ok =
            form_urlencoded::parse(&bytes).any(|(k, v)| k == "csrf" && same_secret(&v, expected));
        if ok {
            return Ok(Request::from_parts(parts, Body::from(bytes)));
        }
    }
    Err(forbidden(
        "the form is stale or came from elsewhere (CSRF check): reload the page and try again",
    ))
}

/// The library a principal works on, as a request extension (see [`Scoped`]).
#[derive(Debug, Clone)]
pub struct Lib(pub std::sync::Arc<linksnap_store::Library>);

/// The principal's library: a user's own; for the local CLI and tokens that act for no
/// user, the data directory's own.
async fn library_of(state: &AppState, who: &Principal) -> Result<Lib, ApiError> {
    let lib = match who {
        Principal::Local | Principal::Token(Token { user_id: None, .. }) => {
            return Ok(Lib(state.libs.main().clone()));
        }
        Principal::Token(Token {
            user_id: Some(id), ..
        }) => state.libs.of_user_id(*id).await,
        Principal::Session { user, .. } => state.libs.of_user(user).await,
    };
    lib.map(Lib).map_err(|e| {
        use crate::error::MaybeFault as _;
        if let Some(fault) = e.fault() {
            return ApiError::fault(fault, &e);
        }
        tracing::error!(error = %e, "opening a user's library");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; see its log",
        )
    })
}

/// The application state scoped to the request's principal: `library` is theirs. Every
/// handler behind sign-in takes this instead of `State`, so none can reach another user's
/// links; outside the signed-in routes it refuses to exist (500), never falling back.
pub struct Scoped(pub AppState);

impl axum::extract::FromRequestParts<AppState> for Scoped {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let Some(Lib(library)) = parts.extensions.get::<Lib>().cloned() else {
            tracing::error!("a scoped handler ran without a principal's library");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; see its log",
            ));
        };
        let mut scoped = state.clone();
        scoped.library = library;
        Ok(Self(scoped))
    }
}

/// The scope a token needs for a request: reading for safe methods, `share` for share
/// links, `admin` for network operations, `write` for every other change.
fn needed_scope(method: &Method, path: &str) -> linksnap_store::Scope {
    use linksnap_store::Scope;
    if path.starts_with("/api/v1/net/") || path == "/api/v1/net" {
        return Scope::Admin;
    }
    if !changes_something(method) {
        return Scope::Read;
    }
    if path.starts_with("/api/v1/shares/")
        || (path.starts_with("/api/v1/links/") && path.ends_with("/shares"))
        || path.contains("/shares/")
        || path.ends_with("/share")
    {
        return Scope::Share;
    }
    Scope::Write
}

/// 403 `insufficient_scope` (RFC 6750 §3.1) when a token lacks what the request needs.
fn check_scope(req: &Request, who: &Principal) -> Result<(), ApiError> {
    let Principal::Token(token) = who else {
        return Ok(());
    };
    let needed = needed_scope(req.method(), req.uri().path());
    if token.scopes.allows(needed) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "this token may {}; this request needs the `{}` scope",
            token.scopes.names().join(", "),
            needed.name()
        ),
    ))
}

/// For the API and snapshots: a principal, or 401.
pub(crate) async fn api_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(who) = identify(&state, credentials(&req)).await? else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send Authorization: Bearer TOKEN (linksnap token create NAME)",
        ));
    };
    check_scope(&req, &who)?;
    if let Principal::Session { csrf, .. } = &who {
        let csrf = csrf.clone();
        req = check_csrf(req, &csrf, state.body_limit).await?;
    }
    let lib = library_of(&state, &who).await?;
    req.extensions_mut().insert(lib);
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

/// For the web UI: a principal, or off to the sign-in page.
pub(crate) async fn web_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let who = match identify(&state, credentials(&req)).await {
        Ok(Some(w)) => w,
        Ok(None) => {
            if changes_something(req.method()) {
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "sign in first")
                    .into_response();
            }
            let next = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let target = format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            return Redirect::to(&target).into_response();
        }
        Err(e) => return e.into_response(),
    };
    if let Err(e) = check_scope(&req, &who) {
        return e.into_response();
    }
    if let Principal::Session { csrf, .. } = &who {
        let csrf = csrf.clone();
        req = match check_csrf(req, &csrf, state.body_limit).await {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
    }
    let lib = match library_of(&state, &who).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(lib);
    req.extensions_mut().insert(who);
    next.run(req).await
}
