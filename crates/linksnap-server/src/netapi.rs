//! The operator's network routes: `/api/v1/net/stats`, bans, `/metrics`, and the HTTP side
//! of the address rules (the real client behind a trusted proxy, bans, the request rate).

use std::sync::atomic::Ordering;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::session::Principal;
use crate::config::MetricsAccess;
use crate::error::{ApiError, ErrorJson};
use crate::json::rfc3339;
use crate::net::conn::{ConnInfo, Peer};
use crate::net::netstat::NetStats;
use crate::state::AppState;

/// Whether `who` operates the server: the local CLI, an administrator's session, a token
/// made on the command line for no user, or a token of an administrator.
pub(crate) async fn is_operator(s: &AppState, who: &Principal) -> bool {
    match who {
        Principal::Token(t) if !t.scopes.allows(linksnap_store::Scope::Admin) => false,
        Principal::Local | Principal::Token(linksnap_store::Token { user_id: None, .. }) => true,
        Principal::Token(linksnap_store::Token {
            user_id: Some(id), ..
        }) => s
            .accounts
            .user_by_id(*id)
            .await
            .ok()
            .flatten()
            .is_some_and(|u| u.is_admin),
        Principal::Session { user, .. } => user.is_admin,
    }
}

/// Operators only (see [`is_operator`]), else 403.
async fn require_admin(s: &AppState, who: &Principal) -> Result<(), ApiError> {
    if is_operator(s, who).await {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an administrator may see or change this",
        ))
    }
}

pub(crate) fn stats(s: &AppState) -> NetStats {
    crate::net::netstat::collect(&s.conns, &s.guard, &s.listeners, s.max_connections)
}

#[utoipa::path(get, path = "/api/v1/net/stats", tag = "net",
    responses((status = 200, body = NetStats), (status = 401, body = ErrorJson), (status = 403, body = ErrorJson)))]
pub(crate) async fn net_stats(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<NetStats>, ApiError> {
    require_admin(&s, &who).await?;
    Ok(Json(stats(&s)))
}

/// A ban as listed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BanJson {
    /// A CIDR range (`192.0.2.7/32`, `2001:db8::/64`).
    net: String,
    reason: String,
    automatic: bool,
    created_at: String,
    /// Absent: until lifted.
    expires_at: Option<String>,
}

impl From<linksnap_store::Ban> for BanJson {
    fn from(b: linksnap_store::Ban) -> Self {
        Self {
            net: b.net.to_string(),
            reason: b.reason,
            automatic: b.automatic,
            created_at: rfc3339(b.created_at),
            expires_at: b.expires_at.map(rfc3339),
        }
    }
}

/// A new ban.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewBan {
    /// An address or a CIDR range.
    net: String,
    /// How long, e.g. `1h`; absent: until lifted.
    #[serde(rename = "for")]
    duration: Option<String>,
    #[serde(default)]
    reason: String,
}

#[utoipa::path(get, path = "/api/v1/net/bans", tag = "net",
    responses((status = 200, body = [BanJson]), (status = 401, body = ErrorJson), (status = 403, body = ErrorJson)))]
pub(crate) async fn list_bans(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<BanJson>>, ApiError> {
    require_admin(&s, &who).await?;
    Ok(Json(
        s.accounts
            .bans()
            .await?
            .into_iter()
            .map(BanJson::from)
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/net/bans", tag = "net", request_body = NewBan,
    responses((status = 201, body = BanJson), (status = 400, body = ErrorJson), (status = 401, body = ErrorJson), (status = 403, body = ErrorJson)))]
pub(crate) async fn create_ban(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<NewBan>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    require_admin(&s, &who).await?;
    let new = crate::error::json_body(body)?;
    let (net, expires_at) = crate::config::parse_ban(&new.net, new.duration.as_deref())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e))?;
    s.accounts
        .ban(net, expires_at, new.reason.trim(), false)
        .await?;
    let ban = s
        .accounts
        .bans()
        .await?
        .into_iter()
        .find(|b| b.net == net.trunc())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the ban expired at once",
            )
        })?;
    Ok((StatusCode::CREATED, Json(BanJson::from(ban))).into_response())
}

#[utoipa::path(delete, path = "/api/v1/net/bans/{net}", tag = "net",
    params(("net" = String, Path, description = "the banned range, percent-encoded (`192.0.2.0%2F24`)")),
    responses((status = 204), (status = 404, body = ErrorJson), (status = 400, body = ErrorJson), (status = 401, body = ErrorJson), (status = 403, body = ErrorJson)))]
pub(crate) async fn delete_ban(
    State(s): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(net): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&s, &who).await?;
    let net = crate::config::parse_net(net.trim())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e))?;
    if s.accounts.unban(net).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{net} is not banned"),
        ))
    }
}

pub(crate) async fn metrics(
    State(s): State<AppState>,
    conn: Option<Extension<ConnInfo>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let allowed = match s.metrics {
        MetricsAccess::Off => {
            return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
                .into_response();
        }
        MetricsAccess::Loopback => match conn.as_ref().map(|c| &c.0.0.peer) {
            Some(Peer::Unix { .. }) => true,
            // A loopback peer that forwards for someone (a same-host proxy not named with
            // --trusted-proxy) is not a loopback reader: its client could be anyone.
            Some(Peer::Tcp(a)) => {
                crate::net::netstat::is_loopback(s.guard.client_ip(a.ip(), &headers))
                    && (!crate::middleware::forwarded(&headers) || s.guard.is_trusted(a.ip()))
            }
            None => false,
        },
        MetricsAccess::Token => {
            let local = conn.as_ref().is_some_and(|c| c.0.0.local);
            // An operator's token (see `is_operator`).
            let token = match crate::access::session::bearer(&headers) {
                Some(t) => match s.accounts.verify_token(t).await.ok().flatten() {
                    Some(t) => is_operator(&s, &Principal::Token(t)).await,
                    None => false,
                },
                None => false,
            };
            local || token
        }
    };
    if !allowed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "metrics are not open to this client",
        )
        .into_response();
    }
    let bans = s.accounts.bans().await.map(|b| b.len()).unwrap_or(0);
    let body = crate::net::netstat::prometheus(
        &stats(&s),
        bans,
        s.sse_streams.load(Ordering::Relaxed),
        s.started.elapsed().as_secs(),
        s.read_cache.counts(),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
