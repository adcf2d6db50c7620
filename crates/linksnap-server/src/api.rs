//! The HTTP routes: `/healthz`, the REST API under `/api/v1`, the sandboxed snapshot view,
//! and the local CLI's route. Errors are JSON `{"code", "message"}` with a stable code.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use linksnap_store::{
    EditLink, Fault, Filter, LinkId, LinkStatus, NormalizedUrl, StoreError, TagExpr, TagName,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::json::{HitJson, LinkJson, LinkWithVersions, TagJson, VersionJson, rfc3339};
use crate::session::Scoped;
use crate::{AppState, cli};

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

/// An API error: an HTTP status, a stable code, a message for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (faults that pass).
    pub retry_after: Option<u64>,
}

/// How a fault of the machine is answered over HTTP: its status, stable code and the
/// seconds after which trying again makes sense. Never 500: the request was fine.
pub fn fault_status(fault: Fault) -> (StatusCode, &'static str, u64) {
    match fault {
        Fault::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy", 2),
        Fault::DiskFull => (StatusCode::INSUFFICIENT_STORAGE, "disk_full", 60),
        Fault::ReadOnly => (StatusCode::SERVICE_UNAVAILABLE, "read_only", 60),
    }
}

/// Errors of the store and its account layer, which may stand for a fault of the machine.
pub trait MaybeFault: std::fmt::Display {
    /// The fault behind the error, when it is one.
    fn fault(&self) -> Option<Fault>;
}

impl MaybeFault for StoreError {
    fn fault(&self) -> Option<Fault> {
        StoreError::fault(self)
    }
}

impl MaybeFault for linksnap_store::UserError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl MaybeFault for linksnap_store::TokenError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl MaybeFault for linksnap_store::LibraryError {
    fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store(e) => e.fault(),
            _ => None,
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The answer to a fault of the machine (logged once here).
    pub fn fault(fault: Fault, cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "request not served: {}", fault.explain());
        let (status, code, retry) = fault_status(fault);
        Self {
            retry_after: Some(retry),
            ..Self::new(status, code, fault.explain())
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.code == "insufficient_scope" {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"insufficient_scope\""),
            );
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(fault) = e.fault() {
            return Self::fault(fault, &e);
        }
        match &e {
            StoreError::NoLink(_) | StoreError::NoVersion { .. } | StoreError::NoTag(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::TagExists(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            StoreError::OverLimit { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "too_large", e.to_string())
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed; see its log",
                )
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Every route.
pub(crate) fn router(state: AppState, body_limit: usize) -> Router {
    let (api, doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_links, create_link))
        .routes(routes!(get_link, update_link, delete_link))
        .routes(routes!(recapture))
        .routes(routes!(versions))
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
        .route("/_cli/v1/run", post(cli::run))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::session::api_auth,
        ));
    let pages = crate::web::routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        crate::session::web_auth,
    ));
    let mut app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/s/{secret}", get(crate::snapview::shared_snapshot))
        .route("/metrics", get(crate::netapi::metrics))
        .route(
            "/v/{lib}/{id}/{version}",
            get(crate::snaporigin::signed_snapshot),
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
    if state.snapshot_origin.is_some() {
        app = app
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::snaporigin::separate,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                page_csp,
            ));
    }
    app.layer(axum::middleware::map_response(common_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::bodies::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::names::check_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::netapi::client_guard,
        ))
        .layer(axum::middleware::from_fn(crate::conn::track_in_flight))
        .with_state(state)
}

/// Headers every answer carries unless it set its own: opening an original from a page
/// tells that site nothing of this server (`same-origin`: no referrer leaves this origin;
/// `no-referrer` would also make browsers send `Origin: null` on this origin's own forms,
/// which the CSRF check rightly refuses); no type sniffing.
async fn common_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    res
}

