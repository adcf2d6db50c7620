//! The HTTP routes: `/healthz`, the REST API under `/api/v1`, the sandboxed snapshot view,
//! and the local CLI's route. Errors are JSON `{"code", "message"}` with a stable code.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use linksnap_store::{EditLink, Filter, LinkId, LinkStatus, NormalizedUrl, TagExpr, TagName};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::session::Scoped;
use crate::cli;
use crate::json::{HitJson, LinkJson, LinkWithVersions, TagJson, VersionJson, rfc3339};
use crate::state::AppState;

mod links;
mod queries;
mod shares;
mod tags;
mod transfers;

use crate::error::json_body;
pub use crate::error::{ApiError, ErrorJson, MaybeFault, fault_status};
use links::*;
use queries::*;
use shares::*;
use tags::*;
use transfers::*;

/// The OpenAPI document's frame; the operations come from the handlers' annotations, as
/// they are routed (`OpenApiRouter`), so the document cannot list a route that does not
/// exist or miss one that does.
#[derive(OpenApi)]
#[openapi(
    info(title = "linksnap", description = "The linksnap REST API: links, tags, search, versions and diffs, import and export, jobs."),
    modifiers(&Security),
    security(("bearer" = [])),
    components(schemas(ErrorJson))
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "a token from `linksnap token create NAME` or the settings page",
                        ))
                        .build(),
                ),
            );
    }
}

/// Links per page when the request does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most links (or search hits) per page.
pub const MAX_PAGE: usize = 1000;

type ApiResult<T> = Result<T, ApiError>;

/// Every route.
pub(crate) fn router(state: AppState, body_limit: usize) -> Router {
    let (api, doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_links, create_link))
        .routes(routes!(get_link, update_link, delete_link))
        .routes(routes!(recapture))
        .routes(routes!(versions))
        .routes(routes!(rendering))
        .routes(routes!(diff))
        .routes(routes!(tags))
        .routes(routes!(rename_tag))
        .routes(routes!(merge_tags))
        .routes(routes!(delete_tag))
        .routes(routes!(search))
        .routes(routes!(jobs))
        .routes(routes!(import))
        .routes(routes!(export))
        .routes(routes!(create_share, list_shares))
        .routes(routes!(revoke_share))
        .routes(routes!(server_status))
        .routes(routes!(crate::netapi::net_stats))
        .routes(routes!(crate::netapi::list_bans, crate::netapi::create_ban))
        .routes(routes!(crate::netapi::delete_ban))
        .split_for_parts();
    let doc = Arc::new(doc);
    let authed = api
        .route("/snapshots/{id}/{version}", get(crate::snapview::snapshot))
        .route("/_cli/v1/run", post(cli_run))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::session::api_auth,
        ));
    let pages = crate::web::routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::access::session::web_auth,
    ));
    let mut app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/s/{secret}", get(crate::snapview::shared_snapshot))
        .route("/metrics", get(crate::netapi::metrics))
        .route(
            "/v/{lib}/{id}/{version}",
            get(crate::snapview::signed_snapshot),
        )
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .merge(authed)
        .merge(pages)
        .merge(crate::web::public_routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit));
    // Only with a snapshot origin: the two origins kept apart, pages allowed to frame it.
    // Each middleware holds only what it reads: cloning the whole state per request
    // would touch every shared counter of it from every core.
    if let Some(origin) = &state.snapshot_origin {
        app = app
            .layer(axum::middleware::from_fn_with_state(
                origin.clone(),
                crate::middleware::separate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                origin.clone(),
                crate::middleware::page_csp,
            ));
    }
    app.layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::middleware::Gate {
            names: state.names.clone(),
            bodies: state.bodies.clone(),
        }),
        crate::middleware::gate,
    ))
    .layer(axum::middleware::from_fn_with_state(
        state.guard.clone(),
        crate::middleware::client_guard,
    ))
    .layer(axum::middleware::from_fn(crate::net::conn::track_in_flight))
    .with_state(state)
}

/// The library's filters from a query string: `tag` (repeatable), `domain`, `since`,
/// `until`, `favourite`, `unread`, `status`; and `limit`, `offset`, `q`.
#[derive(Debug, Default)]
struct Query {
    filter: Filter,
    limit: Option<usize>,
    offset: usize,
    q: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    format: Option<String>,
    capture: Option<bool>,
    folders_as_tags: bool,
}

fn parse_bool(name: &str, v: &str) -> ApiResult<bool> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad(format!(
            "{name}: expected true or false, got `{v}`"
        ))),
    }
}

fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    crate::json::parse_date(v).map_err(|e| ApiError::bad(format!("{name}: {e}")))
}

fn parse_query(raw: Option<&str>) -> ApiResult<Query> {
    let mut q = Query::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| ApiError::bad(format!("{k}: `{v}` is not a number")))
        };
        match &*k {
            "tag" => q
                .filter
                .tags
                .push(TagExpr::parse(&v).map_err(|e| ApiError::bad(format!("tag: {e}")))?),
            "domain" => q.filter.domain = Some(v.into_owned()),
            "since" => q.filter.since = Some(parse_time("since", &v)?),
            "until" => q.filter.until = Some(parse_time("until", &v)?),
            "favourite" => q.filter.favourite = Some(parse_bool("favourite", &v)?),
            "unread" => q.filter.unread = Some(parse_bool("unread", &v)?),
            "status" => {
                q.filter.status = Some(match &*v {
                    "queued" => LinkStatus::Queued,
                    "capturing" => LinkStatus::Capturing,
                    "ok" => LinkStatus::Ok,
                    "failed" => LinkStatus::Failed,
                    _ => {
                        return Err(ApiError::bad(format!(
                            "status: `{v}` is not one of queued, capturing, ok, failed"
                        )));
                    }
                });
            }
            "limit" => {
                let n = num(&v)?;
                if n == 0 || n > MAX_PAGE {
                    return Err(ApiError::bad(format!("limit: 1 to {MAX_PAGE}")));
                }
                q.limit = Some(n);
            }
            "offset" => q.offset = num(&v)?,
            "q" => q.q = Some(v.into_owned()),
            "format" => q.format = Some(v.into_owned()),
            "capture" => q.capture = Some(parse_bool("capture", &v)?),
            "folders_as_tags" => q.folders_as_tags = parse_bool("folders_as_tags", &v)?,
            "from" => q.from = Some(num(&v)? as i64),
            "to" => q.to = Some(num(&v)? as i64),
            other => return Err(ApiError::bad(format!("unknown query parameter `{other}`"))),
        }
    }
    Ok(q)
}

fn parse_tags(raw: &[String]) -> ApiResult<Vec<TagName>> {
    raw.iter()
        .map(|t| TagName::parse(t).map_err(|e| ApiError::bad(format!("tag `{t}`: {e}"))))
        .collect()
}

fn link_id(raw: &str) -> ApiResult<LinkId> {
    raw.parse::<i64>().map(LinkId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no link `{raw}`"),
        )
    })
}

/// `POST /_cli/v1/run`: a command line forwarded by the local CLI (see `crate::cli`).
async fn cli_run(
    State(state): State<AppState>,
    conn: Option<axum::Extension<crate::net::conn::ConnInfo>>,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    let local = conn.is_some_and(|c| c.0.0.local);
    match cli::start(state.cli.clone(), state.libs.clone(), local, &headers, body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
