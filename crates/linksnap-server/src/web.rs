//! The web UI: server-rendered pages (askama), a little JavaScript for live progress, in
//! English and Simplified Chinese. Every page needs a signed-in user; every form carries
//! the session's CSRF token (checked in `session::web_auth`).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, RawForm, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Router};
use linksnap_store::{EditLink, Filter, LinkId, NormalizedUrl, TagExpr, TagName};

use crate::AppState;
use crate::i18n::Lang;
use crate::json::rfc3339;
use crate::session::Scoped;
use crate::session::{
    LANG_COOKIE, PRELOGIN_COOKIE, Principal, SESSION_COOKIE, cookie, same_secret, set_cookie,
};

/// Links per page of the list.
pub const PAGE_SIZE: usize = 50;
/// Most URLs one add form may carry.
pub const MAX_URLS_PER_ADD: usize = 1000;

/// What every page needs.
pub struct PageCtx {
    pub lang: Lang,
    pub csrf: String,
    pub signed_in: bool,
    pub user: String,
    /// This page's path and query (where the language switch comes back to).
    pub path: String,
}

impl PageCtx {
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    /// The status badges' labels, for the live-progress script.
    pub fn status_labels(&self) -> String {
        serde_json::json!({
            "queued": self.t("status.queued"),
            "capturing": self.t("status.capturing"),
            "ok": self.t("status.ok"),
            "failed": self.t("status.failed"),
        })
        .to_string()
    }
}

fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

fn ctx(headers: &HeaderMap, who: &Principal, path: &str) -> PageCtx {
    let (csrf, user) = match who {
        Principal::Session { csrf, user, .. } => (csrf.clone(), user.name.clone()),
        _ => (String::new(), String::new()),
    };
    PageCtx {
        lang: lang_of(headers),
        csrf,
        signed_in: true,
        user,
        path: path.to_owned(),
    }
}

fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (
            [(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            )],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The app's own pages: only their own script and style, frames only from this origin
/// (the snapshot view, itself sandboxed), no plugins, not framable by other sites.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'self'";

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: PageCtx,
    message: String,
}

fn error_page(page: PageCtx, status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = render(&ErrorPage {
        page,
        message: message.into(),
    });
    *r.status_mut() = status;
    r
}

/// The page for a failed change: `status` and the error's words, unless a fault of the
/// machine is behind it (the disk is full, the database stayed locked), which is answered
/// as the API answers it (507 or 503 with `Retry-After`), never as the request's fault.
fn failed_page(page: PageCtx, status: StatusCode, e: &impl crate::api::MaybeFault) -> Response {
    let Some(fault) = e.fault() else {
        return error_page(page, status, e.to_string());
    };
    tracing::warn!(error = %e, "page not served: {}", fault.explain());
    let (status, _, retry) = crate::api::fault_status(fault);
    let mut r = error_page(page, status, fault.explain());
    r.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(retry));
    r
}

/// Routes that need a signed-in user.
pub(crate) fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(list))
        .route("/links", post(add))
        .route("/links/bulk-tag", post(bulk_tag))
        .route("/links/{id}", get(link))
        .route("/links/{id}/edit", post(edit))
        .route("/links/{id}/recapture", post(recapture))
        .route("/links/{id}/delete", post(delete))
        .route("/links/{id}/share", post(share))
        .route("/links/{id}/shares/{share}/revoke", post(unshare))
        .route("/links/{id}/text", get(text))
        .route("/links/{id}/diff", get(diff))
        .route("/tags", get(tags))
        .route("/tags/rename", post(rename_tag))
        .route("/tags/merge", post(merge_tag))
        .route("/tags/delete", post(delete_tag))
        .route("/settings", get(settings))
        .route("/settings/tokens", post(create_token))
        .route("/settings/tokens/revoke", post(revoke_token))
        .route("/settings/password", post(change_password))
        .route("/settings/users", post(add_user))
        .route("/settings/users/remove", post(remove_user))
        .route("/io", get(io_page))
        .route("/io/import", post(io_import))
        .route("/admin/net", get(admin_net))
        .route("/admin/net/ban", post(admin_ban))
        .route("/admin/net/unban", post(admin_unban))
        .route("/add", get(add_page))
        .route("/logout", post(logout))
        .route("/events", get(events))
}

