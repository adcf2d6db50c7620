//! `/api/v1/links/{id}/shares` and `/api/v1/shares/{id}`: public share links.

use super::*;

/// A share link as listed (the full URL only when it is created).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ShareJson {
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
pub(super) async fn create_share(
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
pub(super) async fn list_shares(Scoped(s): Scoped, Path(id): Path<String>) -> ApiResult<Response> {
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
pub(super) async fn revoke_share(
    Scoped(s): Scoped,
    Path(share): Path<String>,
) -> ApiResult<StatusCode> {
    let gone = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such share link");
    let id = share.parse::<i64>().map_err(|_| gone())?;
    if s.library.revoke_share(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(gone())
    }
}
