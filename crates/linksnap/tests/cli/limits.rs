//! Every capture limit, at its boundary, with its error message and exit code.

use crate::support::{FixtureServer, linksnap, linksnap_measured, snap};

/// The memory ceiling the issue sets for hostile pages.
const RSS_CEILING: u64 = 512 << 20;

fn outcome_of(report: &serde_json::Value, url_suffix: &str) -> String {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with(url_suffix))
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| format!("{url_suffix} not in {report:#}"))
}

#[test]
fn max_page_bytes_admits_exactly_the_limit() {
    let server = FixtureServer::start();
    let url = server.url("/bytes/5000");
    let run = snap(&url, &["--max-page-bytes", "5000"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = snap(&url, &["--max-page-bytes", "4999"]);
    assert_eq!(run.code, 5);
    assert_eq!(
        run.stderr.trim(),
        format!("linksnap: error: {url} is larger than the limit of 4999 bytes")
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn max_asset_bytes_admits_exactly_the_limit() {
    let server = FixtureServer::start();
    let url = server.url("/page-with?img=/blob/3000");
    let ok = snap(&url, &["--max-asset-bytes", "3000", "--format", "json"]).json();
    assert_eq!(outcome_of(&ok, "/blob/3000"), "inlined");
    let run = snap(&url, &["--max-asset-bytes", "2999", "--format", "json"]);
    assert_eq!(
        run.code, 0,
        "an asset over its limit is left out, the page is saved"
    );
    assert_eq!(outcome_of(&run.json(), "/blob/3000"), "too-large");
}

#[test]
fn max_total_bytes_counts_the_page_and_every_asset() {
    let server = FixtureServer::start();
    let url = server.url("/page-with?img=/blob/3000");
    let page = snap(&url, &["--format", "json"]).json()["page_bytes"]
        .as_u64()
        .unwrap();
    let exact = (page + 3000).to_string();
    let ok = snap(&url, &["--max-total-bytes", &exact, "--format", "json"]).json();
    assert_eq!(outcome_of(&ok, "/blob/3000"), "inlined");
    let under = (page + 2999).to_string();
    let cut = snap(&url, &["--max-total-bytes", &under, "--format", "json"]).json();
    assert_eq!(outcome_of(&cut, "/blob/3000"), "too-large");
}

#[test]
fn max_redirects_admits_exactly_the_limit() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/redirect/10"), &["--format", "json"]);
    assert_eq!(
        run.code, 0,
        "ten redirects are allowed by default: {}",
        run.stderr
    );
    assert!(
        run.json()["final_url"]
            .as_str()
            .unwrap()
            .ends_with("/plain")
    );
    let run = snap(&server.url("/redirect/11"), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "linksnap: error: {}: more than 10 redirects, the limit (max_redirects)",
            server.url("/redirect/11")
        )
    );
    assert_eq!(
        snap(&server.url("/redirect/2"), &["--max-redirects", "2"]).code,
        0
    );
    assert_eq!(
        snap(&server.url("/redirect/3"), &["--max-redirects", "2"]).code,
        1
    );
}

#[test]
fn a_redirect_loop_is_named() {
    let server = FixtureServer::start();
    let run = snap(&server.url("/loop/a"), &[]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "linksnap: error: {}: redirect loop at {}",
            server.url("/loop/a"),
            server.url("/loop/a")
        )
    );
    assert!(server.hits("/loop/a") == 1 && server.hits("/loop/b") == 1);
}

#[test]
fn a_server_that_drips_forever_is_cut_off_by_the_capture_timeout() {
    let server = FixtureServer::start();
    let started = std::time::Instant::now();
    let run = snap(&server.url("/drip"), &["--timeout", "1.5"]);
    let took = started.elapsed();
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "linksnap: error: {}: timed out (request timeout 30s, capture timeout 1.5s)",
            server.url("/drip")
        )
    );
    // The deadline is the boundary under test: the process ends shortly after it.
    assert!(took.as_secs_f64() < 10.0, "took {took:?}");
}

