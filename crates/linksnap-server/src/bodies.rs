//! Request bodies, before any route reads one: a small limit (`form_limit`) on every route
//! that does not take a file, the large one (`body_limit`) only on the upload routes, and a
//! budget of body bytes held at once across all connections (`body_budget`), so that many
//! large bodies queue instead of stacking up in memory. A body that declares more than its
//! route allows is refused with 413 before a byte of it is read; one that sends more than
//! it declared, or declares nothing, is cut off at the limit (413 from the extractor).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes whose bodies are files: imports, and the CLI's standard input.
pub const UPLOAD_ROUTES: &[&str] = &["/api/v1/import", "/io/import", "/_cli/v1/run"];

/// The limits and the shared budget (permits are KiB).
#[derive(Debug)]
pub struct Bodies {
    pub form_limit: usize,
    pub upload_limit: usize,
    budget_kib: u32,
    budget: Arc<Semaphore>,
    wait: Duration,
}

impl Bodies {
    #[must_use]
    pub fn new(config: &crate::config::ServerConfig) -> Self {
        let budget_kib = u32::try_from(config.body_budget.div_ceil(1024)).unwrap_or(u32::MAX);
        Self {
            form_limit: config.form_limit,
            upload_limit: config.body_limit,
            budget_kib,
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            wait: config.body_budget_wait,
        }
    }

    /// The limit of the route at `path`.
    #[must_use]
    pub fn limit_of(&self, path: &str) -> usize {
        if UPLOAD_ROUTES.contains(&path) {
            self.upload_limit
        } else {
            self.form_limit
        }
    }

    /// KiB of the budget held now (for the tests and `/metrics`).
    #[must_use]
    pub fn held_kib(&self) -> u32 {
        self.budget_kib
            .saturating_sub(u32::try_from(self.budget.available_permits()).unwrap_or(u32::MAX))
    }
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

/// The middleware: refuses bodies over the route's limit, waits for room in the budget,
/// and holds it until the response is made.
pub(crate) async fn limit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let bodies = &s.bodies;
    let limit = bodies.limit_of(req.uri().path());
    let length = match declared(&req) {
        Declared::None => return next.run(req).await,
        Declared::Length(n) if n > limit as u64 => {
            let which = if limit == bodies.upload_limit {
                "body_limit"
            } else {
                "form_limit"
            };
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is larger than this route takes ({limit} bytes, {which})"
                ),
            )
            .into_response();
        }
        Declared::Length(n) => n,
        Declared::Unknown => limit as u64,
        Declared::Bad => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Content-Length is not a number",
            )
            .into_response();
        }
    };
    let kib = u32::try_from(length.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, bodies.budget_kib);
    let permit = match tokio::time::timeout(
        bodies.wait,
        bodies.budget.clone().acquire_many_owned(kib),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            tracing::warn!(
                kib,
                "a request body waited too long for the body budget (body_budget)"
            );
            let mut r = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many large requests at once; try again shortly",
            );
            r.retry_after = Some(5);
            return r.into_response();
        }
    };
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, limit)));
    let res = next.run(req).await;
    drop(permit);
    res
}