/// Pages may frame the snapshot origin (the link page's snapshot frame) when there is one.
async fn page_csp(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut res = next.run(req).await;
    if let Some(origin) = &s.snapshot_origin
        && res
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            == Some(crate::web::PAGE_CSP)
    {
        let csp = crate::web::PAGE_CSP.replace(
            "frame-src 'self'",
            &format!("frame-src 'self' {}", origin.origin()),
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
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

#[utoipa::path(get, path = "/api/v1/links", tag = "links",
    params(
        FilterParams,
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 50"),
        ("offset" = Option<usize>, Query),
    ),
    responses((status = 200, description = "links, newest first", body = LinkPage), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn list_links(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let raw = raw.unwrap_or_default();
    let cached = s
        .read_cache
        .get_or_compute(&s.library, "links", &raw, || async {
            let q = parse_query(Some(&raw))?;
            let limit = q.limit.unwrap_or(DEFAULT_PAGE);
            let (links, total) = s.library.list_page(&q.filter, limit, q.offset).await?;
            let next = q.offset + links.len();
            json_bytes(&LinkPage {
                links: links.iter().map(LinkJson::with_snapshot_url).collect(),
                total,
                offset: q.offset,
                next_offset: (i64::try_from(next).unwrap_or(i64::MAX) < total).then_some(next),
            })
        })
        .await?;
    Ok(cached_json(cached))
}

/// A value as a JSON body.
fn json_bytes(value: &impl Serialize) -> ApiResult<bytes::Bytes> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// A JSON body from the read cache, saying whether it was remembered.
fn cached_json((body, outcome): (bytes::Bytes, crate::cache::Outcome)) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static(crate::cache::CACHE_HEADER),
                outcome.as_str(),
            ),
        ],
        body,
    )
        .into_response()
}

/// The library's filters as query parameters (documentation of what `parse_query` reads).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "describes the query string for the OpenAPI document"
)]
struct FilterParams {
    /// Tag expression (repeatable; all must hold): `rust`, `lang AND NOT go`, `a OR (b c)`,
    /// `UNTAGGED`; a tag matches the tags nested under it.
    tag: Option<Vec<String>>,
    /// Host, or a parent domain of it.
    domain: Option<String>,
    /// Added on or after (YYYY-MM-DD or RFC 3339).
    since: Option<String>,
    /// Added before (YYYY-MM-DD or RFC 3339).
    until: Option<String>,
    favourite: Option<bool>,
    unread: Option<bool>,
    /// queued, capturing, ok or failed.
    status: Option<String>,
}

/// One page of links.
#[derive(Debug, Serialize, ToSchema)]
struct LinkPage {
    links: Vec<LinkJson>,
    /// How many links the filters select in all.
    total: i64,
    offset: usize,
    /// The `offset` of the next page; absent on the last.
    next_offset: Option<usize>,
}

/// A queued capture.
#[derive(Debug, Serialize, ToSchema)]
struct Queued {
    job: i64,
    link: i64,
}

/// One side of a diff.
#[derive(Debug, Serialize, ToSchema)]
struct DiffSide {
    version: i64,
    captured_at: Option<String>,
}

/// `GET /api/v1/links/{id}/diff`.
#[derive(Debug, Serialize, ToSchema)]
struct DiffJson {
    link: i64,
    from: DiffSide,
    to: DiffSide,
    /// The readable text did not change.
    same: bool,
    /// A unified diff of the readable text.
    diff: String,
}

/// How many things a tag operation changed.
#[derive(Debug, Serialize, ToSchema)]
struct Changed {
    #[serde(skip_serializing_if = "Option::is_none")]
    renamed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
}

/// A capture job.
#[derive(Debug, Serialize, ToSchema)]
struct JobJson {
    id: i64,
    link: i64,
    /// queued, running, done or failed.
    state: String,
    attempts: i64,
    run_after: String,
    last_error: Option<String>,
    created_at: String,
}

/// An entry an import left out, and why.
#[derive(Debug, Serialize, ToSchema)]
struct Skipped {
    what: String,
    why: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
struct ImportReportJson {
    added: usize,
    existing: usize,
    skipped_count: usize,
    /// The first entries left out.
    skipped: Vec<Skipped>,
}

/// An error: a stable code for programs, a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorJson {
    pub code: String,
    pub message: String,
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewLink {
    url: String,
    #[serde(default)]
    tags: Vec<String>,
    note: Option<String>,
}

fn parse_tags(raw: &[String]) -> ApiResult<Vec<TagName>> {
    raw.iter()
        .map(|t| TagName::parse(t).map_err(|e| ApiError::bad(format!("tag `{t}`: {e}"))))
        .collect()
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<T> {
    body.map(|Json(b)| b).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is larger than the server's body limit",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not the JSON expected: {}", e.body_text()),
            )
        }
    })
}

