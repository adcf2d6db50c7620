//! `/api/v1/search`, `/api/v1/jobs` and `/api/v1/server`: what the library and the
//! server hold now.

use super::*;

#[utoipa::path(get, path = "/api/v1/search", tag = "search",
    params(
        ("q" = String, Query, description = "words (all must match; `OR` widens), \"phrases\""),
        FilterParams,
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 20"),
    ),
    responses((status = 200, description = "best first", body = Vec<HitJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn search(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
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

/// A capture job.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobJson {
    id: i64,
    link: i64,
    /// queued, running, done or failed.
    state: String,
    attempts: i64,
    run_after: String,
    last_error: Option<String>,
    created_at: String,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses((status = 200, description = "unfinished jobs first, then recent ones", body = Vec<JobJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn jobs(Scoped(s): Scoped) -> ApiResult<Response> {
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

/// The running server.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ServerJson {
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
pub(super) async fn server_status(Scoped(s): Scoped) -> Json<ServerJson> {
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
