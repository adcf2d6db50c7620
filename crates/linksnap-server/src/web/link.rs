//! One link's pages: versions, resources, the snapshot frame, edits, share links, its
//! readable text and the diff between versions.

use super::*;

pub(super) struct VersionRow {
    version: i64,
    captured_at: String,
    http_status: u16,
    bytes: i64,
    resources_inlined: i64,
    resources_failed: i64,
    /// What a browser engine kept of it.
    screenshot: bool,
    pdf: bool,
}

pub(super) struct ResourceView {
    url: String,
    kind: String,
    outcome: String,
    bytes: String,
    ok: bool,
}

#[derive(Template)]
#[template(path = "link.html")]
pub(super) struct LinkPage {
    page: PageCtx,
    id: i64,
    title: String,
    url: String,
    status: &'static str,
    status_key: &'static str,
    added: String,
    failure: Option<String>,
    tags: String,
    note: String,
    favourite: bool,
    unread: bool,
    versions: Vec<VersionRow>,
    shown: i64,
    resources: Vec<ResourceView>,
    shares: Vec<ShareRow>,
    /// A share link just made: its address, shown this once.
    new_share: Option<String>,
}

pub(super) struct ShareRow {
    id: i64,
    prefix: String,
    created: String,
}

pub(super) async fn share(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let page = ctx(&headers, &who, &format!("/links/{id}"));
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    match s.library.create_share(id, None).await {
        Ok((_, secret)) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1:8080");
            let scheme = if s.secure_cookies { "https" } else { "http" };
            link_page(
                &s,
                page,
                id,
                None,
                Some(format!("{scheme}://{host}/s/{secret}")),
            )
            .await
        }
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) async fn unshare(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path((id, share)): Path<(String, i64)>,
) -> Response {
    let page = ctx(&headers, &who, &format!("/links/{id}"));
    match s.library.revoke_share(share).await {
        Ok(_) => Redirect::to(&format!("/links/{id}")).into_response(),
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) fn id_of(raw: &str) -> Option<LinkId> {
    raw.parse().ok().map(LinkId)
}

pub(super) async fn link(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/links/{id}");
    let page = ctx(&headers, &who, &path);
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    link_page(&s, page, id, raw.as_deref(), None).await
}

pub(super) async fn link_page(
    s: &AppState,
    page: PageCtx,
    id: LinkId,
    raw: Option<&str>,
    new_share: Option<String>,
) -> Response {
    let l = match s.library.get(id).await {
        Ok(l) => l,
        Err(e) => return failed_page(page, StatusCode::NOT_FOUND, &e),
    };
    let versions = s.library.versions(id).await.unwrap_or_default();
    let params = query(raw);
    let shown = field(&params, "v")
        .parse()
        .ok()
        .filter(|v| versions.iter().any(|x| x.version == *v))
        .or_else(|| versions.last().map(|v| v.version))
        .unwrap_or(0);
    let resources = if shown > 0 {
        s.library.resources(id, shown).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let shares = s
        .library
        .shares(id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|sh| ShareRow {
            id: sh.id,
            prefix: sh.prefix,
            created: rfc3339(sh.created_at),
        })
        .collect();
    render(&LinkPage {
        page,
        shares,
        new_share,
        id: id.0,
        title: if l.title.is_empty() {
            l.url.as_str().to_owned()
        } else {
            l.title.clone()
        },
        url: l.url.as_str().to_owned(),
        status: l.status.as_str(),
        status_key: status_key(l.status.as_str()),
        added: rfc3339(l.created_at),
        failure: l.failure.clone(),
        tags: l
            .tags
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        note: l.note.clone(),
        favourite: l.favourite,
        unread: l.unread,
        versions: versions
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                captured_at: rfc3339(v.captured_at),
                http_status: v.http_status,
                bytes: v.bytes,
                resources_inlined: v.inlined,
                resources_failed: v.failed,
                screenshot: v.screenshot,
                pdf: v.pdf,
            })
            .collect(),
        shown,
        resources: resources
            .into_iter()
            .map(|r| ResourceView {
                ok: r.outcome == "inlined",
                outcome: match (&r.error, r.http_status) {
                    (Some(e), _) => format!("{}: {e}", r.outcome),
                    (None, Some(st)) => format!("{} (HTTP {st})", r.outcome),
                    _ => r.outcome.clone(),
                },
                url: r.url,
                kind: r.kind,
                bytes: r.bytes.map_or_else(String::new, |b| b.to_string()),
            })
            .collect(),
    })
}