/// Routes anyone may reach.
pub(crate) fn public_routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/lang/{code}", get(switch_lang))
        .route(
            "/static/app.css",
            get(|| async { asset("text/css", include_str!("../static/app.css")) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript", include_str!("../static/app.js")) }),
        )
}

fn asset(media_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A form's fields, in order.
type Form = Vec<(String, String)>;

fn form(raw: &[u8]) -> Form {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
    f.iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn query(raw: Option<&str>) -> Vec<(String, String)> {
    form(raw.unwrap_or("").as_bytes())
}

/// Only a path on this site: `next` resolved against this origin the way a browser
/// resolves a `Location` (tabs and newlines dropped, `\\` read as `/`, percent-encoding
/// kept), accepted only when it stays on this origin, and re-serialised (so what the
/// browser is sent is exactly what was checked). Anything else is `/`.
fn safe_next(next: &str) -> String {
    const HERE: &str = "http://linksnap.invalid/";
    let (Ok(base), true) = (url::Url::parse(HERE), next.starts_with('/')) else {
        return "/".to_owned();
    };
    match base.join(next) {
        Ok(u) if u.origin() == base.origin() => {
            let mut out = u.path().to_owned();
            if let Some(q) = u.query() {
                out.push('?');
                out.push_str(q);
            }
            out
        }
        _ => "/".to_owned(),
    }
}

// ---- sign-in -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: PageCtx,
    next: String,
    error: Option<&'static str>,
    /// What just happened (a password change), as a catalogue key.
    notice: Option<&'static str>,
}

fn login_form(
    headers: &HeaderMap,
    next: &str,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    login_form_with(headers, next, error, None, status)
}

fn login_form_with(
    headers: &HeaderMap,
    next: &str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let token = cookie(headers, PRELOGIN_COOKIE)
        .filter(|t| t.len() == 64)
        .map_or_else(
            || linksnap_store::auth::random_hex().unwrap_or_default(),
            str::to_owned,
        );
    let page = PageCtx {
        lang: lang_of(headers),
        csrf: token.clone(),
        signed_in: false,
        user: String::new(),
        path: format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
    };
    let mut r = render(&LoginPage {
        page,
        next: next.to_owned(),
        error,
        notice,
    });
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&set_cookie(PRELOGIN_COOKIE, &token, 3600, true, false)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login_page(headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let q = query(raw.as_deref());
    let notice = match field(&q, "done") {
        "password-kept" => Some("login.password_kept"),
        "password-revoked" => Some("login.password_revoked"),
        _ => None,
    };
    login_form_with(
        &headers,
        &safe_next(field(&q, "next")),
        None,
        notice,
        StatusCode::OK,
    )
}

async fn login(
    State(s): State<AppState>,
    client: Option<Extension<crate::netapi::ClientIp>>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let next = safe_next(field(&f, "next"));
    let expected = cookie(&headers, PRELOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same_secret(field(&f, "csrf"), expected) {
        return login_form(&headers, &next, Some("login.failed"), StatusCode::FORBIDDEN);
    }
    // Unix-socket clients share one allowance.
    let ip = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0);
    if s.login_limiter.check_key(&ip).is_err() {
        return login_form(
            &headers,
            &next,
            Some("login.limited"),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    // An account that failed too often waits, whichever address asks (its password is
    // not even checked meanwhile).
    let name = field(&f, "name");
    if let Err(wait) = s.login_backoff.check(name, std::time::Instant::now()) {
        tracing::info!(%ip, wait_secs = wait.as_secs_f64(), "sign-in held back for the account");
        let mut r = login_form(
            &headers,
            &next,
            Some("login.limited"),
            StatusCode::TOO_MANY_REQUESTS,
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
        );
        return r;
    }
    let user = match s.library.check_password(name, field(&f, "password")).await {
        Ok(Some(u)) => {
            s.login_backoff.succeeded(name);
            u
        }
        Ok(None) => {
            s.login_backoff.failed(name, std::time::Instant::now());
            tracing::info!(%ip, "failed sign-in");
            return login_form(
                &headers,
                &next,
                Some("login.failed"),
                StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let session = match s.accounts.create_session(user.id).await {
        Ok(x) => x,
        Err(e) => return crate::api::ApiError::from(e).into_response(),
    };
    let max_age = linksnap_store::auth::SESSION_LIFETIME.as_secs() as i64;
    let mut r = Redirect::to(&next).into_response();
    for c in [
        set_cookie(
            SESSION_COOKIE,
            &session.secret,
            max_age,
            true,
            s.secure_cookies,
        ),
        set_cookie(PRELOGIN_COOKIE, "", 0, true, false),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

async fn logout(Scoped(s): Scoped, Extension(who): Extension<Principal>) -> Response {
    if let Principal::Session { secret, .. } = &who {
        let _ = s.accounts.end_session(secret).await;
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", 0, true, s.secure_cookies))
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn switch_lang(Path(code): Path<String>, RawQuery(raw): RawQuery) -> Response {
    let q = query(raw.as_deref());
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    let mut r = Redirect::to(&safe_next(field(&q, "next"))).into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        LANG_COOKIE,
        lang.code(),
        365 * 24 * 3600,
        false,
        false,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

// ---- the list --------------------------------------------------------------------------

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
struct Row {
    id: i64,
    title: String,
    url: String,
    status: &'static str,
    status_key: &'static str,
    tags: Vec<String>,
    snippet: String,
}

#[derive(Debug)]
struct Chip {
    name: String,
    count: i64,
    href: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
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
struct AddForm {
    urls: String,
    tags: String,
    problems: Vec<(String, String)>,
    saved: usize,
}

fn status_key(s: &str) -> &'static str {
    match s {
        "queued" => "status.queued",
        "capturing" => "status.capturing",
        "ok" => "status.ok",
        _ => "status.failed",
    }
}

fn row(l: &linksnap_store::Link, snippet: String) -> Row {
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
    }
}

fn list_href(q: &str, tag: &str, offset: usize) -> String {
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

async fn list(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list_page(&s, &who, &headers, raw.as_deref(), AddForm::default()).await
}

async fn list_page(
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
async fn list_data(
    library: &linksnap_store::Library,
    q: &str,
    tag: &str,
    offset: usize,
) -> Result<Arc<ListData>, (StatusCode, String)> {
    let failed = |e: linksnap_store::StoreError| match e.fault() {
        Some(fault) => (
            crate::api::fault_status(fault).0,
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

fn parse_tag_list(raw: &str) -> Result<Vec<TagName>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| TagName::parse(t).map_err(|e| format!("{t}: {e}")))
        .collect()
}

async fn add(
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

async fn bulk_tag(
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

async fn add_page(
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

// ---- one link ---------------------------------------------------------------------------

struct VersionRow {
    version: i64,
    captured_at: String,
    http_status: u16,
    bytes: i64,
    resources_inlined: i64,
    resources_failed: i64,
}

struct ResourceView {
    url: String,
    kind: String,
    outcome: String,
    bytes: String,
    ok: bool,
}

#[derive(Template)]
#[template(path = "link.html")]
struct LinkPage {
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

struct ShareRow {
    id: i64,
    prefix: String,
    created: String,
}

async fn share(
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

async fn unshare(
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

fn id_of(raw: &str) -> Option<LinkId> {
    raw.parse().ok().map(LinkId)
}

async fn link(
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

async fn link_page(
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

async fn edit(
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

async fn recapture(
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

async fn delete(
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
struct TextPage {
    page: PageCtx,
    id: i64,
    title: String,
    version: i64,
    paragraphs: Vec<String>,
}

async fn text(
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
struct DiffPage {
    page: PageCtx,
    id: i64,
    title: String,
    from: i64,
    to: i64,
    same: bool,
    lines: Vec<(&'static str, String)>,
}

async fn diff(
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

// ---- tags -------------------------------------------------------------------------------

struct TagRow {
    name: String,
    leaf: String,
    depth: f32,
    count: i64,
}

#[derive(Template)]
#[template(path = "tags.html")]
struct TagsPage {
    page: PageCtx,
    tags: Vec<TagRow>,
}

async fn tags(
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

async fn tag_action(s: &AppState, page: PageCtx, f: &[(String, String)], action: &str) -> Response {
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

async fn rename_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "rename").await
}

async fn merge_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "merge").await
}

async fn delete_tag(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    tag_action(&s, ctx(&headers, &who, "/tags"), &form(&raw), "delete").await
}

// ---- settings ---------------------------------------------------------------------------

struct TokenRow {
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    scopes: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: PageCtx,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    admin: bool,
    users: Vec<(String, bool)>,
    mail: Vec<MailRow>,
    /// (share id, link id, link title or URL, version shown, prefix, created).
    shares: Vec<(i64, i64, String, String, String, String)>,
    /// The signed-in user (not removable from here).
    me: String,
}

/// A mailbox's figures as the settings page shows them.
struct MailRow {
    name: String,
    last_poll: String,
    last_ok: String,
    last_error: Option<String>,
    polls: i64,
    errors: i64,
    ingested: i64,
    kept: i64,
    links_added: i64,
    /// (sender, subject, reason) of the latest kept messages.
    kept_messages: Vec<(String, String, String)>,
}

async fn settings_page(
    s: &AppState,
    page: PageCtx,
    who: &Principal,
    new_token: Option<String>,
) -> Response {
    let never = page.t("settings.never");
    // A user sees the tokens that act for them; the local CLI sees all.
    let tokens: Vec<_> = s
        .accounts
        .tokens()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| who.acting_user().is_none_or(|me| t.user_id == Some(me)))
        .collect();
    let admin = is_admin(who);
    let users = if admin {
        s.accounts
            .users()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|u| (u.name, u.is_admin))
            .collect()
    } else {
        Vec::new()
    };
    // Mailboxes are the operator's configuration: administrators see every library's,
    // a user their own.
    let mut statuses = Vec::new();
    let libraries = if admin {
        s.libs.all().await
    } else {
        vec![s.library.clone()]
    };
    for library in libraries {
        statuses.extend(library.mail_status().await.unwrap_or_default());
    }
    let mail = statuses
        .into_iter()
        .map(|m| MailRow {
            last_poll: m.last_poll_at.map_or_else(|| never.to_owned(), rfc3339),
            last_ok: m.last_ok_at.map_or_else(|| never.to_owned(), rfc3339),
            last_error: m.last_error,
            polls: m.polls,
            errors: m.errors,
            ingested: m.messages_ingested,
            kept: m.messages_kept,
            links_added: m.links_added,
            kept_messages: m
                .kept
                .into_iter()
                .map(|k| (k.sender, k.subject, k.reason))
                .collect(),
            name: m.mailbox,
        })
        .collect();
    let mut shares = Vec::new();
    for share in s.library.all_shares().await.unwrap_or_default() {
        let title = match s.library.get(share.link).await {
            Ok(l) if !l.title.is_empty() => l.title,
            Ok(l) => l.url.to_string(),
            Err(_) => continue,
        };
        shares.push((
            share.id,
            share.link.0,
            title,
            share
                .version
                .map_or_else(|| page.t("share.latest").to_owned(), |v| format!("v{v}")),
            share.prefix,
            rfc3339(share.created_at),
        ));
    }
    let me = who.user().map(|u| u.name.clone()).unwrap_or_default();
    render(&SettingsPage {
        mail,
        shares,
        me,
        tokens: tokens
            .into_iter()
            .map(|k| TokenRow {
                name: k.name,
                prefix: k.prefix,
                created: rfc3339(k.created_at),
                last_used: k.last_used_at.map_or_else(|| never.to_owned(), rfc3339),
                scopes: k.scopes.names().join(", "),
            })
            .collect(),
        page,
        new_token,
        admin,
        users,
    })
}

async fn settings(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let page = ctx(&headers, &who, "/settings");
    settings_page(&s, page, &who, None).await
}

async fn create_token(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/settings");
    // The boxes ticked on the form; only an administrator's token may be an operator's.
    let ticked: Vec<&str> = f
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .filter(|v| *v != "admin" || is_admin(&who))
        .collect();
    let scopes = match linksnap_store::Scopes::parse(&ticked.join(",")) {
        Ok(sc) => sc,
        Err(_) => {
            return error_page(
                page,
                StatusCode::BAD_REQUEST,
                "choose at least one scope (read, write, share)",
            );
        }
    };
    match s
        .accounts
        .create_token(field(&f, "name"), who.acting_user(), scopes)
        .await
    {
        Ok((_, secret)) => settings_page(&s, page, &who, Some(secret)).await,
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

async fn revoke_token(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/settings");
    // A user revokes only their own tokens (names are unique per user).
    let name = field(&f, "name");
    match s.accounts.revoke_token(name, who.acting_user()).await {
        Ok(()) => Redirect::to("/settings").into_response(),
        Err(linksnap_store::TokenError::NoToken(n)) => {
            error_page(page, StatusCode::NOT_FOUND, format!("no token named `{n}`"))
        }
        Err(e) => failed_page(page, StatusCode::BAD_REQUEST, &e),
    }
}

/// A signed-in user's new password: the current one proves it is them. Every session
/// ends (this one too: off to sign in again); API tokens are revoked only when asked, and
/// the sign-in page says which happened.
async fn change_password(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let f = form(&raw);
    let page = ctx(&headers, &who, "/settings");
    let Some(user) = who.user().cloned() else {
        return error_page(
            page,
            StatusCode::BAD_REQUEST,
            "only a signed-in user changes their password here; use `linksnap user passwd`",
        );
    };
    match s
        .accounts
        .check_password(&user.name, field(&f, "current"))
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            let t = page.t("settings.password_wrong").to_owned();
            return error_page(page, StatusCode::FORBIDDEN, t);
        }
        Err(e) => return failed_page(page, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
    if let Err(e) = s
        .accounts
        .set_password(&user.name, field(&f, "password"))
        .await
    {
        return failed_page(page, StatusCode::BAD_REQUEST, &e);
    }
    let done = if field(&f, "revoke_tokens") == "on" {
        if let Err(e) = s.accounts.revoke_tokens_of(user.id).await {
            return failed_page(page, StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
        "password-revoked"
    } else {
        "password-kept"
    };
    Redirect::to(&format!("/login?done={done}")).into_response()
}

async fn add_user(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let (page, f) = match admin_form(&who, &headers, &raw, "/settings", "adds users") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let created = s
        .accounts
        .create_user(
            field(&f, "name"),
            field(&f, "password"),
            field(&f, "admin") == "1",
        )
        .await;
    back_to(page, created, "/settings", StatusCode::BAD_REQUEST)
}

/// Removes a user (administrators; not themselves). Their library stays on disk, in
/// `users/ID/` of the data directory, for the operator to keep or delete.
async fn remove_user(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let (page, f) = match admin_form(&who, &headers, &raw, "/settings", "removes users") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let name = field(&f, "name").trim();
    if who
        .user()
        .is_some_and(|u| u.name.eq_ignore_ascii_case(name))
    {
        return error_page(page, StatusCode::BAD_REQUEST, "you cannot remove yourself");
    }
    let removed = s.accounts.remove_user(name).await;
    back_to(page, removed, "/settings", StatusCode::BAD_REQUEST)
}

/// An administrator's form: the page it came from and its fields, or the 403 page saying
/// that only an administrator does `what`.
fn admin_form(
    who: &Principal,
    headers: &HeaderMap,
    raw: &[u8],
    path: &str,
    what: &str,
) -> Result<(PageCtx, Form), Box<Response>> {
    let page = ctx(headers, who, path);
    if !is_admin(who) {
        return Err(Box::new(error_page(
            page,
            StatusCode::FORBIDDEN,
            format!("only an administrator {what}"),
        )));
    }
    Ok((page, form(raw)))
}

/// Back to `to` when the form's work is done, else its error with `status`.
fn back_to<T, E: crate::api::MaybeFault>(
    page: PageCtx,
    result: Result<T, E>,
    to: &str,
    status: StatusCode,
) -> Response {
    match result {
        Ok(_) => Redirect::to(to).into_response(),
        Err(e) => failed_page(page, status, &e),
    }
}

// ---- import and export ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "io.html")]
struct IoPage {
    page: PageCtx,
}

async fn io_page(Extension(who): Extension<Principal>, headers: HeaderMap) -> Response {
    render(&IoPage {
        page: ctx(&headers, &who, "/io"),
    })
}

/// How often an import reports progress: every this many bytes (and at the end).
const IMPORT_PROGRESS_STEP: u64 = 256 * 1024;

/// Imports the request body into the principal's library, answering NDJSON as it goes:
/// `{"read", "total"}` lines, then `{"done": true, "added", "existing", "skipped_count",
/// "skipped"}` or `{"error"}`. The import is one transaction, as everywhere.
async fn io_import(
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
        let last = match crate::transfer::import_body(&s, body, format, capture, folders, report)
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

// ---- network (administrators) ------------------------------------------------------------

/// How often the network page reloads itself.
pub const NET_PAGE_REFRESH_SECS: u64 = 5;

#[derive(Template)]
#[template(path = "admin_net.html")]
struct NetPage {
    page: PageCtx,
    refresh_secs: u64,
    stats: crate::netstat::NetStats,
    /// (range, until, reason).
    bans: Vec<(String, String, String)>,
}

fn is_admin(who: &Principal) -> bool {
    who.user().is_some_and(|u| u.is_admin) || matches!(who, Principal::Local)
}

async fn admin_net(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let page = ctx(&headers, &who, "/admin/net");
    if !is_admin(&who) {
        return error_page(
            page,
            StatusCode::FORBIDDEN,
            "only an administrator sees this",
        );
    }
    let bans = s
        .accounts
        .bans()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|b| {
            (
                b.net.to_string(),
                b.expires_at.map_or_else(|| "∞".to_owned(), rfc3339),
                if b.automatic {
                    format!("[auto] {}", b.reason)
                } else {
                    b.reason
                },
            )
        })
        .collect();
    render(&NetPage {
        stats: crate::netapi::stats(&s),
        refresh_secs: NET_PAGE_REFRESH_SECS,
        page,
        bans,
    })
}

async fn admin_ban(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let (page, f) = match admin_form(&who, &headers, &raw, "/admin/net", "bans") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let (net, expires_at) = match crate::config::parse_ban(field(&f, "net"), Some(field(&f, "for")))
    {
        Ok(b) => b,
        Err(e) => return error_page(page, StatusCode::BAD_REQUEST, e),
    };
    let banned = s
        .accounts
        .ban(net, expires_at, field(&f, "reason").trim(), false)
        .await;
    back_to(
        page,
        banned,
        "/admin/net",
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

async fn admin_unban(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    RawForm(raw): RawForm,
) -> Response {
    let (page, f) = match admin_form(&who, &headers, &raw, "/admin/net", "lifts bans") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let net = match crate::config::parse_net(field(&f, "net").trim()) {
        Ok(n) => n,
        Err(e) => return error_page(page, StatusCode::BAD_REQUEST, e),
    };
    let lifted = s.accounts.unban(net).await;
    back_to(
        page,
        lifted,
        "/admin/net",
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

// ---- live progress ----------------------------------------------------------------------

/// Most links one event stream reports the current state of when it opens.
pub const MAX_WATCHED: usize = 200;

fn link_event(e: &LinkEvent) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("link")
        .data(serde_json::to_string(e).unwrap_or_default()))
}

/// A link's capture state changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkEvent {
    /// Whose library (`library_key`): a stream only shows its own principal's.
    #[serde(skip)]
    pub library: std::sync::Arc<str>,
    pub id: i64,
    pub status: &'static str,
}

/// Server-Sent Events: one `link` event per status change, and a comment every
/// `sse_heartbeat` so that a browser that vanished is found out (the write fails and the
/// stream is dropped) and proxies keep the stream open.
async fn events(
    Scoped(s): Scoped,
    RawQuery(raw): RawQuery,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    // Subscribed first, then the current state of the links the page asks about: a change
    // between the page's rendering and this stream is never missed.
    let rx = s.events.subscribe();
    let params = query(raw.as_deref());
    let mut current = Vec::new();
    for id in field(&params, "ids")
        .split(',')
        .filter_map(|i| i.trim().parse::<i64>().ok())
        .take(MAX_WATCHED)
    {
        if let Ok(l) = s.library.get(LinkId(id)).await {
            current.push(LinkEvent {
                library: crate::library_key(&s.library),
                id,
                status: l.status.as_str(),
            });
        }
    }
    let live = crate::SseGuard::new(s.sse_streams.clone());
    let stopping = s.stopping.clone();
    let first = futures_util::stream::iter(current.iter().map(link_event).collect::<Vec<_>>());
    let mine = crate::library_key(&s.library);
    let changes = futures_util::stream::unfold(
        (rx, live, stopping, mine),
        |(mut rx, live, mut stopping, mine)| async move {
            loop {
                let next = tokio::select! {
                    e = rx.recv() => e,
                    // A shutdown ends the stream, so the connection can close.
                    _ = stopping.wait_for(|s| *s) => return None,
                };
                match next {
                    // Another user's links are not this stream's business.
                    Ok(e) if e.library != mine => {}
                    Ok(e) => return Some((link_event(&e), (rx, live, stopping, mine))),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::StreamExt::chain(first, changes);
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(s.sse_heartbeat.max(Duration::from_millis(100)))
            .text("heartbeat"),
    )
}

#[cfg(test)]
mod tests {
    /// Every `page.t("…")` key used in a template is in the catalogue.
    #[test]
    fn templates_use_only_catalogued_strings() {
        let templates = [
            include_str!("../templates/base.html"),
            include_str!("../templates/login.html"),
            include_str!("../templates/list.html"),
            include_str!("../templates/link.html"),
            include_str!("../templates/text.html"),
            include_str!("../templates/diff.html"),
            include_str!("../templates/tags.html"),
            include_str!("../templates/settings.html"),
            include_str!("../templates/admin_net.html"),
            include_str!("../templates/io.html"),
            include_str!("../templates/error.html"),
        ];
        let mut used = 0;
        for t in templates {
            for part in t.split("page.t(\"").skip(1) {
                let key = part.split('"').next().unwrap();
                assert!(
                    crate::i18n::CATALOGUE.iter().any(|(k, _, _)| *k == key),
                    "{key} is not in the catalogue"
                );
                used += 1;
            }
        }
        assert!(used > 50, "{used}");
        for key in [
            "login.failed",
            "login.limited",
            "add.saved",
            "status.ok",
            "status.failed",
            "status.queued",
            "status.capturing",
        ] {
            assert!(
                crate::i18n::CATALOGUE.iter().any(|(k, _, _)| *k == key),
                "{key}"
            );
        }
    }

    #[test]
    fn sign_in_only_sends_people_back_to_this_site() {
        assert_eq!(super::safe_next("/links/3?v=2"), "/links/3?v=2");
        assert_eq!(super::safe_next("//evil.example/"), "/");
        assert_eq!(super::safe_next("https://evil.example/"), "/");
        assert_eq!(super::safe_next("/\\evil.example"), "/");
        // What browsers drop or rewrite before they follow a Location: tab, newline,
        // backslash; and encoded forms, which stay encoded (a path, not a host).
        for evil in [
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\n/evil.example",
            "\\/evil.example",
            "/\\/evil.example",
            "https:evil.example",
            "javascript:alert(1)",
        ] {
            assert_eq!(super::safe_next(evil), "/", "{evil:?}");
        }
        assert_eq!(
            super::safe_next("/%2F%2Fevil.example/"),
            "/%2F%2Fevil.example/"
        );
        assert_eq!(super::safe_next("/%09/x"), "/%09/x");
        assert_eq!(super::safe_next("/a/../b?x=1#frag"), "/b?x=1");
    }
}
