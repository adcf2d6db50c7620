//! Settings: API tokens, password, share links, users (administrators), mailboxes.

use super::*;

pub(super) struct TokenRow {
    name: String,
    prefix: String,
    created: String,
    last_used: String,
    scopes: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
pub(super) struct SettingsPage {
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
pub(super) struct MailRow {
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

pub(super) async fn settings_page(
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

pub(super) async fn settings(
    Scoped(s): Scoped,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    let page = ctx(&headers, &who, "/settings");
    settings_page(&s, page, &who, None).await
}

pub(super) async fn create_token(
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

pub(super) async fn revoke_token(
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
pub(super) async fn change_password(
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

pub(super) async fn add_user(
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
pub(super) async fn remove_user(
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
pub(super) fn admin_form(
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
pub(super) fn back_to<T, E: crate::error::MaybeFault>(
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