#[test]
fn the_request_timeout_drops_a_slow_asset_but_keeps_the_page() {
    let server = FixtureServer::start();
    let run = snap(
        &server.url("/page-with?img=/slow/3000"),
        &["--request-timeout", "0.5", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(outcome_of(&run.json(), "/slow/3000"), "timed-out");
}

#[test]
fn a_gzip_bomb_ends_with_a_size_error_in_bounded_memory() {
    let server = FixtureServer::start();
    let url = server.url("/bomb");
    let (run, rss) = linksnap_measured(&["snap", &url, "--allow-net", "127.0.0.1"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!("linksnap: error: {url} is larger than the limit of 33554432 bytes")
    );
    assert!(rss < RSS_CEILING, "peak RSS {} MB", rss >> 20);
    eprintln!("gzip bomb: peak RSS {} MB", rss >> 20);
}

#[test]
fn a_300_mb_page_ends_with_a_size_error_in_bounded_memory() {
    let server = FixtureServer::start();
    let url = server.url("/huge");
    let (run, rss) = linksnap_measured(&["snap", &url, "--allow-net", "127.0.0.1"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("is larger than the limit of 33554432 bytes"),
        "{}",
        run.stderr
    );
    assert!(rss < RSS_CEILING, "peak RSS {} MB", rss >> 20);
    eprintln!("300 MB page: peak RSS {} MB", rss >> 20);
}

#[test]
fn max_resources_caps_how_many_resources_one_capture_fetches() {
    let server = FixtureServer::start();
    let url = server.url("/page-with?img=/blob/10&img=/blob/11&img=/blob/12");
    let report = snap(&url, &["--max-resources", "2", "--format", "json"]).json();
    assert_eq!(outcome_of(&report, "/blob/10"), "inlined");
    assert_eq!(outcome_of(&report, "/blob/11"), "inlined");
    assert_eq!(outcome_of(&report, "/blob/12"), "too-large");
    assert_eq!(server.hits("/blob/12"), 0);
}

#[test]
fn max_frame_depth_stops_nested_frames_without_fetching_them() {
    let server = FixtureServer::start();
    let url = server.url("/site/pages/index.html");
    let report = snap(&url, &["--max-frame-depth", "1", "--format", "json"]).json();
    assert_eq!(outcome_of(&report, "/frames/frame.html"), "inlined");
    assert_eq!(outcome_of(&report, "/frames/nested.html"), "too-deep");
    assert_eq!(server.hits("/site/frames/nested.html"), 0);
    let report = snap(&url, &["--max-frame-depth", "2", "--format", "json"]).json();
    assert_eq!(outcome_of(&report, "/frames/nested.html"), "inlined");
}

#[test]
fn max_import_depth_stops_import_chains_without_fetching_them() {
    let server = FixtureServer::start();
    let url = server.url("/site/pages/index.html");
    // main.css (1) imports imported.css (2), which imports sub/deep.css (3).
    let report = snap(&url, &["--max-import-depth", "2", "--format", "json"]).json();
    assert_eq!(outcome_of(&report, "/css/imported.css"), "inlined");
    assert_eq!(outcome_of(&report, "/css/sub/deep.css"), "too-deep");
    assert_eq!(server.hits("/site/css/sub/deep.css"), 0);
    let report = snap(&url, &["--max-import-depth", "3", "--format", "json"]).json();
    assert_eq!(outcome_of(&report, "/css/sub/deep.css"), "inlined");
}

#[test]
fn concurrency_bounds_assets_in_flight() {
    let server = FixtureServer::start();
    let url =
        server.url("/page-with?img=/slow/300/a&img=/slow/300/b&img=/slow/300/c&img=/slow/300/d");
    let run = snap(&url, &["--concurrency", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.max_in_flight(), 2);
    let server = FixtureServer::start();
    let url = server.url("/page-with?img=/slow/300/a&img=/slow/300/b&img=/slow/300/c");
    snap(&url, &["--concurrency", "1"]);
    assert_eq!(server.max_in_flight(), 1);
}

#[test]
fn limit_flags_reject_nonsense() {
    for args in [
        ["--concurrency", "0"],
        ["--timeout", "0"],
        ["--timeout", "soon"],
        ["--max-page-bytes", "lots"],
        ["--max-redirects", "many"],
    ] {
        let mut all = vec!["snap", "http://a.test/"];
        all.extend_from_slice(&args);
        let run = linksnap(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(args[0]), "{}", run.stderr);
    }
}

#[test]
fn the_capture_deadline_cuts_off_slow_assets_but_saves_the_page() {
    let server = FixtureServer::start();
    let run = snap(
        &server.url("/page-with?img=/slow/5000"),
        &["--timeout", "1", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(outcome_of(&run.json(), "/slow/5000"), "timed-out");
}

#[test]
fn an_asset_whose_body_does_not_decode_is_recorded_as_a_decode_error() {
    let server = FixtureServer::start();
    let run = snap(
        &server.url("/page-with?img=/compressed/corrupt"),
        &["--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = run.json();
    assert_eq!(
        outcome_of(&report, "/compressed/corrupt"),
        "decode",
        "{report:#}"
    );
}
