//! `linksnap snap`: what a snapshot contains, its formats, bad input and exit codes.

use crate::remote_references;
use crate::support::{FixtureServer, artifact_dir, linksnap, snap};

#[test]
fn every_construct_of_the_fixture_site_is_inlined_and_nothing_remote_remains() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/site/pages/index.html"), &["--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    let resources = report["resources"].as_array().unwrap();
    let failed: Vec<_> = resources
        .iter()
        .filter(|r| r["outcome"] != "inlined")
        .collect();
    assert!(failed.is_empty(), "not inlined: {failed:#?}");
    let mut kinds: Vec<&str> = resources
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "css-asset",
            "frame",
            "image",
            "script",
            "stylesheet",
            "svg-sprite"
        ]
    );
    let paths: Vec<String> = resources
        .iter()
        .filter_map(|r| Some(r["url"].as_str()?.split_once("/site/")?.1.to_owned()))
        .collect();
    for expected in [
        "css/main.css",
        "css/imported.css",
        "css/sub/deep.css",
        "css/from-style.css",
        "img/favicon.png",
        "img/picture.png",
        "img/lazy.png",
        "img/style-block.png",
        "img/inline-style.png",
        "img/deep.png",
        "img/bg.png",
        "img/poster.png",
        "img/noscript.png",
        "img/icons.svg",
        "frames/frame.html",
        "frames/frame.css",
        "frames/nested.html",
        "img/frame.png",
        "js/main.js",
        "js/async.js",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} missing from {paths:?}"
        );
    }
    // The web font is referenced from the third stylesheet of an @import chain.
    assert!(resources.iter().any(
        |r| r["url"].as_str().unwrap().ends_with("/font/fixture.ttf") && r["outcome"] == "inlined"
    ));
    // Fetched once each, although referenced several times (photo.png is in src and srcset,
    // placeholder.png twice, icons.svg twice).
    for path in [
        "/site/img/photo.png",
        "/site/img/icons.svg",
        "/site/img/placeholder.png",
    ] {
        assert!(
            server.hits(path) <= 1,
            "{path} fetched {} times",
            server.hits(path)
        );
    }
    // The srcset candidates a 1x screen would not show are not fetched.
    assert_eq!(server.hits("/site/img/photo-2x.png"), 0);
    assert_eq!(server.hits("/site/img/lazy-2x.png"), 0);
    // Hints and pings are not followed.
    assert_eq!(server.hits("/site/pages/next.html"), 0);
    assert_eq!(server.hits("/ping"), 0);
    assert_eq!(report["encoding"]["name"], "windows-1252");
    assert_eq!(report["encoding"]["source"], "meta");
}

#[test]
fn the_html_snapshot_is_self_contained_utf8_with_the_page_rewritten() {
    let server = FixtureServer::start();
    let dir = artifact_dir("snap-fixture");
    let out = dir.join("index.html");
    let run = snap(
        &server.url("/site/pages/index.html"),
        &["-o", out.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "with -o nothing goes to stdout");
    assert!(run.stderr.contains("saved http://"), "{}", run.stderr);
    let html = String::from_utf8(std::fs::read(&out).unwrap()).expect("the snapshot is UTF-8");
    assert_eq!(remote_references(&html), Vec::<String>::new());
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(!html.contains("windows-1252"));
    assert!(
        html.contains("Café crème brûlée € 5"),
        "windows-1252 bytes decoded"
    );
    assert!(!html.contains("<base"));
    // The page's own policy is gone; the snapshot's, which forbids the network, is the
    // only one.
    assert_eq!(html.matches("Content-Security-Policy").count(), 1);
    assert!(html.contains("connect-src 'none'"));
    assert!(
        !html.contains("preconnect")
            && !html.contains("dns-prefetch")
            && !html.contains("prefetch")
    );
    assert!(!html.contains("integrity="));
    assert!(!html.contains("ping="));
    assert!(
        html.contains(&format!(
            "href=\"{}\"",
            server.url("/site/pages/other.html")
        )),
        "links become absolute"
    );
    assert!(
        html.contains("<a href=\"#js\">"),
        "in-page anchors stay in the page"
    );
    assert!(
        html.contains("document.getElementById('js')"),
        "scripts are kept by default"
    );
    assert!(
        html.contains("<noscript>"),
        "noscript stays with scripts on"
    );
    assert!(
        html.contains("<symbol id=\"star\""),
        "the external sprite is brought in"
    );
}

#[test]
fn no_js_removes_scripts_and_handlers_and_shows_noscript_content() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/site/pages/index.html"), &["--no-js"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = run.stdout_str();
    assert!(!html.contains("<script"), "no script element survives");
    assert!(!html.contains("<noscript"));
    assert!(
        html.contains("alt=\"noscript\""),
        "noscript content is visible"
    );
    assert_eq!(remote_references(&html), Vec::<String>::new());
    assert_eq!(
        server.hits("/site/js/main.js"),
        0,
        "scripts are not even fetched"
    );
}

