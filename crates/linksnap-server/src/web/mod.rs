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

use crate::access::session::Scoped;
use crate::i18n::Lang;
use crate::json::rfc3339;
use crate::state::AppState;
mod admin;
mod events;
mod io_pages;
mod link;
mod list;
mod settings;
mod signin;
mod tags;

use admin::*;
pub use events::MAX_WATCHED;
use events::*;
use io_pages::*;
use link::*;
pub use list::ListData;
use list::*;
use settings::*;
use signin::*;
use tags::*;

use crate::access::session::{
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

pub use crate::middleware::PAGE_CSP;

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
fn failed_page(page: PageCtx, status: StatusCode, e: &impl crate::error::MaybeFault) -> Response {
    let Some(fault) = e.fault() else {
        return error_page(page, status, e.to_string());
    };
    tracing::warn!(error = %e, "page not served: {}", fault.explain());
    let (status, _, retry) = crate::error::fault_status(fault);
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
            get(|| async { asset("text/css", include_str!("../../static/app.css")) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript", include_str!("../../static/app.js")) }),
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

#[cfg(test)]
mod tests {
    /// Every `page.t("…")` key used in a template is in the catalogue.
    #[test]
    fn templates_use_only_catalogued_strings() {
        let templates = [
            include_str!("../../templates/base.html"),
            include_str!("../../templates/login.html"),
            include_str!("../../templates/list.html"),
            include_str!("../../templates/link.html"),
            include_str!("../../templates/text.html"),
            include_str!("../../templates/diff.html"),
            include_str!("../../templates/tags.html"),
            include_str!("../../templates/settings.html"),
            include_str!("../../templates/admin_net.html"),
            include_str!("../../templates/io.html"),
            include_str!("../../templates/error.html"),
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
