//! `/api/v1/links…`: list, add, get, edit, remove, recapture, versions, diff.

use super::*;

/// The library's filters as query parameters (documentation of what `parse_query` reads).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "describes the query string for the OpenAPI document"
)]
pub(super) struct FilterParams {
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
pub(super) struct LinkPage {
    links: Vec<LinkJson>,
    /// How many links the filters select in all.
    total: i64,
    offset: usize,
    /// The `offset` of the next page; absent on the last.
    next_offset: Option<usize>,
}

/// A queued capture.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Queued {
    job: i64,
    link: i64,
}

/// One side of a diff.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DiffSide {
    version: i64,
    captured_at: Option<String>,
}

/// `GET /api/v1/links/{id}/diff`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DiffJson {
    link: i64,
    from: DiffSide,
    to: DiffSide,
    /// The readable text did not change.
    same: bool,
    /// A unified diff of the readable text.
    diff: String,
}

/// `POST /api/v1/links`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewLink {
    url: String,
    #[serde(default)]
    tags: Vec<String>,
    note: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/links", tag = "links",
    params(
        FilterParams,
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 50"),
        ("offset" = Option<usize>, Query),
    ),
    responses((status = 200, description = "links, newest first", body = LinkPage), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn list_links(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
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
pub(super) fn json_bytes(value: &impl Serialize) -> ApiResult<bytes::Bytes> {
    serde_json::to_vec(value)
        .map(bytes::Bytes::from)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// A JSON body from the read cache, saying whether it was remembered.
pub(super) fn cached_json((body, outcome): (bytes::Bytes, crate::cache::Outcome)) -> Response {
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

#[utoipa::path(post, path = "/api/v1/links", tag = "links", request_body = NewLink,
    responses(
        (status = 202, description = "saved; the capture is queued", body = LinkJson),
        (status = 200, description = "already saved: the existing link, with the tags added", body = LinkJson),
        (status = 422, description = "not an http(s) URL", body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn create_link(
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

#[utoipa::path(get, path = "/api/v1/links/{id}", tag = "links", params(("id" = i64, Path)),
    responses((status = 200, body = LinkWithVersions), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn get_link(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
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
pub(super) struct LinkUpdate {
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
pub(super) async fn update_link(
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
pub(super) async fn delete_link(
    Scoped(s): Scoped,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    s.library.remove(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/links/{id}/recapture", tag = "links", params(("id" = i64, Path)),
    responses((status = 202, description = "a new capture is queued", body = Queued), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn recapture(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    let job = s.library.enqueue(id).await?;
    s.notify(id.0, "queued");
    s.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(Queued { job, link: id.0 })).into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/versions", tag = "links", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<VersionJson>), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn versions(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
    let id = link_id(&id)?;
    s.library.get(id).await?;
    let v = s.library.versions(id).await?;
    Ok(Json(v.iter().map(VersionJson::new).collect::<Vec<_>>()).into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/versions/{version}/{rendering}", tag = "links",
    params(("id" = i64, Path), ("version" = String, Path, description = "a version number, or `latest`"),
        ("rendering" = String, Path, description = "`screenshot` (PNG), `thumbnail` (JPEG, 640×360) or `pdf`")),
    responses((status = 200, description = "the image or the PDF"), (status = 404, description = "no such link, version or rendering (a static capture has none)", body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn rendering(
    Scoped(s): Scoped,
    Path((id, version, what)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let id = link_id(&id)?;
    let version =
        match version.as_str() {
            "latest" => None,
            v => Some(v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad(format!("`{v}` is not a version number or `latest`"))
            })?),
        };
    let what = linksnap_store::Rendering::parse(&what).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no rendering `{what}`: screenshot, thumbnail or pdf"),
        )
    })?;
    let bytes = s.library.rendering(id, version, what).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, what.media_type()),
            (axum::http::header::CACHE_CONTROL, "private, max-age=3600"),
            // A PDF can carry scripts: whatever opens it, never with the app's origin.
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; img-src 'self' data:",
            ),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/links/{id}/diff", tag = "links",
    params(("id" = i64, Path), ("from" = Option<i64>, Query), ("to" = Option<i64>, Query)),
    responses((status = 200, body = DiffJson), (status = 409, description = "fewer than two versions", body = ErrorJson), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn diff(
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
