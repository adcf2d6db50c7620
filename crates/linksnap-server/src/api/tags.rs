//! `/api/v1/tags…`: the tag list, rename, merge, delete.

use super::*;

/// How many things a tag operation changed.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Changed {
    #[serde(skip_serializing_if = "Option::is_none")]
    renamed: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/tags", tag = "tags",
    responses((status = 200, description = "every tag with its link count", body = Vec<TagJson>), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn tags(Scoped(s): Scoped) -> ApiResult<Response> {
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
pub(super) struct Rename {
    from: String,
    to: String,
}

#[utoipa::path(post, path = "/api/v1/tags/rename", tag = "tags", request_body = Rename,
    responses((status = 200, body = Changed), (status = 404, body = ErrorJson), (status = 409, description = "the new name exists: merge instead", body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn rename_tag(
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
pub(super) struct Merge {
    from: Vec<String>,
    into: String,
}

#[utoipa::path(post, path = "/api/v1/tags/merge", tag = "tags", request_body = Merge,
    responses((status = 200, body = Changed), (status = 404, body = ErrorJson), (status = 400, description = "bad input", body = ErrorJson), (status = 401, description = "no valid credentials", body = ErrorJson)))]
pub(super) async fn merge_tags(
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
pub(super) async fn delete_tag(Scoped(s): Scoped, Path(name): Path<String>) -> ApiResult<Response> {
    let tag = parse_tags(&[name])?.remove(0);
    let n = s.library.delete_tag(&tag).await?;
    Ok(Json(Changed {
        renamed: None,
        moved: None,
        deleted: Some(n),
    })
    .into_response())
}
