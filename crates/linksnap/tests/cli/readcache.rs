//! The server's read caches (lists, searches, the list page) and its remembered
//! credentials: a remembered answer never outlives a change to the library, whoever made
//! it (an API call, a capture worker, the CLI through the server), and the cache keeps
//! only what fits in `--read-cache`.

use std::path::Path;

use serde_json::json;

use crate::serve::{Answer, Serve, http, send, token, wait_until};
use crate::support::{FixtureServer, artifact_dir, linksnap, linksnap_stdin};

/// Whether the server remembered the answer (`x-linksnap-cache`).
fn cache(a: &Answer) -> &str {
    a.headers
        .get("x-linksnap-cache")
        .map_or("absent", |v| v.to_str().unwrap())
}

/// A browser-like request (redirects not followed), with an optional form body.
pub(crate) fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Answer {
    let mut all = headers.to_vec();
    if form.is_some() {
        all.push(("content-type", "application/x-www-form-urlencoded"));
    }
    send(
        method,
        url,
        &all,
        form.map(|f| f.as_bytes().to_vec()),
        false,
    )
}

/// The value of cookie `name` set by `a`.
fn set_cookie(a: &Answer, name: &str) -> String {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

/// The first hidden `csrf` field of a page.
pub(crate) fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// Signs in through the form; returns the session cookie's value.
pub(crate) fn sign_in(s: &Serve, name: &str, password: &str) -> String {
    let form = request("GET", &s.url("/login"), &[], None);
    let pre = set_cookie(&form, "linksnap_prelogin");
    let csrf = csrf_field(&String::from_utf8_lossy(&form.body));
    let done = request(
        "POST",
        &s.url("/login"),
        &[("cookie", &format!("linksnap_prelogin={pre}"))],
        Some(&format!(
            "csrf={csrf}&name={name}&password={password}&next=/"
        )),
    );
    assert_eq!(done.status, 303, "{}", String::from_utf8_lossy(&done.body));
    set_cookie(&done, "linksnap_session")
}

fn import_urls(dir: &Path, urls: &[String]) {
    let run = linksnap_stdin(
        &[
            "--data",
            dir.to_str().unwrap(),
            "import",
            "-",
            "--no-capture",
        ],
        urls.join("\n").as_bytes(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn remembered_answers_never_outlive_a_change_to_the_library() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-read-cache");
    import_urls(
        &dir,
        &(0..3)
            .map(|i| format!("https://example.org/archiving/{i}"))
            .collect::<Vec<_>>(),
    );
    let add = linksnap_stdin(
        &[
            "--data",
            dir.to_str().unwrap(),
            "user",
            "add",
            "ada",
            "--password-stdin",
        ],
        b"correct horse",
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let s = Serve::start(&dir, &["--workers", "1"]);
    let tok = token(&dir, "cache");
    let get = |path: &str| http("GET", &s.url(path), Some(&tok), None);

    // Asked twice, computed once: the same body.
    let first = get("/api/v1/links");
    assert_eq!((first.status, cache(&first)), (200, "miss"));
    assert_eq!(first.json()["total"], 3);
    let second = get("/api/v1/links");
    assert_eq!(cache(&second), "hit");
    assert_eq!(second.body, first.body);
    let other = get("/api/v1/links?limit=1");
    assert_eq!(cache(&other), "miss", "another query is another entry");
    assert_eq!(cache(&get("/api/v1/search?q=archiving")), "miss");
    assert_eq!(cache(&get("/api/v1/search?q=construct")), "miss");
    let none = get("/api/v1/search?q=construct");
    assert_eq!(cache(&none), "hit");
    assert_eq!(none.json(), json!([]));
    let bad = get("/api/v1/search?q=");
    assert_eq!(
        (bad.status, cache(&bad)),
        (400, "absent"),
        "errors are not cached"
    );
    // So far 2 answered from memory and 5 computed (the failed one too).
    let metrics = String::from_utf8(http("GET", &s.url("/metrics"), None, None).body).unwrap();
    for line in [
        "linksnap_read_cache_requests_total{outcome=\"hit\"} 2",
        "linksnap_read_cache_requests_total{outcome=\"miss\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }

    // A link added through the API is in the next answer.
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": site.url("/site/pages/index.html"), "tags": ["fresh"]})),
    );
    assert_eq!(created.status, 202);
    let id = created.json()["id"].as_i64().unwrap();
    let after = get("/api/v1/links");
    assert_eq!(cache(&after), "miss");
    assert_eq!(after.json()["total"], 4);

    // The capture worker's commits show in the list without anything else happening, and
    // the captured page's words in search (the index reload moves the generation too).
    wait_until("the list shows the capture done", || {
        get("/api/v1/links?tag=fresh").json()["links"][0]["status"] == "ok"
    });
    wait_until("the captured text is found", || {
        get("/api/v1/search?q=construct")
            .json()
            .as_array()
            .is_some_and(|hits| hits.len() == 1)
    });

    // Tags changed by the API: edits, renames.
    assert_eq!(
        cache(&get("/api/v1/links?tag=kept")),
        "miss",
        "nothing is tagged kept yet"
    );
    assert_eq!(get("/api/v1/links?tag=kept").json()["total"], 0);
    let patched = http(
        "PATCH",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        Some(json!({"add_tags": ["kept"]})),
    );
    assert_eq!(
        patched.status,
        200,
        "{}",
        String::from_utf8_lossy(&patched.body)
    );
    assert_eq!(get("/api/v1/links?tag=kept").json()["total"], 1);
    let renamed = http(
        "POST",
        &s.url("/api/v1/tags/rename"),
        Some(&tok),
        Some(json!({"from": "kept", "to": "keep"})),
    );
    assert_eq!(renamed.status, 200);
    assert_eq!(get("/api/v1/links?tag=kept").json()["total"], 0);
    assert_eq!(get("/api/v1/links?tag=keep").json()["total"], 1);

    // The list page of a signed-in user: remembered too, and changed by the CLI through
    // the server.
    let session = sign_in(&s, "ada", "correct+horse");
    let cookie = format!("linksnap_session={session}");
    let page = |q: &str| {
        request(
            "GET",
            &s.url(&format!("/{q}")),
            &[("cookie", &cookie)],
            None,
        )
    };
    let p1 = page("");
    assert_eq!((p1.status, cache(&p1)), (200, "miss"));
    let p2 = page("");
    assert_eq!(cache(&p2), "hit");
    let by_cli = site.url("/plain");
    let run = linksnap(&["--data", dir.to_str().unwrap(), "add", &by_cli]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let p3 = page("");
    assert_eq!(cache(&p3), "miss");
    assert!(String::from_utf8_lossy(&p3.body).contains(&by_cli));

    // Deleted: gone from the next answer.
    assert_eq!(
        http(
            "DELETE",
            &s.url(&format!("/api/v1/links/{id}")),
            Some(&tok),
            None
        )
        .status,
        204
    );
    assert_eq!(
        get("/api/v1/links").json()["total"],
        4,
        "3 imported, 1 by the CLI"
    );
    assert_eq!(get("/api/v1/links?tag=keep").json()["total"], 0);

    // Remembered credentials: a revoked token and an ended session stop working at once.
    assert_eq!(get("/api/v1/links").status, 200);
    let revoke = linksnap(&["--data", dir.to_str().unwrap(), "token", "revoke", "cache"]);
    assert_eq!(revoke.code, 0, "{}", revoke.stderr);
    assert_eq!(get("/api/v1/links").status, 401);
    let html = String::from_utf8_lossy(&page("").body).into_owned();
    let out = request(
        "POST",
        &s.url("/logout"),
        &[("cookie", &cookie)],
        Some(&format!("csrf={}", csrf_field(&html))),
    );
    assert_eq!(out.status, 303);
    let refused = page("");
    assert_eq!(refused.status, 303, "an ended session is not remembered");
    assert!(
        refused.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
}

#[test]
fn the_read_cache_keeps_what_fits_in_its_budget() {
    let dir = artifact_dir("serve-read-cache-budget");
    import_urls(
        &dir,
        &(0..3)
            .map(|i| format!("https://example.org/budget/{i}"))
            .collect::<Vec<_>>(),
    );
    let query = "limit=2";
    let twice = |extra: &[&str]| -> (usize, String, String) {
        let s = Serve::start(&dir, extra);
        let tok = token(&dir, &format!("budget-{}", extra.join("-")));
        let url = s.url(&format!("/api/v1/links?{query}"));
        let a = http("GET", &url, Some(&tok), None);
        let b = http("GET", &url, Some(&tok), None);
        assert_eq!(a.body, b.body);
        (a.body.len(), cache(&a).to_owned(), cache(&b).to_owned())
    };
    let (body, ..) = twice(&[]);
    // An entry weighs its body and its query string.
    let weight = body + query.len();
    let at = weight.to_string();
    let (_, a, b) = twice(&["--read-cache", &at]);
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("miss", "hit"),
        "{weight} bytes fit in {at}"
    );
    let under = (weight - 1).to_string();
    let (_, a, b) = twice(&["--read-cache", &under]);
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("miss", "miss"),
        "{weight} bytes do not fit in {under}"
    );
    let (_, a, b) = twice(&["--read-cache", "0"]);
    assert_eq!(
        (a.as_str(), b.as_str()),
        ("miss", "miss"),
        "0 turns caching off"
    );
    let bad = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--read-cache",
        "lots",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--read-cache lots"), "{}", bad.stderr);
}
