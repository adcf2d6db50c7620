//! `/api/v1/import` and `/api/v1/export` (see `crate::transfer` for the bounds).

use super::*;

/// An entry an import left out, and why.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Skipped {
    what: String,
    why: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ImportReportJson {
    added: usize,
    existing: usize,
    skipped_count: usize,
    /// The first entries left out.
    skipped: Vec<Skipped>,
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
pub(super) async fn import(
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
    let report = crate::transfer::import_body(
        s.import_into(),
        body,
        format,
        capture,
        folders,
        Box::new(|_| {}),
    )
    .await?;
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
pub(super) async fn export(Scoped(s): Scoped, RawQuery(raw): RawQuery) -> ApiResult<Response> {
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
