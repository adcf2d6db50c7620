//! Import and export pages: a bookmarks file imported with live progress.

use super::*;

#[derive(Template)]
#[template(path = "io.html")]
pub(super) struct IoPage {
    page: PageCtx,
}

pub(super) async fn io_page(Extension(who): Extension<Principal>, headers: HeaderMap) -> Response {
    render(&IoPage {
        page: ctx(&headers, &who, "/io"),
    })
}

/// How often an import reports progress: every this many bytes (and at the end).
pub(super) const IMPORT_PROGRESS_STEP: u64 = 256 * 1024;

/// Imports the request body into the principal's library, answering NDJSON as it goes:
/// `{"read", "total"}` lines, then `{"done": true, "added", "existing", "skipped_count",
/// "skipped"}` or `{"error"}`. The import is one transaction, as everywhere.
pub(super) async fn io_import(
    Scoped(s): Scoped,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    use linksnap_store::import::Format;
    let q = query(raw.as_deref());
    let format = match field(&q, "format") {
        "" => None,
        f => match Format::parse(f) {
            Some(f) => Some(f),
            None => {
                return (StatusCode::BAD_REQUEST, format!("unknown format `{f}`")).into_response();
            }
        },
    };
    let capture = field(&q, "capture") != "0";
    let folders = field(&q, "folders") == "1";
    // The body is read as the import goes (never held whole); its declared length is the
    // progress bar's total.
    let total = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let progress = tx.clone();
        let (mut read, mut shown) = (0u64, 0u64);
        let report = Box::new(move |n: u64| {
            read += n;
            if read - shown >= IMPORT_PROGRESS_STEP || (total > 0 && read >= total) {
                shown = read;
                let _ =
                    progress.send(serde_json::json!({"read": read, "total": total}).to_string());
            }
        });
        let last = match crate::transfer::import_body(
            s.import_into(),
            body,
            format,
            capture,
            folders,
            report,
        )
        .await
        {
            Ok(r) => serde_json::json!({
                "done": true, "added": r.added, "existing": r.existing,
                "skipped_count": r.skipped_count,
                "skipped": r.skipped.iter().map(|(what, why)| serde_json::json!({"what": what, "why": why})).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({"error": e.message}),
        };
        let _ = tx.send(last.to_string());
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| {
            (
                Ok::<_, Infallible>(axum::body::Bytes::from(line + "\n")),
                rx,
            )
        })
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}