#[test]
fn text_format_prints_title_blank_line_and_main_text() {
    let server = FixtureServer::start();
    let run = snap(
        &server.url("/corpus/readability/001/source.html"),
        &["--format", "text"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = run.stdout_str();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Get your Frontend JavaScript Code Covered | Code")
    );
    assert_eq!(lines.next(), Some(""));
    assert!(
        text.contains("So finally you're testing your frontend JavaScript code"),
        "{text}"
    );
}

#[test]
fn json_format_has_metadata_text_and_resources() {
    let server = FixtureServer::start();
    let run = snap(
        &server.url("/corpus/readability/001/source.html"),
        &["--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = run.json();
    assert_eq!(j["status"], 200);
    assert_eq!(j["media_type"], "text/html");
    assert_eq!(j["text"]["byline"], "Nicolas Perriault");
    assert_eq!(j["text"]["lang"], "en");
    assert!(j["text"]["text"].as_str().unwrap().len() > 1000);
    assert!(j["snapshot"]["bytes"].as_u64().unwrap() > 1000);
    assert!(j["resources"].is_array());
    assert!(
        j["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "content-type")
    );
}

/// Asserts that `exchange` says the response came from `addr` over HTTP/1.1, asked
/// between `before` and `after`.
pub(crate) fn assert_exchange(
    exchange: &serde_json::Value,
    addr: std::net::SocketAddr,
    before: std::time::SystemTime,
    after: std::time::SystemTime,
) {
    assert_eq!(exchange["address"], addr.to_string(), "{exchange}");
    assert_eq!(exchange["http_version"], "HTTP/1.1", "{exchange}");
    let sent = exchange["sent_at"].as_str().unwrap();
    // Microseconds, UTC.
    assert!(sent.ends_with('Z') && sent.len() == 27, "{sent}");
    let sent = humantime::parse_rfc3339(sent).unwrap();
    assert!(before <= sent && sent <= after, "{exchange}");
}

#[test]
fn the_report_says_when_and_from_which_address_each_response_came() {
    let server = FixtureServer::start();
    let before = std::time::SystemTime::now();
    let j = snap(&server.url("/site/pages/index.html"), &["--format", "json"]).json();
    let after = std::time::SystemTime::now();
    assert_exchange(&j["exchange"], server.addr, before, after);
    let inlined: Vec<&serde_json::Value> = j["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "inlined")
        .collect();
    assert!(inlined.len() > 5, "{j}");
    for r in inlined {
        assert_exchange(&r["exchange"], server.addr, before, after);
    }
}

/// The request headers of an exchange report, as (name, value).
fn request_headers(exchange: &serde_json::Value) -> Vec<(String, String)> {
    exchange["request_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
        .collect()
}

#[test]
fn the_report_keeps_the_request_as_sent_and_each_redirect_on_the_way() {
    let server = FixtureServer::start();
    let dir = artifact_dir("snap-redirect-exchanges");
    let host = format!("127.0.0.1:{}", server.addr.port());
    for engine in ["static", "browser"] {
        let out = dir.join(format!("{engine}.json"));
        let before = std::time::SystemTime::now();
        let run = linksnap(&[
            "snap",
            &server.url("/redirect/2"),
            "--engine",
            engine,
            "--chromium",
            crate::support::chromium(),
            "--allow-net",
            "127.0.0.0/8",
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ]);
        let after = std::time::SystemTime::now();
        assert_eq!(run.code, 0, "{engine}: {}", run.stderr);
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let page = &j["exchange"];
        assert_exchange(page, server.addr, before, after);
        // The request as it went out: what the client adds is on record too.
        let headers = request_headers(page);
        let value = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{engine}: no {name}: {headers:?}"))
        };
        assert_eq!(page["method"], "GET", "{engine}");
        assert_eq!(value("host"), host, "{engine}");
        assert!(
            value("user-agent").starts_with("Mozilla/5.0"),
            "{engine}: {headers:?}"
        );
        assert_eq!(value("accept-encoding"), "zstd,gzip,deflate,br", "{engine}");
        assert!(!value("accept").is_empty(), "{engine}");
        // Both redirects, in order, each with its status, where it pointed and how it
        // was had; the page's own request went out after the last of them.
        let hops = page["redirects"]
            .as_array()
            .unwrap_or_else(|| panic!("{engine}: {page}"));
        let asked: Vec<(&str, u64, &str)> = hops
            .iter()
            .map(|h| {
                (
                    h["url"].as_str().unwrap(),
                    h["status"].as_u64().unwrap(),
                    h["location"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            asked,
            [
                (server.url("/redirect/2").as_str(), 302, "/redirect/1"),
                (server.url("/redirect/1").as_str(), 302, "/plain"),
            ],
            "{engine}: {page}"
        );
        let mut sent = Vec::new();
        for h in hops {
            assert_exchange(&h["exchange"], server.addr, before, after);
            sent.push(h["exchange"]["sent_at"].as_str().unwrap().to_owned());
        }
        sent.push(page["sent_at"].as_str().unwrap().to_owned());
        assert!(sent.is_sorted(), "{engine}: {sent:?}");
        assert_eq!(j["final_url"], server.url("/plain"), "{engine}");
    }
}

#[test]
fn cookies_set_by_the_page_are_sent_with_its_assets() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/cookie/page"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout_str().contains("--cookie:present"),
        "{}",
        run.stdout_str()
    );
    // The report has the cookie among the stylesheet's request headers (sent, so on
    // record), its value redacted; the page's own request had none to send.
    let j = snap(&server.url("/cookie/page"), &["--format", "json"]).json();
    assert!(
        !request_headers(&j["exchange"])
            .iter()
            .any(|(k, _)| k == "cookie"),
        "{j}"
    );
    let sheet = crate::support::report_resource(&j, "/cookie/style.css");
    assert!(
        request_headers(&sheet["exchange"]).contains(&("cookie".into(), "(redacted)".into())),
        "{sheet}"
    );
    // A second capture starts with an empty jar: cookies never leak between captures.
    let run = snap(&server.url("/cookie/style.css"), &[]);
    assert!(run.stdout_str().contains("--cookie:missing"));
}

#[test]
fn a_pdf_is_saved_as_the_file_with_its_media_type() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/doc.pdf"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with(b"%PDF-1.4"));
    assert!(run.stderr.contains("application/pdf"), "{}", run.stderr);
    let json = snap(&server.url("/doc.pdf"), &["--format", "json"]).json();
    assert_eq!(json["snapshot"]["media_type"], "application/pdf");
    let text = snap(&server.url("/doc.pdf"), &["--format", "text"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stderr.contains("is application/pdf, not HTML"),
        "{}",
        text.stderr
    );
}

#[test]
fn an_error_status_page_is_saved_and_the_exit_code_says_so() {
    let server = FixtureServer::start();
    for code in [404, 500] {
        let run = snap(&server.url(&format!("/status/{code}")), &[]);
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stdout_str().contains(&format!("Error page {code}")));
        assert!(
            run.stderr.contains(&format!("HTTP {code}")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn an_empty_body_is_a_clear_error() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/empty"), &[]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert_eq!(
        run.stderr.trim(),
        format!(
            "linksnap: error: {}: the server sent an empty body (HTTP 200)",
            server.url("/empty")
        )
    );
}

#[test]
fn bad_urls_and_schemes_are_usage_errors() {
    for (url, message) in [
        (
            "not a url",
            "linksnap: error: invalid URL `not a url`: not a URL: give an address starting with http:// or https:// (or a bare host name such as example.com/page)",
        ),
        (
            "http://",
            "linksnap: error: invalid URL `http://`: empty host",
        ),
        (
            "file:///etc/passwd",
            "linksnap: error: unsupported scheme `file:` in file:///etc/passwd: only http and https pages can be captured",
        ),
        (
            "ftp://a.test/x",
            "linksnap: error: unsupported scheme `ftp:` in ftp://a.test/x: only http and https pages can be captured",
        ),
        (
            "javascript:alert(1)",
            "linksnap: error: unsupported scheme `javascript:` in javascript:alert(1): only http and https pages can be captured",
        ),
    ] {
        let run = linksnap(&["snap", url]);
        assert_eq!(run.code, 2, "{url}: {}", run.stderr);
        assert_eq!(run.stderr.trim(), message);
        assert!(run.stdout.is_empty());
    }
    let run = linksnap(&["snap"]);
    assert_eq!(run.code, 2);
    let run = linksnap(&["snap", "http://a.test/", "--format", "pdf"]);
    assert_eq!(run.code, 2);
}

#[test]
fn a_failed_capture_leaves_an_existing_output_file_untouched() {
    let server = FixtureServer::start();
    let dir = artifact_dir("snap-atomic");
    let out = dir.join("keep.html");
    std::fs::write(&out, "previous snapshot").unwrap();
    let run = snap(&server.url("/empty"), &["-o", out.to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous snapshot");
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn an_unwritable_output_path_is_a_clear_error() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/plain"), &["-o", "/nonexistent-dir/x.html"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("linksnap: error: cannot write /nonexistent-dir/x.html"),
        "{}",
        run.stderr
    );
}

#[test]
fn gzip_deflate_brotli_and_zstd_bodies_are_decoded() {
    let server = FixtureServer::start();
    for encoding in ["gzip", "deflate", "br", "zstd"] {
        let run = snap(
            &server.url(&format!("/compressed/{encoding}")),
            &["--format", "json"],
        );
        assert_eq!(run.code, 0, "{encoding}: {}", run.stderr);
        let j = run.json();
        assert!(
            j["text"]["text"]
                .as_str()
                .unwrap()
                .contains(&format!("body sent as {encoding}.")),
            "{encoding}: {j}"
        );
        assert!(
            j["page_bytes"].as_u64().unwrap() > 6500,
            "{encoding}: counted after decompression"
        );
    }
}

#[test]
fn the_user_agent_is_a_browser_by_default_and_configurable() {
    let server = FixtureServer::start();
    let html = snap(&server.url("/ua"), &[]).stdout_str();
    assert!(
        html.contains("Mozilla/5.0 (X11; Linux x86_64)") && html.contains("Chrome/"),
        "{html}"
    );
    let html = snap(&server.url("/ua"), &["--user-agent", "linksnap-test/1.0"]).stdout_str();
    assert!(html.contains("<p id=ua>linksnap-test/1.0</p>"), "{html}");
}

#[test]
fn https_is_fetched_over_http2_when_the_server_offers_it_and_the_ca_is_trusted() {
    let dir = artifact_dir("snap-tls");
    let (server, ca) = FixtureServer::start_tls(&dir);
    let url = server.https_url("/site/pages/index.html");
    let untrusted = snap(&url, &[]);
    assert_eq!(untrusted.code, 1);
    assert!(
        untrusted.stderr.contains("certificate"),
        "{}",
        untrusted.stderr
    );
    let run = snap(
        &url,
        &["--ca-cert", ca.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert!(
        report["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == "inlined"),
        "{report:#}"
    );
    let versions = server.versions();
    assert!(versions.len() > 10, "{versions:?}");
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
}

#[test]
fn plain_http_is_http11_and_a_bad_ca_file_is_a_usage_error() {
    let server = FixtureServer::start();
    assert_eq!(snap(&server.url("/plain"), &[]).code, 0);
    assert_eq!(server.versions(), ["HTTP/1.1"]);
    let run = snap(&server.url("/plain"), &["--ca-cert", "/nonexistent.pem"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--ca-cert /nonexistent.pem"),
        "{}",
        run.stderr
    );
}
