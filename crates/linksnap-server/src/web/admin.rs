//! The network page for administrators: connections, bans.

use super::*;

/// How often the network page reloads itself.
pub const NET_PAGE_REFRESH_SECS: u64 = 5;

#[derive(Template)]
#[template(path = "admin_net.html")]
pub(super) struct NetPage {
    page: PageCtx,
    refresh_secs: u64,
    stats: crate::net::netstat::NetStats,
    /// (range, until, reason).
    bans: Vec<(String, String, String)>,
}

pub(super) fn is_admin(who: &Principal) -> bool {
    who.user().is_some_and(|u| u.is_admin) || matches!(who, Principal::Local)
}

pub(super) async fn admin_net(
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

pub(super) async fn admin_ban(
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

pub(super) async fn admin_unban(
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
