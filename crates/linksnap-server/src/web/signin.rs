//! Signing in and out, and the language switch.

use super::*;

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginPage {
    page: PageCtx,
    next: String,
    error: Option<&'static str>,
    /// What just happened (a password change), as a catalogue key.
    notice: Option<&'static str>,
}

pub(super) fn login_form(
    headers: &HeaderMap,
    next: &str,
    error: Option<&'static str>,
    status: StatusCode,
) -> Response {
    login_form_with(headers, next, error, None, status)
}

pub(super) fn login_form_with(
    headers: &HeaderMap,
    next: &str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
    status: StatusCode,
) -> Response {
    let token = cookie(headers, PRELOGIN_COOKIE)
        .filter(|t| t.len() == 64)
        .map_or_else(
            || linksnap_store::secrets::random_hex().unwrap_or_default(),
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

pub(super) async fn login_page(headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
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

pub(super) async fn login(
    State(s): State<AppState>,
    client: Option<Extension<crate::middleware::ClientIp>>,
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
    let user = match s.accounts.check_password(name, field(&f, "password")).await {
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
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let session = match s.accounts.create_session(user.id).await {
        Ok(x) => x,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let max_age = linksnap_store::accounts::users::SESSION_LIFETIME.as_secs() as i64;
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

pub(super) async fn logout(Scoped(s): Scoped, Extension(who): Extension<Principal>) -> Response {
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

pub(super) async fn switch_lang(Path(code): Path<String>, RawQuery(raw): RawQuery) -> Response {
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
