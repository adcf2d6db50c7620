//! The tag manager: the tree with counts, rename, merge, delete.

use super::*;

pub(super) struct TagRow {
    name: String,
    leaf: String,
    depth: f32,
    count: i64,
}

#[derive(Template)]
#[template(path = "tags.html")]
pub(super) struct TagsPage {
    page: PageCtx,
    tags: Vec<TagRow>,
}

pub(super) async fn tags(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let page = ctx(&headers, &who, "/tags");
    let tree = s.library.tag_tree().await.unwrap_or_default();
    render(&TagsPage {
        page,
        tags: tree
            .into_iter()
            .map(|n| TagRow {
                leaf: n.name.rsplit('/').next().unwrap_or("").to_owned(),
                depth: n.depth as f32,
                count: n.total,
                name: n.name,
            })
            .collect(),
    })
}

pub(super) async fn tag_action(
    s: &AppState,
    page: PageCtx,
    f: &[(String, String)],
    action: &str,
) -> Response {
    let parse = |v: &str| TagName::parse(v).map_err(|e| format!("{v}: {e}"));
    let result = async {
        match action {
            "rename" => {
                let (from, to) = (parse(field(f, "from"))?, parse(field(f, "to"))?);
                s.library
                    .rename_tag(&from, &to)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            "merge" => {
                let (from, into) = (parse(field(f, "from"))?, parse(field(f, "into"))?);
                s.library
                    .merge_tags(&[from], &into)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            _ => {
                let t = parse(field(f, "name"))?;
                s.library.delete_tag(&t).await.map_err(|e| e.to_string())?;
            }
        }
        Ok::<_, String>(())
    };
    match result.await {
        Ok(()) => Redirect::to("/tags").into_response(),
        Err(e) => error_page(page, StatusCode::BAD_REQUEST, e),
    }
}

pub(super) async fn rename_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "rename").await
}

pub(super) async fn merge_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "merge").await
}

pub(super) async fn delete_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "delete").await
}
