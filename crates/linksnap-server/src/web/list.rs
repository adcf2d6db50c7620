//! The list of links: filters, search, paging, the add form, bulk tagging.

use super::*;

/// What the list page shows of the library for one query string; the same for every
/// viewer of the library, so it is cached (`cache::ReadCache`).
#[derive(Debug)]
pub struct ListData {
    rows: Vec<Row>,
    total: i64,
    chips: Vec<Chip>,
    prev: Option<String>,
    next: Option<String>,
}

impl crate::cache::Cacheable for Arc<ListData> {
    fn wrap(self) -> crate::cache::Cached {
        crate::cache::Cached::Page(self)
    }
    fn unwrap(c: crate::cache::Cached) -> Option<Self> {
        match c {
            crate::cache::Cached::Page(d) => d.downcast::<ListData>().ok(),
            crate::cache::Cached::Json(_) => None,
        }
    }
    fn weight(&self) -> usize {
        ListData::weight(self)
    }
}

impl ListData {
    /// Roughly the bytes it holds.
    pub fn weight(&self) -> usize {
        let row = |r: &Row| {
            size_of::<Row>()
                + r.title.len()
                + r.url.len()
                + r.snippet.len()
                + r.tags
                    .iter()
                    .map(|t| t.len() + size_of::<String>())
                    .sum::<usize>()
        };
        let chip = |c: &Chip| size_of::<Chip>() + c.name.len() + c.href.len();
        size_of::<Self>()
            + self.rows.iter().map(row).sum::<usize>()
            + self.chips.iter().map(chip).sum::<usize>()
            + self.prev.as_ref().map_or(0, String::len)
            + self.next.as_ref().map_or(0, String::len)
    }
}

#[derive(Debug)]
pub(super) struct Row {
    id: i64,
    title: String,
    url: String,
    status: &'static str,
    status_key: &'static str,
    tags: Vec<String>,
    snippet: String,
    /// The latest version has a thumbnail (a browser capture's).
    thumbnail: bool,
}

#[derive(Debug)]
pub(super) struct Chip {
    name: String,
    count: i64,
    href: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "list.html")]
pub(super) struct ListPage {
    page: PageCtx,
    q: String,
    tag: String,
    data: Arc<ListData>,
    notice: Option<&'static str>,
    bookmarklet: String,
    prefill_urls: String,
    prefill_tags: String,
    /// Lines of the add form that were not saved, with the reason, and how many were.
    problems: Vec<(String, String)>,
    saved: usize,
}

/// What the add form shows again: its text, and what became of the last submission.
#[derive(Default)]
pub(super) struct AddForm {
    urls: String,
    tags: String,
    problems: Vec<(String, String)>,
    saved: usize,
}

pub(super) fn status_key(s: &str) -> &'static str {
    match s {
        "queued" => "status.queued",
        "capturing" => "status.capturing",
        "ok" => "status.ok",
        _ => "status.failed",
    }
}

pub(super) fn row(l: &linksnap_store::Link, snippet: String) -> Row {
    Row {
        id: l.id.0,
        title: if l.title.is_empty() {
            l.url.as_str().to_owned()
        } else {
            l.title.clone()
        },
        url: l.url.as_str().to_owned(),
        status: l.status.as_str(),
        status_key: status_key(l.status.as_str()),
        tags: l.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        snippet,
        thumbnail: l.thumbnail,
    }
}

pub(super) fn list_href(q: &str, tag: &str, offset: usize) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if !q.is_empty() {
        s.append_pair("q", q);
    }
    if !tag.is_empty() {
        s.append_pair("tag", tag);
    }
    if offset > 0 {
        s.append_pair("offset", &offset.to_string());
    }
    format!("/?{}", s.finish())
}

pub(super) async fn list(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list_page(&s, &who, &headers, raw.as_deref(), AddForm::default()).await
}

