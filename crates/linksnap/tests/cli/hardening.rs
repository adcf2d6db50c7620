//! Regression tests for the server-side holes of the security review (issue 18): request
//! bodies, the snapshot frame, response headers, Host names, caps. Each fails on the code
//! before its fix.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::serve::{Serve, http, token};
use crate::support::artifact_dir;

/// Writes `head` (a request's header block) and `body` on a new connection; returns the
/// connection (for more writes) without reading.
fn open_request(addr: &str, head: &str, body: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    c
}

/// The status line's code of the answer on `c`, read within `within` (None: no answer).
fn status_within(c: &mut TcpStream, within: Duration) -> Option<u16> {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

fn post_head(path: &str, len: usize, kind: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {kind}\r\ncontent-length: {len}\r\n{extra}\r\n"
    )
}

#[test]
fn request_bodies_are_limited_per_route_and_held_within_one_budget() {
    let dir = artifact_dir("hardening-bodies");
    let s = Serve::start(
        &dir,
        &[
            "--workers",
            "0",
            "--form-limit",
            "1000",
            "--body-limit",
            "4096",
            "--body-budget",
            "4096",
            "--body-budget-wait",
            "2s",
        ],
    );
    let tok = token(&dir, "t");
    let form = "application/x-www-form-urlencoded";
    // Sign-in, without an account: a body declared over the form limit is refused before
    // a byte of it is sent (it used to be read whole, up to 64 MiB, before any check).
    let mut c = open_request(&s.addr, &post_head("/login", 64 << 20, form, ""), b"");
    assert_eq!(status_within(&mut c, Duration::from_secs(5)), Some(413));
    // The boundary, on sign-in: 1000 bytes are read (and judged: 403, no CSRF cookie),
    // 1001 are not.
    let body = |n: usize| format!("username=a&password={}", "x".repeat(n - 20));
    let mut c = open_request(
        &s.addr,
        &post_head("/login", 1000, form, ""),
        body(1000).as_bytes(),
    );
    assert_ne!(status_within(&mut c, Duration::from_secs(5)), Some(413));
    let mut c = open_request(
        &s.addr,
        &post_head("/login", 1001, form, ""),
        body(1001).as_bytes(),
    );
    assert_eq!(status_within(&mut c, Duration::from_secs(5)), Some(413));
    // A chunked body (no length declared) is cut off at the limit.
    let chunk = "x".repeat(1500);
    let chunked = format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    let head = format!(
        "POST /api/v1/links HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {tok}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut c = open_request(&s.addr, &head, chunked.as_bytes());
    assert_eq!(status_within(&mut c, Duration::from_secs(5)), Some(413));
    // The import route takes the larger limit: 3000 bytes of URLs are imported there…
    let urls: String = (0..100)
        .map(|i| format!("https://example.com/import/{i:04}\n"))
        .collect();
    assert!(urls.len() > 1000 && urls.len() <= 4096, "{}", urls.len());
    let auth = format!("Bearer {tok}");
    let a = crate::serve::send(
        "POST",
        &s.url("/api/v1/import?format=urls&capture=false"),
        &[("authorization", &auth)],
        Some(urls.clone().into_bytes()),
        true,
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["added"], 100);
    // An import sent without a length is read as it arrives and cut at the limit: 413,
    // and nothing of it imported.
    let over: String = (0..200)
        .map(|i| format!("https://example.com/chunked/{i:04}\n"))
        .collect();
    assert!(over.len() > 4096);
    let chunked = format!("{:x}\r\n{over}\r\n0\r\n\r\n", over.len());
    let head = format!(
        "POST /api/v1/import?format=urls&capture=false HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {tok}\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut c = open_request(&s.addr, &head, chunked.as_bytes());
    assert_eq!(status_within(&mut c, Duration::from_secs(5)), Some(413));
    let listed = http("GET", &s.url("/api/v1/links?limit=1"), Some(&tok), None).json();
    assert_eq!(listed["total"], 100, "{listed}");
    // …and a link's JSON of the same size is not.
    let big = serde_json::json!({"url": "https://example.com/", "note": urls});
    assert_eq!(
        http("POST", &s.url("/api/v1/links"), Some(&tok), Some(big)).status,
        413
    );

    // The budget (4096 bytes): an upload that declared all of it and is still sending
    // holds it; a sign-in form meanwhile waits (no answer yet), and is answered once the
    // upload is done.
    let import_head = format!(
        "POST /api/v1/import?format=urls&capture=false HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {tok}\r\ncontent-type: text/plain\r\ncontent-length: 4096\r\n\r\n"
    );
    let first_half = &urls.as_bytes()[..2000];
    let mut upload = open_request(&s.addr, &import_head, first_half);
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = open_request(
        &s.addr,
        &post_head("/login", 100, form, ""),
        body(100).as_bytes(),
    );
    assert_eq!(
        status_within(&mut waiting, Duration::from_millis(800)),
        None,
        "a body was read while the budget was held"
    );
    let mut rest = urls.as_bytes()[2000..].to_vec();
    rest.resize(4096 - 2000, b'\n');
    upload.write_all(&rest).unwrap();
    assert_eq!(
        status_within(&mut upload, Duration::from_secs(5)),
        Some(200)
    );
    let answered = status_within(&mut waiting, Duration::from_secs(5));
    assert!(
        answered.is_some_and(|c| c != 503 && c != 413),
        "{answered:?}"
    );
    // A body that cannot get room within the wait (2 s) is answered 503 with Retry-After.
    let upload = open_request(&s.addr, &import_head, first_half);
    std::thread::sleep(Duration::from_millis(300));
    let mut late = open_request(
        &s.addr,
        &post_head("/login", 100, form, ""),
        body(100).as_bytes(),
    );
    assert_eq!(status_within(&mut late, Duration::from_secs(6)), Some(503));
    drop(upload);
}

/// `GET path` with `Host: host`: the status and the headers.
fn get_as(addr: &str, host: &str, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    (head[9..12].parse().unwrap(), head)
}

#[test]
fn only_the_servers_own_names_are_answered_and_no_referrer_leaves_the_origin() {
    let dir = artifact_dir("hardening-names");
    let s = Serve::start(
        &dir,
        &["--workers", "0", "--public-name", "links.example.test"],
    );
    let port = s.addr.rsplit_once(':').unwrap().1;
    // A DNS-rebinding page's name: 421 on every route, /metrics and sign-in included.
    for path in ["/login", "/metrics", "/api/v1/links", "/healthz"] {
        let (status, head) = get_as(&s.addr, "rebind.attacker.example", path);
        assert_eq!(status, 421, "{path}: {head}");
        let (status, _) = get_as(&s.addr, &format!("rebind.attacker.example:{port}"), path);
        assert_eq!(status, 421, "{path}");
    }
    // Its own names: the address, localhost, the configured public name.
    for host in [
        s.addr.clone(),
        format!("localhost:{port}"),
        "links.example.test".to_owned(),
        format!("LINKS.example.test:{port}"),
    ] {
        let (status, head) = get_as(&s.addr, &host, "/login");
        assert_eq!(status, 200, "{host}: {head}");
        // Opening an original from a page tells that site nothing of this server (no
        // referrer leaves this origin).
        assert!(head.contains("referrer-policy: same-origin"), "{head}");
    }
    let (status, _) = get_as(&s.addr, "links.example.test.attacker.example", "/login");
    assert_eq!(status, 421);
    // /metrics is open to loopback readers, but not to a same-host proxy's clients (a
    // loopback peer that forwards for someone, not named with --trusted-proxy).
    assert_eq!(get_as(&s.addr, &s.addr, "/metrics").0, 200);
    let forwarded = crate::serve::send(
        "GET",
        &s.url("/metrics"),
        &[("x-forwarded-for", "203.0.113.9")],
        None,
        true,
    );
    assert_eq!(forwarded.status, 403);
    // A public name is checked when configured.
    let bad = crate::support::linksnap(&[
        "--data",
        dir.join("other").to_str().unwrap(),
        "serve",
        "--public-name",
        "https://links.example.test/",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("expected a host name"),
        "{}",
        bad.stderr
    );
}

#[test]
fn notes_titles_and_tags_per_link_are_capped_at_their_limits() {
    use serde_json::json;
    let dir = artifact_dir("hardening-caps");
    let s = Serve::start(&dir, &["--workers", "0"]);
    let tok = token(&dir, "t");
    let post =
        |body: serde_json::Value| http("POST", &s.url("/api/v1/links"), Some(&tok), Some(body));
    // A note of 64 KiB is kept; one byte more is 400, naming the limit, and saves nothing.
    let ok = post(json!({"url": "https://example.com/a", "note": "n".repeat(64 << 10)}));
    assert_eq!(ok.status, 202, "{}", String::from_utf8_lossy(&ok.body));
    let over = post(json!({"url": "https://example.com/b", "note": "n".repeat((64 << 10) + 1)}));
    assert_eq!(over.status, 400);
    assert!(
        over.json()["message"]
            .as_str()
            .unwrap()
            .contains("limit of 65536"),
        "{}",
        over.json()
    );
    // 100 tags on a link; the 101st is refused, whether at once or added later.
    let tags = |n: usize, p: &str| (0..n).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    let hundred = post(json!({"url": "https://example.com/c", "tags": tags(100, "t")}));
    assert_eq!(hundred.status, 202);
    let id = hundred.json()["id"].as_i64().unwrap();
    let over = post(json!({"url": "https://example.com/d", "tags": tags(101, "t")}));
    assert_eq!(over.status, 400);
    assert!(
        over.json()["message"]
            .as_str()
            .unwrap()
            .contains("limit of 100")
    );
    let more = http(
        "PATCH",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        Some(json!({"add_tags": ["one-more"]})),
    );
    assert_eq!(more.status, 400);
    let link = http(
        "GET",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        None,
    )
    .json();
    assert_eq!(
        link["tags"].as_array().unwrap().len(),
        100,
        "nothing of the refused change kept"
    );
    let listed = http("GET", &s.url("/api/v1/links"), Some(&tok), None).json();
    assert_eq!(listed["total"], 2, "{listed}");
    // A title over 4 KiB.
    let title = http(
        "PATCH",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        Some(json!({"title": "x".repeat((4 << 10) + 1)})),
    );
    assert_eq!(title.status, 400);
    // The scheme of a bearer token in any case (RFC 9110).
    let lower = crate::serve::send(
        "GET",
        &s.url("/api/v1/links"),
        &[("authorization", &format!("bearer {tok}"))],
        None,
        true,
    );
    assert_eq!(lower.status, 200);
}

#[test]
fn an_import_holds_at_most_its_limit_of_entries_and_exports_stream_every_link() {
    let dir = artifact_dir("hardening-import-limit");
    let s = Serve::start(&dir, &["--workers", "0", "--import-limit", "1200"]);
    let tok = token(&dir, "t");
    let auth = format!("Bearer {tok}");
    let import = |n: usize, tag: &str| {
        let urls: String = (0..n)
            .map(|i| format!("https://{tag}.example/{i}\n"))
            .collect();
        crate::serve::send(
            "POST",
            &s.url("/api/v1/import?format=urls&capture=false"),
            &[("authorization", &auth)],
            Some(urls.into_bytes()),
            true,
        )
    };
    let over = import(1201, "over");
    assert_eq!(over.status, 400);
    assert!(String::from_utf8_lossy(&over.body).contains("more than 1200 entries"));
    let at = import(1200, "at");
    assert_eq!(at.status, 200, "{}", String::from_utf8_lossy(&at.body));
    assert_eq!(at.json()["added"], 1200);
    // Nothing of the refused import was kept.
    let links = http("GET", &s.url("/api/v1/links?limit=1"), Some(&tok), None).json();
    assert_eq!(links["total"], 1200);
    // The export (streamed in pieces of 500) gives every link once, newest first, in
    // both formats.
    let json = http("GET", &s.url("/api/v1/export"), Some(&tok), None);
    assert_eq!(json.status, 200);
    let all = json.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 1200);
    let ids: std::collections::HashSet<i64> =
        all.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 1200);
    let html = http(
        "GET",
        &s.url("/api/v1/export?format=netscape"),
        Some(&tok),
        None,
    );
    let text = String::from_utf8_lossy(&html.body);
    assert_eq!(text.matches("<DT><A HREF=").count(), 1200);
    assert!(text.trim_end().ends_with("</DL><p>"));
}

/// `linksnap --data DIR [--as WHO] token create NAME [--scope S]…`: the run.
fn create_token(
    dir: &std::path::Path,
    who: Option<&str>,
    name: &str,
    scopes: &[&str],
) -> crate::support::Run {
    let d = dir.to_str().unwrap();
    let mut args = vec!["--data", d];
    if let Some(w) = who {
        args.extend(["--as", w]);
    }
    args.extend(["token", "create", name]);
    for s in scopes {
        args.extend(["--scope", s]);
    }
    crate::support::linksnap(&args)
}

#[test]
fn tokens_carry_scopes_names_are_per_user_and_a_new_password_can_end_them() {
    use crate::readcache::{csrf_field, request, sign_in};
    use serde_json::json;
    let dir = artifact_dir("hardening-tokens");
    let d = dir.to_str().unwrap();
    for (who, admin) in [("ann", true), ("bob", false)] {
        let mut args = vec!["--data", d, "user", "add", who, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let run = crate::support::linksnap_stdin(&args, b"correct horse battery\n");
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let secret = |run: crate::support::Run| {
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.stdout_str().trim().to_owned()
    };
    let bob_read = secret(create_token(&dir, Some("bob"), "ci", &["read"]));
    // Names are unique per user: bob cannot take "ci" twice; ann's "ci" is her own.
    let again = create_token(&dir, Some("bob"), "ci", &[]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    let ann_all = secret(create_token(&dir, Some("ann"), "ci", &[]));
    let ann_no_admin = secret(create_token(
        &dir,
        Some("ann"),
        "app",
        &["read,write,share"],
    ));
    let bob_write = secret(create_token(
        &dir,
        Some("bob"),
        "writer",
        &["read", "write"],
    ));
    let bob_share = secret(create_token(
        &dir,
        Some("bob"),
        "sharer",
        &["read", "share"],
    ));
    let bad = create_token(&dir, Some("bob"), "x", &["root"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("`root` is not a scope"),
        "{}",
        bad.stderr
    );

    let s = Serve::start(&dir, &["--workers", "0"]);
    let links = s.url("/api/v1/links");
    let add = |tok: &str, url: &str| http("POST", &links, Some(tok), Some(json!({"url": url})));
    // read: lists, but adds nothing (403 insufficient_scope, RFC 6750).
    assert_eq!(http("GET", &links, Some(&bob_read), None).status, 200);
    let refused = add(&bob_read, "https://example.com/a");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "insufficient_scope");
    assert!(
        refused.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    // write adds; share links need `share` (past the scope check, this link has no
    // snapshot to share yet: 404, not 403).
    let added = add(&bob_write, "https://example.com/a");
    assert_eq!(added.status, 202);
    let id = added.json()["id"].as_i64().unwrap();
    let shares = s.url(&format!("/api/v1/links/{id}/shares"));
    assert_eq!(http("POST", &shares, Some(&bob_write), None).status, 403);
    let shared = http("POST", &shares, Some(&bob_share), None);
    assert_eq!(
        shared.status,
        404,
        "{}",
        String::from_utf8_lossy(&shared.body)
    );
    assert_eq!(shared.json()["code"], "not_found");
    // Network operations need `admin`, on an administrator's token.
    let net = s.url("/api/v1/net/stats");
    assert_eq!(http("GET", &net, Some(&ann_all), None).status, 200);
    assert_eq!(http("GET", &net, Some(&ann_no_admin), None).status, 403);
    assert_eq!(http("GET", &net, Some(&bob_write), None).status, 403);
    // The operator revokes by owner: bob's "ci" goes, ann's stays.
    let run = crate::support::linksnap(&["--data", d, "--as", "bob", "token", "revoke", "ci"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(http("GET", &links, Some(&bob_read), None).status, 401);
    assert_eq!(http("GET", &links, Some(&ann_all), None).status, 200);

    // `user passwd`: tokens survive unless asked, and it says which happened.
    let run = crate::support::linksnap_stdin(
        &["--data", d, "user", "passwd", "bob", "--password-stdin"],
        b"another long password\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("API tokens still work"),
        "{}",
        run.stderr
    );
    assert_eq!(http("GET", &links, Some(&bob_write), None).status, 200);
    let run = crate::support::linksnap_stdin(
        &[
            "--data",
            d,
            "user",
            "passwd",
            "bob",
            "--password-stdin",
            "--revoke-tokens",
        ],
        b"a third long password\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("2 API token(s) revoked"),
        "{}",
        run.stderr
    );
    assert_eq!(http("GET", &links, Some(&bob_write), None).status, 401);

    // On the settings page: the current password is required; "also revoke" ends tokens.
    let session = sign_in(&s, "ann", "correct+horse+battery");
    let cookie = format!("linksnap_session={session}");
    let page = request("GET", &s.url("/settings"), &[("cookie", &cookie)], None);
    let csrf = csrf_field(&String::from_utf8_lossy(&page.body));
    let wrong = request(
        "POST",
        &s.url("/settings/password"),
        &[("cookie", &cookie)],
        Some(&format!(
            "csrf={csrf}&current=wrong+one&password=brand+new+password&revoke_tokens=on"
        )),
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(http("GET", &links, Some(&ann_all), None).status, 200);
    let changed = request(
        "POST",
        &s.url("/settings/password"),
        &[("cookie", &cookie)],
        Some(&format!(
            "csrf={csrf}&current=correct+horse+battery&password=brand+new+password&revoke_tokens=on"
        )),
    );
    assert_eq!(changed.status, 303);
    let to = changed.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/login?done=password-revoked");
    assert_eq!(http("GET", &links, Some(&ann_all), None).status, 401);
    assert_eq!(http("GET", &links, Some(&ann_no_admin), None).status, 401);
    let after = request("GET", &s.url("/settings"), &[("cookie", &cookie)], None);
    assert_eq!(after.status, 303, "the session ended");
    let login = request("GET", &s.url(&to), &[], None);
    assert!(String::from_utf8_lossy(&login.body).contains("your API tokens were revoked"));
    sign_in(&s, "ann", "brand+new+password");
}

/// One attempt through the sign-in form: the status.
fn try_sign_in(s: &Serve, name: &str, password: &str) -> u16 {
    use crate::readcache::{csrf_field, request};
    let form = request("GET", &s.url("/login"), &[], None);
    let pre = form
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("linksnap_prelogin="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = csrf_field(&String::from_utf8_lossy(&form.body));
    request(
        "POST",
        &s.url("/login"),
        &[("cookie", &format!("linksnap_prelogin={pre}"))],
        Some(&format!(
            "csrf={csrf}&name={name}&password={password}&next=/"
        )),
    )
    .status
}

#[test]
fn an_account_that_keeps_failing_to_sign_in_is_held_back_whoever_asks() {
    let dir = artifact_dir("hardening-backoff");
    let d = dir.to_str().unwrap();
    for who in ["ann", "bob"] {
        let run = crate::support::linksnap_stdin(
            &["--data", d, "user", "add", who, "--password-stdin"],
            b"correct horse battery\n",
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let s = Serve::start(&dir, &["--workers", "0", "--login-attempts", "100"]);
    let right = "correct+horse+battery";
    for _ in 0..5 {
        assert_eq!(try_sign_in(&s, "ann", "wrong"), 401);
    }
    // The sixth attempt, even with the right password, waits (its password unchecked).
    assert_eq!(try_sign_in(&s, "ann", right), 429);
    assert_eq!(try_sign_in(&s, "ANN", right), 429, "names in any case");
    // Another account is not held back.
    assert_eq!(try_sign_in(&s, "bob", right), 303);
    // After the wait (1 s for the first), the right password gets in and resets it.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(try_sign_in(&s, "ann", right), 303);
    assert_eq!(try_sign_in(&s, "ann", "wrong"), 401);
    assert_eq!(try_sign_in(&s, "ann", right), 303);

    // A same-host proxy that is not trusted is told about, once.
    let a = crate::serve::send(
        "GET",
        &s.url("/healthz"),
        &[("x-forwarded-for", "203.0.113.7")],
        None,
        true,
    );
    assert_eq!(a.status, 200);
    crate::serve::wait_until("the proxy warning", || {
        s.log().contains("is not a trusted proxy")
    });
}

#[test]
fn captures_never_reach_the_servers_own_listeners_whatever_the_allow_rules() {
    use crate::faults::{link_json, post_link};
    let site = crate::support::FixtureServer::start();
    let dir = artifact_dir("hardening-own-sockets");
    // Loopback is open to captures (Serve::start passes --allow-net 127.0.0.0/8).
    let s = Serve::start(&dir, &["--workers", "1"]);
    let tok = token(&dir, "t");
    let port = s.addr.rsplit_once(':').unwrap().1.to_owned();
    let mut ids = Vec::new();
    for url in [
        s.url("/metrics"),
        format!("http://localhost:{port}/healthz"),
        format!("http://[::ffff:127.0.0.1]:{port}/api/v1/links"),
        site.url("/plain"),
    ] {
        let a = post_link(&s, &tok, serde_json::json!({"url": url}));
        assert_eq!(a.status, 202, "{url}");
        ids.push(a.json()["id"].as_i64().unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        crate::serve::wait_until("the capture finished", || {
            let st = link_json(&s, &tok, *id)["status"].clone();
            st == "ok" || st == "failed"
        });
        let link = link_json(&s, &tok, *id);
        if i < 3 {
            assert_eq!(link["status"], "failed", "{link}");
            assert!(
                link["failure"]
                    .as_str()
                    .unwrap()
                    .contains("this server's own listener"),
                "{link}"
            );
        } else {
            assert_eq!(
                link["status"], "ok",
                "another loopback server is allowed: {link}"
            );
        }
    }
}