#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = NewLink,
    responses(
        (status = 202, description = "saved; the capture is queued", body = LinkJson),
        (status = 200, description = "already saved: the existing link, with the tags added", body = LinkJson),
        (status = 422, description = "not an http(s) URL", body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn create_link(
    Scoped(s): Scoped,
    body: Result<Json<NewLink>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let new = json_body(body)?;
    let tags = parse_tags(&new.tags)?;
    let url = NormalizedUrl::parse(&new.url, s.library.url_rules())
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_url", e.to_string()))?;
    let (id, job) = s
        .library
        .add_queued(&url, &tags, new.note.as_deref())
        .await?;
    let created = job.is_some();
    s.library.commit_index().await?;
    // Read before a worker is woken: the answer shows the link as queued.
    let link = s.library.get(id).await?;
    if created {
        s.notify(link.id.0, "queued");
        s.wake.notify_waiters();
    }
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(LinkJson::with_snapshot_url(&link))).into_response())
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

#[utoipa::path(get, path = "/api/v1/links/{id}", tag = "links", params(("id" = i64, Path)),
    responses((status = 200, body = LinkWithVersions), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn get_link(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    let link = s.library.get(id).await?;
    let versions = s.library.versions(id).await?;
    Ok(Json(LinkWithVersions {
        link: LinkJson::with_snapshot_url(&link),
        versions: versions.iter().map(VersionJson::new).collect(),
    })
    .into_response())
}

/// `PATCH /api/v1/links/{id}`: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkUpdate {
    title: Option<String>,
    note: Option<String>,
    favourite: Option<bool>,
    unread: Option<bool>,
    #[serde(default)]
    add_tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
}

#[utoipa::path(patch, path = "/api/v1/links/{id}", tag = "links", params(("id" = i64, Path)), request_body = LinkUpdate,
    responses((status = 200, body = LinkJson), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn update_link(
    Scoped(s): Scoped,
    Path(id): Path<String>,
    body: Result<Json<LinkUpdate>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let id = link_id(&id)?;
    let u = json_body(body)?;
    let (add, remove) = (parse_tags(&u.add_tags)?, parse_tags(&u.remove_tags)?);
    s.library
        .edit(
            id,
            &EditLink {
                title: u.title,
                note: u.note,
                favourite: u.favourite,
                unread: u.unread,
            },
        )
        .await?;
    if !add.is_empty() || !remove.is_empty() {
        s.library.retag(&[id], &add, &remove).await?;
    }
    Ok(Json(LinkJson::with_snapshot_url(&s.library.get(id).await?)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links", params(("id" = i64, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn delete_link(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    s.library.remove(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/links/{id}/recapture", tag = "links", params(("id" = i64, Path)),
    responses((status = 202, description = "a new capture is queued", body = Queued), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn recapture(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    let job = s.library.enqueue(id).await?;
    s.notify(id.0, "queued");
    s.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(Queued { job, link: id.0 })).into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/versions", tag = "links", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<VersionJson>), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn versions(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    let v = s.library.versions(id).await?;
    Ok(Json(v.iter().map(VersionJson::new).collect::<Vec<_>>()).into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/diff", tag = "links",
    params(("id" = i64, Path), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query)),
    responses((status = 200, body = DiffJson), (status = 409, description = "fewer than two versions", body = ErrorJson), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn diff(
    Scoped(s): Scoped,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = link_id(&id)?;
    let q = parse_query(raw.as_deref())?;
    let versions = s.library.versions(id).await?;
    let (from, to) = match (q.from, q.to) {
        (Some(a), Some(b)) => (a, b),
        (None, None) => match versions.as_slice() {
            [.., a, b] => (a.version, b.version),
            _ => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "too_few_versions",
                    format!(
                        "link {id} has {} version(s); a diff needs two",
                        versions.len()
                    ),
                ));
            }
        },
        _ => return Err(ApiError::bad("give both `from` and `to`, or neither")),
    };
    let (a, b) = (
        s.library.version_text(id, from).await?,
        s.library.version_text(id, to).await?,
    );
    let when = |v: i64| {
        versions
            .iter()
            .find(|x| x.version == v)
            .map(|x| rfc3339(x.captured_at))
    };
    let text = similar::TextDiff::from_lines(&a, &b)
        .unified_diff()
        .context_radius(2)
        .header(&format!("v{from}"), &format!("v{to}"))
        .to_string();
    Ok(Json(DiffJson {
        link: id.0,
        from: DiffSide {
            version: from,
            captured_at: when(from),
        },
        to: DiffSide {
            version: to,
            captured_at: when(to),
        },
        same: a == b,
        diff: text,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/tags", tag = "tags",
    responses((status = 200, description = "every tag with its link count", body = Vec<TagJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn tags(Scoped(s): Scoped) -> ApiResult<Response> {
    let tags = s.library.tags().await?;
    Ok(Json(
        tags.iter()
            .map(|(t, n)| TagJson::new(t, *n))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Rename {
    from: String,
    to: String,
}

#[utoipa::path(post, path = "/api/v1/tags/rename", tag = "tags", request_body = Rename,
    responses((status = 200, body = Changed), (status = 404, body = ErrorJson), (status = 409, description = "the new name exists: merge instead", body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn rename_tag(
    Scoped(s): Scoped,
    body: Result<Json<Rename>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let r = json_body(body)?;
    let (from, to) = (
        parse_tags(&[r.from])?.remove(0),
        parse_tags(&[r.to])?.remove(0),
    );
    let n = s.library.rename_tag(&from, &to).await?;
    Ok(Json(Changed {
        renamed: Some(n),
        moved: None,
        deleted: None,
    })
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Merge {
    from: Vec<String>,
    into: String,
}

#[utoipa::path(post, path = "/api/v1/tags/merge", tag = "tags", request_body = Merge,
    responses((status = 200, body = Changed), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn merge_tags(
    Scoped(s): Scoped,
    body: Result<Json<Merge>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Response> {
    let m = json_body(body)?;
    let from = parse_tags(&m.from)?;
    let into = parse_tags(&[m.into])?.remove(0);
    let n = s.library.merge_tags(&from, &into).await?;
    Ok(Json(Changed {
        renamed: None,
        moved: Some(n),
        deleted: None,
    })
    .into_response())
}

#[utoipa::path(delete, path = "/api/v1/tags/{name}", tag = "tags",
    params(("name" = String, Path, description = "the tag; nested names percent-encoded (`lang%2Frust`)")),
    responses((status = 200, body = Changed), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn delete_tag(Scoped(s): Scoped, Path(name): Path<String>) -> ApiResult<Response> {
    let tag = parse_tags(&[name])?.remove(0);
    let n = s.library.delete_tag(&tag).await?;
    Ok(Json(Changed {
        renamed: None,
        moved: None,
        deleted: Some(n),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/search", tag = "search",
    params(
        ("q" = String, Query, description = "words (all must match; `OR` widens), \"phrases\""),
        FilterParams,
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 20"),
    ),
    responses((status = 200, description = "best first", body = Vec<HitJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn search(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let raw = raw.unwrap_or_default();
    let cached = s
        .read_cache
        .get_or_compute(&s.library, "search", &raw, || async {
            let q = parse_query(Some(&raw))?;
            let text =
                q.q.filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| ApiError::bad("q: the search text is missing"))?;
            let hits = s
                .library
                .search(&text, &q.filter, q.limit.unwrap_or(DEFAULT_PAGE.min(20)))
                .await?;
            json_bytes(
                &hits
                    .iter()
                    .map(|h| HitJson::new(h, true))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    Ok(cached_json(cached))
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, description = "unfinished jobs first, then recent ones", body = Vec<JobJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
async fn jobs(Scoped(s): Scoped) -> ApiResult<Response> {
    let jobs = s.library.jobs(MAX_PAGE).await?;
    Ok(Json(
        jobs.iter()
            .map(|j| JobJson {
                id: j.id,
                link: j.link.0,
                state: j.state.clone(),
                attempts: j.attempts,
                run_after: rfc3339(j.run_after),
                last_error: j.last_error.clone(),
                created_at: rfc3339(j.created_at),
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/import", tag = "import and export",
    params(("format" = Option<String>, Query, description = "netscape, json or urls (default: recognised)"),
        ("capture" = Option<bool>, Query, description = "queue captures of new links (default true)"),
        ("folders_as_tags" = Option<bool>, Query)),
    request_body(content = String, description = "the bookmarks file", content_type = "application/octet-stream"),
    responses((status = 200, body = ImportReportJson), (status = 400, description = "the file does not parse: nothing was imported", body = ErrorJson), (status = 401, body = ErrorJson)))]
/// Imports a bookmarks file sent as the body (`?format=netscape|json|urls`, else
/// recognised; `?capture=false` queues no captures; `?folders_as_tags=true`). One
/// transaction: a file that does not parse imports nothing (400 `bad_import`).
async fn import(
    Scoped(s): Scoped,
    RawQuery(raw): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    use linksnap_store::import::Format;
    let q = parse_query(raw.as_deref())?;
    let format = match q.format.as_deref() {
        None => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            ApiError::bad(format!("format: `{f}` is not one of netscape, json, urls"))
        })?),
    };
    let capture = q.capture.unwrap_or(true);
    let folders = q.folders_as_tags;
    let report =
        crate::transfer::import_body(&s, body, format, capture, folders, Box::new(|_| {})).await?;
    Ok(Json(ImportReportJson {
        added: report.added,
        existing: report.existing,
        skipped_count: report.skipped_count,
        skipped: report
            .skipped
            .iter()
            .map(|(what, why)| Skipped {
                what: what.clone(),
                why: why.clone(),
            })
            .collect(),
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/export", tag = "import and export",
    params(("format" = Option<String>, Query, description = "json (default) or netscape")),
    responses((status = 200, description = "every link: JSON objects, or a Netscape bookmark file", body = Vec<LinkJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
/// Every link, as `?format=json` (the default; the objects of `GET /api/v1/links`) or
/// `?format=netscape` (bookmark HTML).
async fn export(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    use crate::transfer::ExportFormat;
    let q = parse_query(raw.as_deref())?;
    let format = match q.format.as_deref().unwrap_or("json") {
        "json" => ExportFormat::Json,
        "netscape" => ExportFormat::Netscape,
        other => {
            return Err(ApiError::bad(format!(
                "format: `{other}` is not one of json, netscape"
            )));
        }
    };
    let permit = s.transfers.permit(&s.library)?;
    crate::transfer::export(s.library.clone(), Filter::default(), format, permit).await
}

/// The running server.
#[derive(Debug, Serialize, ToSchema)]
struct ServerJson {
    version: &'static str,
    uptime_secs: u64,
    /// Connections open now, on every listener.
    connections: usize,
    /// Event streams (live progress) open now.
    event_streams: usize,
    accepted_total: u64,
    /// Times `accept` ran out of descriptors or memory and backed off.
    accept_backoffs: u64,
}

#[utoipa::path(get, path = "/api/v1/server", tag = "server",
    responses((status = 200, body = ServerJson), (status = 401, body = ErrorJson)))]
async fn server_status(Scoped(s): Scoped) -> Json<ServerJson> {
    use std::sync::atomic::Ordering;
    Json(ServerJson {
        version: crate::cli::VERSION,
        uptime_secs: s.started.elapsed().as_secs(),
        connections: s.conns.len(),
        event_streams: s.sse_streams.load(Ordering::Relaxed),
        accepted_total: s.conns.accepted_total.load(Ordering::Relaxed),
        accept_backoffs: s.conns.accept_backoffs.load(Ordering::Relaxed),
    })
}

/// A share link as listed (the full URL only when it is created).
#[derive(Debug, Serialize, ToSchema)]
struct ShareJson {
    id: i64,
    link: i64,
    /// Absent: always the latest version.
    version: Option<i64>,
    /// The secret's first characters.
    prefix: String,
    created_at: String,
    /// The public address, e.g. `/s/3f…`; only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

impl ShareJson {
    fn new(sh: &linksnap_store::Share, url: Option<String>) -> Self {
        Self {
            id: sh.id,
            link: sh.link.0,
            version: sh.version,
            prefix: sh.prefix.clone(),
            created_at: rfc3339(sh.created_at),
            url,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/links/{id}/shares", tag = "sharing",
    params(("id" = i64, Path), ("version" = Option<i64>, Query, description = "a fixed version (default: always the latest)")),
    responses((status = 201, description = "created; `url` is shown this once", body = ShareJson), (status = 404, body = ErrorJson), (status = 401, body = ErrorJson)))]
async fn create_share(
    Scoped(s): Scoped,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let id = link_id(&id)?;
    let version = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "version")
        .map(|(_, v)| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad(format!("version: `{v}` is not a number")))
        })
        .transpose()?;
    let (share, secret) = s.library.create_share(id, version).await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareJson::new(&share, Some(format!("/s/{secret}")))),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/shares", tag = "sharing", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<ShareJson>), (status = 404, body = ErrorJson), (status = 401, body = ErrorJson)))]
async fn list_shares(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    let shares = s.library.shares(id).await?;
    Ok(Json(
        shares
            .iter()
            .map(|sh| ShareJson::new(sh, None))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

#[utoipa::path(delete, path = "/api/v1/shares/{share}", tag = "sharing", params(("share" = i64, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorJson), (status = 401, body = ErrorJson)))]
async fn revoke_share(Scoped(s): Scoped, Path(share): Path<String>) -> ApiResult<StatusCode> {
    let gone = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such share link");
    let id = share.parse::<i64>().map_err(|_| gone())?;
    if s.library.revoke_share(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(gone())
    }
}