pub(super) async fn list_page(
    s: &AppState,
    who: &Principal,
    headers: &HeaderMap,
    raw: Option<&str>,
    form: AddForm,
) -> Response {
    let params = query(raw);
    let path = format!("/?{}", raw.unwrap_or(""));
    let page = ctx(headers, who, &path);
    let q = field(&params, "q").trim().to_owned();
    let tag = field(&params, "tag").trim().to_owned();
    let offset: usize = field(&params, "offset").parse().unwrap_or(0);
    // Keyed by what the data depends on, not the raw query: `/?added=1` and the add
    // page's `/add?url=…` show the same list as `/`.
    let data = s
        .read_cache
        .get_or_compute(
            &s.library,
            "list-page",
            &list_href(&q, &tag, offset),
            || list_data(&s.library, &q, &tag, offset),
        )
        .await;
    let (data, outcome) = match data {
        Ok(d) => d,
        Err((status, message)) => return error_page(page, status, message),
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let mut response = render(&ListPage {
        page,
        q,
        tag,
        data,
        notice: (field(&params, "added") == "1").then_some("add.saved"),
        prefill_urls: form.urls,
        prefill_tags: form.tags,
        problems: form.problems,
        saved: form.saved,
        bookmarklet: format!(
            "javascript:location.href='http://{host}/add?url='+encodeURIComponent(location.href)+'&tags='"
        ),
    });
    response.headers_mut().insert(
        crate::cache::CACHE_HEADER,
        HeaderValue::from_static(outcome.as_str()),
    );
    response
}

/// The rows, count, chips and page links of the list page for a search text `q`, a tag
/// expression and an offset.
pub(super) async fn list_data(
    library: &linksnap_store::Library,
    q: &str,
    tag: &str,
    offset: usize,
) -> Result<Arc<ListData>, (StatusCode, String)> {
    let failed = |e: linksnap_store::StoreError| match e.fault() {
        Some(fault) => (
            crate::error::fault_status(fault).0,
            fault.explain().to_owned(),
        ),
        None => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let mut filter = Filter::default();
    if !tag.is_empty() {
        let e =
            TagExpr::parse(tag).map_err(|e| (StatusCode::BAD_REQUEST, format!("{tag}: {e}")))?;
        filter.tags.push(e);
    }
    let (rows, total) = if q.is_empty() {
        let (links, total) = library
            .list_page(&filter, PAGE_SIZE, offset)
            .await
            .map_err(failed)?;
        (links.iter().map(|l| row(l, String::new())).collect(), total)
    } else {
        let hits = library
            .search(q, &filter, PAGE_SIZE)
            .await
            .map_err(failed)?;
        let n = hits.len() as i64;
        (
            hits.into_iter().map(|h| row(&h.link, h.snippet)).collect(),
            n,
        )
    };
    // Chips: the top-level tags, and the ones right under the tag filtered by.
    let mut nodes = library.tag_children(None).await.unwrap_or_default();
    if !tag.is_empty()
        && !tag.contains([' ', '(', ')', '"'])
        && let Ok(parent) = TagName::parse(tag)
    {
        nodes.extend(
            library
                .tag_children(Some(&parent))
                .await
                .unwrap_or_default(),
        );
    }
    let chips = nodes
        .into_iter()
        .take(60)
        .map(|n| Chip {
            href: list_href(q, &n.name, 0),
            active: n.key == tag.to_lowercase(),
            name: n.name,
            count: n.total,
        })
        .collect();
    let prev =
        (q.is_empty() && offset > 0).then(|| list_href(q, tag, offset.saturating_sub(PAGE_SIZE)));
    let next = (q.is_empty() && (offset + PAGE_SIZE) < usize::try_from(total).unwrap_or(0))
        .then(|| list_href(q, tag, offset + PAGE_SIZE));
    Ok(Arc::new(ListData {
        rows,
        total,
        chips,
        prev,
        next,
    }))
}

pub(super) fn parse_tag_list(raw: &str) -> Result<Vec<TagName>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| TagName::parse(t).map_err(|e| format!("{t}: {e}")))
        .collect()
}

pub(super) async fn add(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/");
    let tags = match parse_tag_list(field(&f, "tags")) {
        Ok(t) => t,
        Err(e) => return error_page(page, StatusCode::BAD_REQUEST, e),
    };
    let lines: Vec<&str> = field(&f, "urls")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() || lines.len() > MAX_URLS_PER_ADD {
        return error_page(
            page,
            StatusCode::BAD_REQUEST,
            format!("give 1 to {MAX_URLS_PER_ADD} URLs, one per line"),
        );
    }
    // The good lines are saved; the bad ones come back in the form with their reasons.
    let mut problems = Vec::new();
    let mut urls = Vec::new();
    for l in &lines {
        match NormalizedUrl::parse(l, s.library.url_rules()) {
            Ok(u) => urls.push(u),
            Err(e) => problems.push(((*l).to_owned(), e.to_string())),
        }
    }
    for u in &urls {
        match s.library.add_queued(u, &tags, None).await {
            Ok((id, Some(_))) => s.notify(id.0, "queued"),
            Ok((_, None)) => {}
            Err(e) => {
                // The lines saved so far stay saved; say so with the fault.
                let _ = s.library.commit_index().await;
                return failed_page(page, StatusCode::INTERNAL_SERVER_ERROR, &e);
            }
        }
    }
    if let Err(e) = s.library.commit_index().await {
        return failed_page(page, StatusCode::INTERNAL_SERVER_ERROR, &e);
    }
    if !urls.is_empty() {
        s.wake.notify_waiters();
    }
    if problems.is_empty() {
        return Redirect::to("/?added=1").into_response();
    }
    let form = AddForm {
        urls: problems
            .iter()
            .map(|(l, _)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        tags: field(&f, "tags").to_owned(),
        saved: urls.len(),
        problems,
    };
    let mut r = list_page(&s, &who, &headers, None, form).await;
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

pub(super) async fn bulk_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/");
    let ids: Vec<LinkId> = f
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| v.parse().ok().map(LinkId))
        .collect();
    let tags = match parse_tag_list(field(&f, "tag")) {
        Ok(t) if !t.is_empty() && !ids.is_empty() => t,
        Ok(_) => return Redirect::to("/").into_response(),
        Err(e) => return error_page(page, StatusCode::BAD_REQUEST, e),
    };
    let (add, remove) = if field(&f, "action") == "remove" {
        (vec![], tags)
    } else {
        (tags, vec![])
    };
    match s.library.retag(&ids, &add, &remove).await {
        Ok(()) => Redirect::to(
            &headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| {
                    r.find("://")
                        .and_then(|i| r[i + 3..].find('/').map(|j| &r[i + 3 + j..]))
                })
                .map_or_else(|| "/".to_owned(), safe_next),
        )
        .into_response(),
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

pub(super) async fn add_page(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    // The bookmarklet lands here: the add form, filled in; saving is one click (a GET
    // never changes anything).
    let params = query(raw.as_deref());
    let prefill = AddForm {
        urls: field(&params, "url").to_owned(),
        tags: field(&params, "tags").to_owned(),
        ..AddForm::default()
    };
    list_page(&s, &who, &headers, None, prefill).await
}