pub(super) async fn edit(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/");
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    let wanted = match parse_tag_list(field(&f, "tags")) {
        Ok(t) => t,
        Err(e) => return error_page(page, StatusCode::BAD_REQUEST, e),
    };
    let result = async {
        let l = s.library.get(id).await?;
        s.library
            .edit(
                id,
                &EditLink {
                    title: Some(field(&f, "title").to_owned()).filter(|t| *t != l.title),
                    note: Some(field(&f, "note").to_owned()),
                    favourite: Some(field(&f, "favourite") == "1"),
                    unread: Some(field(&f, "unread") == "1"),
                },
            )
            .await?;
        let have: BTreeSet<&str> = l.tags.iter().map(TagName::key).collect();
        let want: BTreeSet<&str> = wanted.iter().map(TagName::key).collect();
        let add: Vec<TagName> = wanted
            .iter()
            .filter(|t| !have.contains(t.key()))
            .cloned()
            .collect();
        let remove: Vec<TagName> = l
            .tags
            .iter()
            .filter(|t| !want.contains(t.key()))
            .cloned()
            .collect();
        if !add.is_empty() || !remove.is_empty() {
            s.library.retag(&[id], &add, &remove).await?;
        }
        Ok::<_, linksnap_store::StoreError>(())
    };
    match result.await {
        Ok(()) => Redirect::to(&format!("/links/{id}")).into_response(),
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) async fn recapture(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let page = ctx(&headers, &who, "/");
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    match s.library.enqueue(id).await {
        Ok(_) => {
            s.notify(id.0, "queued");
            s.wake.notify_waiters();
            Redirect::to(&format!("/links/{id}")).into_response()
        }
        Err(e) => failed_page(page, StatusCode::NOT_FOUND, &e),
    }
}

pub(super) async fn delete(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let page = ctx(&headers, &who, "/");
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    match s.library.remove(id).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => failed_page(page, StatusCode::NOT_FOUND, &e),
    }
}

#[derive(Template)]
#[template(path = "text.html")]
pub(super) struct TextPage {
    page: PageCtx,
    id: i64,
    title: String,
    version: i64,
    paragraphs: Vec<String>,
}

pub(super) async fn text(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let page = ctx(&headers, &who, &format!("/links/{id}/text"));
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    let params = query(raw.as_deref());
    let versions = s.library.versions(id).await.unwrap_or_default();
    let version = field(&params, "v")
        .parse()
        .ok()
        .or_else(|| versions.last().map(|v| v.version))
        .unwrap_or(0);
    let (l, body) = match (
        s.library.get(id).await,
        s.library.version_text(id, version).await,
    ) {
        (Ok(l), Ok(t)) => (l, t),
        (Err(e), _) | (_, Err(e)) => return error_page(page, StatusCode::NOT_FOUND, e.to_string()),
    };
    render(&TextPage {
        page,
        id: id.0,
        title: if l.title.is_empty() {
            l.url.as_str().to_owned()
        } else {
            l.title
        },
        version,
        paragraphs: body
            .split("\n\n")
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "diff.html")]
pub(super) struct DiffPage {
    page: PageCtx,
    id: i64,
    title: String,
    from: i64,
    to: i64,
    same: bool,
    lines: Vec<(&'static str, String)>,
}

pub(super) async fn diff(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let page = ctx(&headers, &who, &format!("/links/{id}/diff"));
    let Some(id) = id_of(&id) else {
        return error_page(page, StatusCode::NOT_FOUND, "no such link");
    };
    let params = query(raw.as_deref());
    let versions = s.library.versions(id).await.unwrap_or_default();
    let (from, to) = match (field(&params, "from").parse(), field(&params, "to").parse()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => match versions.as_slice() {
            [.., a, b] => (a.version, b.version),
            _ => return error_page(page, StatusCode::CONFLICT, "a diff needs two versions"),
        },
    };
    let (a, b) = match (
        s.library.version_text(id, from).await,
        s.library.version_text(id, to).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error_page(page, StatusCode::NOT_FOUND, e.to_string()),
    };
    let title = s.library.get(id).await.map(|l| l.title).unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&a, &b);
    let mut lines = Vec::new();
    for group in diff.grouped_ops(2) {
        lines.push(("hunk", "…".to_owned()));
        for op in group {
            for change in diff.iter_changes(&op) {
                let class = match change.tag() {
                    similar::ChangeTag::Delete => "del",
                    similar::ChangeTag::Insert => "add",
                    similar::ChangeTag::Equal => "ctx",
                };
                lines.push((class, change.to_string_lossy().trim_end().to_owned()));
            }
        }
    }
    render(&DiffPage {
        page,
        id: id.0,
        title,
        from,
        to,
        same: a == b,
        lines,
    })
}
