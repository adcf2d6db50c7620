//! The browser engine (`snap --engine browser`) in Debian's Chromium: a page built by its
//! scripts is saved as the browser shows it, without its scripts; every request the
//! browser makes goes through linksnap's fetcher and address policy, so a page reaching
//! for a loopback canary every way it can (and under every spelling of the address)
//! reaches nothing.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::{FixtureServer, artifact_dir, chromium, linksnap};

/// How the rendered fixture page's constructs (`fixtures/site/rendered/js/*.js`) must be
/// written into a browser capture, each only there once a browser ran the page's scripts.
const RENDERED: [&str; 21] = [
    "<h1 class=\"title\">rendered by script</h1>",
    ".inserted-marker { color: rgb(1, 2, 3)",
    ".adopted-marker { color: rgb(4, 5, 6)",
    "<template shadowrootmode=\"open\"><style>.in-shadow { color: rgb(7, 8, 9)",
    "<template shadowrootmode=\"open\"><p style=\"border: 2px solid rgb(200, 40, 40)\">open shadow content</p><slot></slot>",
    "<template shadowrootmode=\"closed\"><p style=\"border: 2px solid rgb(40, 40, 200)\">closed shadow content</p><slot></slot></template><em>inner light content</em>",
    "<span>slotted light content</span>",
    "<p>added after a delay</p>",
    "value=\"typed by script\"",
    "id=\"agree\" type=\"checkbox\" checked=\"\"",
    "<option selected=\"\">two</option>",
    ">a story typed in</textarea>",
    "frame says fetched in the frame</p>",
    "frame says fetched in the frame of another origin",
    "feed item 1.1",
    "feed item 3.5",
    "id=\"chart\" style=\"width: 300px; height: 100px;\" width=\"30\" height=\"10\"",
    "<img id=\"lazy\" src=\"data:image/png;base64,",
    "@font-face { font-family: \"ScriptedByUrl\"; src: url(\"data:",
    "@font-face { font-family: \"ScriptedByBytes\"; src: url(\"data:",
    "connect-src 'none'",
];

/// The rendered page's constructs and the text each must show in any snapshot of it
/// (`fixtures/site/rendered/constructs.json`, read by the fidelity benchmark too).
fn constructs() -> Vec<(String, Vec<String>)> {
    let path = crate::support::site_dir().join("rendered/constructs.json");
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    map.into_iter()
        .map(|(name, shows)| {
            let shows = shows.as_array().unwrap().iter();
            (
                name,
                shows.map(|s| s.as_str().unwrap().to_owned()).collect(),
            )
        })
        .collect()
}

/// `snap URL` with `engine`, loopback allowed, to `out`, with `extra` flags.
fn snap_loopback(
    url: &str,
    engine: &str,
    out: &std::path::Path,
    extra: &[&str],
) -> crate::support::Run {
    let mut args = vec![
        "snap",
        url,
        "--engine",
        engine,
        "--chromium",
        chromium(),
        "--allow-net",
        "127.0.0.0/8",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    linksnap(&args)
}

/// The fixture site, a second one (another port: another origin) and the address of the
/// rendered page (with `query`, e.g. `c=shadow` for one construct alone) whose second frame
/// comes from the second.
fn rendered_page_with_another_origin(query: &str) -> (FixtureServer, FixtureServer, String) {
    let site = FixtureServer::start();
    let other = FixtureServer::start();
    let port = other.addr.port();
    let url = site.url(&format!("/site/rendered/page.html?cross={port}{query}"));
    (site, other, url)
}

#[test]
fn a_page_built_by_its_scripts_is_saved_as_the_browser_shows_it_without_its_scripts() {
    let (site, other, url) = rendered_page_with_another_origin("");
    let dir = artifact_dir("browser-rendered");
    let snap = |engine: &str, out: &str| {
        let out = dir.join(out);
        let run = snap_loopback(&url, engine, &out, &[]);
        assert_eq!(run.code, 0, "{engine}: {}", run.stderr);
        std::fs::read_to_string(out).unwrap()
    };
    // The static engine keeps the shell (so this test can fail): none of what the
    // scripts make is there.
    let shell = snap("static", "static.html");
    assert!(shell.contains("Loading…"));
    for (name, shows) in constructs() {
        for s in shows {
            assert!(!shell.contains(&s), "{name}: {s}: {shell}");
        }
    }
    for r in RENDERED.iter().take(RENDERED.len() - 1) {
        assert!(!shell.contains(r), "{r}: {shell}");
    }

    let html = snap("browser", "browser.html");
    for r in RENDERED {
        assert!(html.contains(r), "`{r}` not in the snapshot: {html}");
    }
    for (name, shows) in constructs() {
        for s in shows {
            assert!(
                html.contains(&s),
                "{name}: `{s}` not in the snapshot: {html}"
            );
        }
    }
    assert!(!html.contains("Loading…"), "{html}");
    // The canvas is an image of what was drawn; the lazy image is eager; no script of
    // the page is left.
    assert!(!html.contains("<canvas"), "{html}");
    assert!(!html.contains("loading=\"lazy\""), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("fetch("), "{html}");
    // The data the page fetched came once per fetch, through the browser's requests (the
    // walk took it from them): the page's, the frame's, the chart's and three pages of
    // the list; the frame of another origin fetched its own from its own origin.
    let data = "/site/rendered/data.json";
    assert_eq!(site.hits(data), 6, "{:?}", site.requests());
    assert_eq!(other.hits(data), 1, "{:?}", other.requests());
}

#[test]
fn each_construct_s_snapshot_opened_offline_looks_like_the_live_page_and_asks_for_nothing() {
    use crate::render::{differing_pixels, rgba, screenshot_offline};
    let dir = artifact_dir("browser-fidelity");
    let mut report = String::new();
    let mut all = constructs();
    all.push(("all".to_owned(), Vec::new()));
    for (name, shows) in all {
        let query = if name == "all" {
            String::new()
        } else {
            format!("&c={name}")
        };
        let (site, other, url) = rendered_page_with_another_origin(&query);
        let (html, live) = (
            dir.join(format!("{name}.html")),
            dir.join(format!("{name}-live.png")),
        );
        let run = snap_loopback(
            &url,
            "browser",
            &html,
            &["--screenshot", live.to_str().unwrap()],
        );
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let text = std::fs::read_to_string(&html).unwrap();
        for s in shows {
            assert!(text.contains(&s), "{name}: `{s}` not in {}", html.display());
        }
        let asked = (site.requests().len(), other.requests().len());
        // The snapshot from disk, in a plain headless Chromium whose every request goes to
        // a recording proxy, in a window as wide as the live screenshot and as tall as
        // the page.
        let (width, height) = png_size(&live);
        let offline = dir.join(format!("{name}-offline.png"));
        let requests = screenshot_offline(&html, &offline, (width, height));
        assert_eq!(
            requests,
            Vec::<String>::new(),
            "{name}: the snapshot made requests"
        );
        assert_eq!(
            (site.requests().len(), other.requests().len()),
            asked,
            "{name}: {:?} {:?}",
            site.requests(),
            other.requests()
        );
        // Drawn alike: the share of pixels whose colour differs by at most 32 in every
        // channel.
        let ((w1, h1, a), (w2, h2, b)) = (rgba(&live), rgba(&offline));
        assert_eq!(w1, w2, "{name}");
        let rows = h1.min(h2) as usize;
        let row = w1 as usize * 4;
        let pixels = rows * w1 as usize;
        let alike = pixels - differing_pixels(&a[..rows * row], &b[..rows * row]);
        let similar = alike as f64 / pixels as f64;
        report += &format!("{name:8} {w1}x{h1}: {alike} of {pixels} pixels alike ({similar:.5})\n");
        assert!(similar >= 0.995, "{name}: {similar}: see {}", dir.display());
    }
    std::fs::write(dir.join("similarity.txt"), &report).unwrap();
    eprint!("{report}");
}

/// A canary listening on one port on three loopback addresses (127.0.0.1, 127.0.0.2 and
/// ::1): it records every connection, whether or not anything is sent on it.
fn canary() -> (u16, Arc<Mutex<Vec<String>>>) {
    let hits = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let (Ok(second), Ok(third)) = (
            TcpListener::bind(("127.0.0.1", port)),
            TcpListener::bind(("::1", port)),
        ) else {
            continue;
        };
        for listener in [first, second, third] {
            let hits = hits.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let peer = conn.local_addr().map(|a| a.to_string()).unwrap_or_default();
                    hits.lock().unwrap().push(peer);
                }
            });
        }
        return (port, hits);
    }
    panic!("no port free on 127.0.0.1, 127.0.0.2 and ::1 at once");
}

#[test]
fn a_page_reaching_for_the_network_every_way_reaches_nothing_and_is_still_saved() {
    // The page is served from 127.0.0.3, the only address allowed; the canary listens on
    // the other loopback addresses. Fetch, XHR, WebSocket, EventSource, beacons, images,
    // media, frames, objects, styles, fonts, scripts, modules, workers, shared workers, a
    // service worker, document.write, navigating away, and localhost, [::1],
    // [::ffff:127.0.0.2], 2130706434, 0x7f.0.0.2 and 127.1: none gets there.
    let site = FixtureServer::start_on("127.0.0.3".parse().unwrap());
    let (port, hits) = canary();
    let dir = artifact_dir("browser-canary");
    let out = dir.join("reach.html");
    let run = linksnap(&[
        "snap",
        &site.url(&format!("/reach/{port}?host=127.0.0.2&navigate=1")),
        "--engine",
        "browser",
        "--chromium",
        chromium(),
        "--allow-net",
        "127.0.0.3/32",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = hits.lock().unwrap().clone();
    assert!(got.is_empty(), "connections reached the canary: {got:?}");
    // The refusals are on record, named by the rule that refused them.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let refused: Vec<String> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    // (A shared worker's too: the capture's connection to it asked the capture's
    // fetcher, which refused.)
    for path in [
        "/fetch",
        "/xhr",
        "/image",
        "/stylesheet",
        "/script",
        "/from-shared-worker",
    ] {
        let url = format!("http://127.0.0.2:{port}{path}");
        assert!(refused.contains(&url), "{url} not refused: {refused:?}");
    }
}

#[test]
fn a_refused_page_and_a_missing_chromium_are_clear_errors() {
    let site = FixtureServer::start();
    let url = site.url("/site/rendered/page.html");
    let snap =
        |chromium: &str| linksnap(&["snap", &url, "--engine", "browser", "--chromium", chromium]);
    // Loopback is refused without an allow rule: never contacted, by the browser either.
    let run = snap(chromium());
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert_eq!(site.hits("/site/rendered/page.html"), 0);
    let run = snap("/nonexistent/chromium");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("apt install chromium"),
        "{}",
        run.stderr
    );
}

/// The width and height of a PNG.
fn png_size(path: &std::path::Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let reader = decoder.read_info().unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn a_screenshot_and_a_pdf_are_taken_of_the_rendered_page_with_tall_pages_cut() {
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-extras");
    let (shot, pdf) = (dir.join("page.png"), dir.join("page.pdf"));
    let snap = |path: &str, engine: &str| {
        snap_loopback(
            &site.url(path),
            engine,
            &dir.join("page.html"),
            &[
                "--screenshot",
                shot.to_str().unwrap(),
                "--pdf",
                pdf.to_str().unwrap(),
            ],
        )
    };
    let run = snap("/site/rendered/page.html", "browser");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The whole page: 1280 wide, taller than its 3,000 px spacer.
    let (w, h) = png_size(&shot);
    assert_eq!(w, 1280);
    assert!(h > 3000, "{h}");
    let pdf_bytes = std::fs::read(&pdf).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF-"), "not a PDF");
    // A page 30,000 px tall is cut at 16,384, and says so.
    let run = snap("/rendered/tall.html", "browser");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(png_size(&shot), (1280, 16_384));
    assert!(
        run.stderr.contains("taller than 16384 px"),
        "{}",
        run.stderr
    );
    // The static engine renders nothing to take a picture of.
    let run = snap("/site/rendered/page.html", "static");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("need the browser engine"),
        "{}",
        run.stderr
    );
}

/// `linksnap ARGS` with the engine left to its default (no `--engine`, no
/// `LINKSNAP_ENGINE`) and `path` as `PATH`, where the default looks for a Chromium.
fn linksnap_default_engine(args: &[&str], path: &str) -> crate::support::Run {
    let out = crate::support::command_for_test(args)
        .env_remove("LINKSNAP_ENGINE")
        .env("PATH", path)
        .output()
        .expect("run linksnap");
    out.into()
}

/// A `PATH` holding only a link to Debian's Chromium, as `chromium`.
fn path_with_chromium(dir: &std::path::Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(chromium(), bin.join("chromium")).unwrap();
    bin.to_str().unwrap().to_owned()
}

#[test]
fn the_library_captures_with_the_browser_by_default_and_records_which_engine() {
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-library");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    let path = path_with_chromium(&dir);
    let with = |args: &[&str]| {
        let mut all = vec!["--data", d];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--allow-net", "127.0.0.0/8"]);
        linksnap_default_engine(&all, &path)
    };
    let url = site.url("/site/rendered/page.html");
    // No engine named anywhere: `auto` finds Chromium on PATH and renders the page.
    let run = with(&["add", "--wait", &url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.stdout_str().trim().to_owned();
    // What the page's scripts wrote is what the library keeps and finds.
    let search = linksnap(&["--data", d, "search", "rendered by script", "--json"]);
    let hits = search.json();
    assert_eq!(hits.as_array().map(Vec::len), Some(1), "{hits}");
    // The config file's `engine` is the library's setting when no flag or variable says
    // otherwise; a flag wins over it.
    std::fs::write(data.join("config.toml"), "engine = \"static\"\n").unwrap();
    let run = with(&["recapture", &id, "--wait"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = with(&["recapture", &id, "--wait", "--engine", "browser"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let versions = linksnap(&["--data", d, "versions", &id, "--json"]).json();
    let engines: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["engine"].as_str().unwrap())
        .collect();
    assert_eq!(engines, ["browser", "static", "browser"], "{versions}");
    // An engine the file misspells is a clear error, and nothing is captured.
    std::fs::write(data.join("config.toml"), "engine = \"chrome\"\n").unwrap();
    let run = with(&["recapture", &id, "--wait"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("engine") && run.stderr.contains("chrome"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(data.join("config.toml")).unwrap();
    // Without a Chromium anywhere, `auto` says so once and captures statically.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = linksnap_default_engine(
        &[
            "--data",
            d,
            "add",
            "--wait",
            &site.url("/site/rendered/page.html?again=1"),
            "--allow-net",
            "127.0.0.0/8",
        ],
        empty.to_str().unwrap(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("no Chromium found").count(),
        1,
        "{}",
        run.stderr
    );
    let id = run.stdout_str().trim().to_owned();
    let versions = linksnap(&["--data", d, "versions", &id, "--json"]).json();
    assert_eq!(versions[0]["engine"], "static", "{versions}");
}

/// A server on `dir` with one worker and the engine left to its default (Chromium on
/// its `PATH`: the browser).
fn browser_server(dir: &std::path::Path) -> crate::serve::Serve {
    let path = path_with_chromium(dir);
    let mut cmd = crate::support::command_for_test(&[
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-net",
        "127.0.0.0/8",
        "--workers",
        "1",
    ]);
    cmd.env_remove("LINKSNAP_ENGINE").env("PATH", path);
    crate::serve::Serve::spawn(cmd)
}

/// Adds `url` through the API and waits until its capture is done (and succeeded).
fn add_captured(s: &crate::serve::Serve, tok: &str, url: &str) -> i64 {
    use crate::serve::{http, wait_captured};
    let link = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(tok),
        Some(serde_json::json!({"url": url})),
    )
    .json();
    let id = link["id"].as_i64().unwrap();
    let done = wait_captured(s, tok, id);
    assert_eq!(done["status"], "ok", "{done}\n{}", s.log());
    id
}

#[test]
fn the_server_s_workers_capture_with_the_browser_engine() {
    use crate::serve::{http, token};
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-serve");
    let s = browser_server(&dir);
    let tok = token(&dir, "t");
    // The browser engine's Chromium runs beside the server once it captured, and its
    // memory is counted and reported (net stats, /metrics): none before.
    let memory =
        || http("GET", &s.url("/api/v1/net/stats"), Some(&tok), None).json()["memory"].clone();
    let idle = memory();
    assert_eq!(idle["children"], 0, "{idle}");
    assert_eq!(idle["children_pss_bytes"], 0, "{idle}");
    let id = add_captured(&s, &tok, &site.url("/site/rendered/page.html"));
    let busy = memory();
    assert!(busy["children"].as_u64().unwrap() >= 2, "{busy}");
    assert!(
        busy["children_pss_bytes"].as_u64().unwrap() > 50 << 20,
        "{busy}"
    );
    let metrics = String::from_utf8(http("GET", &s.url("/metrics"), None, None).body).unwrap();
    let children_pss = metrics
        .lines()
        .find_map(|l| l.strip_prefix("linksnap_memory_pss_bytes{process=\"children\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(children_pss > f64::from(50 << 20), "{metrics}");
    let versions = http(
        "GET",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        None,
    )
    .json();
    assert_eq!(versions["versions"][0]["engine"], "browser", "{versions}");
    let snapshot = http(
        "GET",
        &s.url(&format!("/snapshots/{id}/latest")),
        Some(&tok),
        None,
    );
    let body = String::from_utf8_lossy(&snapshot.body).into_owned();
    assert!(body.contains("closed shadow content"), "{body}");

    // The version keeps a screenshot and a thumbnail (no PDF unless asked for), and
    // lists them; the API serves them to the link's owner only, and gc keeps them.
    assert_eq!(
        versions["versions"][0]["renderings"],
        serde_json::json!(["screenshot", "thumbnail"]),
        "{versions}"
    );
    let get = |what: &str, tok: &str| {
        http(
            "GET",
            &s.url(&format!("/api/v1/links/{id}/versions/1/{what}")),
            Some(tok),
            None,
        )
    };
    let check = |tok: &str| {
        let shot = get("screenshot", tok);
        assert_eq!(shot.status, 200);
        assert_eq!(shot.headers["content-type"], "image/png");
        let png = png::Decoder::new(std::io::Cursor::new(shot.body.clone()))
            .read_info()
            .unwrap();
        assert_eq!(png.info().width, 1280);
        assert!(png.info().height > 3000);
        let thumb = get("thumbnail", tok);
        assert_eq!(thumb.status, 200);
        assert_eq!(thumb.headers["content-type"], "image/jpeg");
        assert_eq!(jpeg_size(&thumb.body), Some((640, 360)));
        assert_eq!(get("pdf", tok).status, 404);
    };
    check(&tok);
    let gc = linksnap(&["--data", dir.to_str().unwrap(), "gc", "--older-than", "0"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    check(&tok);
    // The first user owns the data directory's library (where the link is); the second
    // has a library of their own.
    for user in ["ann", "bob"] {
        crate::security::add_user(dir.to_str().unwrap(), user, false);
    }
    let bob = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "--as",
        "bob",
        "token",
        "create",
        "b",
    ]);
    assert_eq!(bob.code, 0, "{}", bob.stderr);
    let bob = bob.stdout_str().trim().to_owned();
    assert_eq!(get("screenshot", &bob).status, 404);
}

/// The width and height of a baseline or progressive JPEG, from its frame header.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            let h = u32::from(u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]));
            let w = u32::from(u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]));
            return Some((w, h));
        }
        i += 2 + len;
    }
    None
}

#[test]
fn pages_that_never_let_go_end_at_the_deadline_with_a_clear_error() {
    // Alerts without end (each dismissed, the next one comes) and a script that never
    // yields: the capture ends at --timeout, exit 5, naming the time-out.
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-never");
    for page in ["/rendered/alerts.html", "/rendered/busy.html"] {
        let started = std::time::Instant::now();
        let run = snap_loopback(
            &site.url(page),
            "browser",
            &dir.join("out.html"),
            &["--timeout", "4"],
        );
        let took = started.elapsed();
        assert_eq!(run.code, 5, "{page}: {}", run.stderr);
        assert!(run.stderr.contains("timed out"), "{page}: {}", run.stderr);
        assert!(
            took < std::time::Duration::from_secs(12),
            "{page}: {took:?}"
        );
    }
}

#[test]
fn files_that_are_no_pages_are_kept_as_served() {
    // A PDF and bytes the browser would download: kept byte for byte, at once (the
    // download waited for the deadline before).
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-files");
    for path in ["/doc.pdf", "/random/200000"] {
        let out = dir.join("file");
        let started = std::time::Instant::now();
        let run = snap_loopback(&site.url(path), "browser", &out, &[]);
        assert_eq!(run.code, 0, "{path}: {}", run.stderr);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{path}"
        );
        let served =
            crate::support::linksnap(&["snap", &site.url(path), "--allow-net", "127.0.0.0/8"]);
        assert_eq!(std::fs::read(&out).unwrap(), served.stdout, "{path}");
    }
}

#[test]
fn a_page_whose_label_lies_about_its_encoding_is_read_as_the_static_engine_reads_it() {
    // UTF-8 bytes under a <meta charset="gb2312">: Chromium alone would draw mojibake;
    // told the encoding the static engine decides (the bytes are valid UTF-8), it draws
    // the text, and both engines keep the same words.
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-mislabeled");
    let url = site.url("/rendered/mislabeled.html");
    for engine in ["static", "browser"] {
        let run = snap_loopback(&url, engine, &dir.join("out.txt"), &["--format", "text"]);
        assert_eq!(run.code, 0, "{engine}: {}", run.stderr);
        let text = std::fs::read_to_string(dir.join("out.txt")).unwrap();
        assert!(
            text.contains("中文内容，标签说错了编码"),
            "{engine}: {text}"
        );
    }
}

#[test]
fn workers_and_shared_workers_have_their_requests_answered_by_the_capture() {
    // A dedicated and a shared worker fetch data and post it to the page: it arrives only
    // if the workers' requests, too, are answered by the capture's fetcher (Chromium has
    // no network of its own). A shared worker is a target of the browser, not of the
    // page: the capture attaches to it over a connection of its own.
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-worker");
    let out = dir.join("out.html");
    let url = site.url("/site/rendered/workers.html");
    let run = snap_loopback(&url, "browser", &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    for said in [
        "<p id=\"dedicated\">worker says fetched in the frame by a worker</p>",
        "<p id=\"shared\">shared worker says fetched in the frame by a shared worker</p>",
    ] {
        assert!(html.contains(said), "{said}: {html}");
    }
    let asked = |path: &str| {
        site.requests()
            .iter()
            .filter(|r| r.as_str() == path)
            .count()
    };
    for path in [
        "/site/rendered/workers/dedicated.js",
        "/site/rendered/data.json?dedicated",
        "/site/rendered/workers/shared.js",
        "/site/rendered/data.json?shared",
    ] {
        assert_eq!(asked(path), 1, "{path}: {:?}", site.requests());
    }
}

#[test]
fn hostile_pages_end_clearly_inside_the_deadline() {
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-hostile");
    let out = dir.join("out.html");
    let timed = |url: &str, extra: &[&str]| {
        let started = std::time::Instant::now();
        let run = snap_loopback(url, "browser", &out, extra);
        (run, started.elapsed())
    };
    let limit = ["--browser-heap-limit", "128", "--timeout", "20"];
    // A page whose scripts want memory without end: its renderer is stopped at the
    // limit, which crashes it: exit 1 saying so and naming the limit, long before the
    // deadline.
    let (run, took) = timed(&site.url("/rendered/hog.html"), &limit);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("crashed the browser's renderer")
            && run.stderr.contains("the limit of 128 MiB"),
        "{}",
        run.stderr
    );
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    // Under the limit, the same page is saved.
    let (run, _) = timed(&site.url("/rendered/hog.html?mib=32"), &limit);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("held 32 MiB")
    );

    // A 300 MB image and a response that never ends: the page is saved at the deadline
    // with what it shows, says so, and the image is left out for its size.
    let (run, took) = timed(
        &site.url("/rendered/heavy.html"),
        &["--timeout", "6", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(12), "{took:?}");
    assert!(
        run.stderr.contains("still loading at the deadline"),
        "{}",
        run.stderr
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // What the browser was answered is recorded as the static engine's fetches are.
    crate::snap::assert_exchange(
        &json["exchange"],
        site.addr,
        std::time::SystemTime::now() - took,
        std::time::SystemTime::now(),
    );
    assert!(
        json["text"]["text"]
            .as_str()
            .unwrap()
            .contains("whose resources never end"),
        "{json}"
    );
    let huge = crate::support::report_resource(&json, "/huge");
    assert_eq!(huge["outcome"], "too-large", "{huge}");

    // A document that never ends, a name that does not resolve, a redirect into a
    // refused address: each the static engine's error and exit code, inside the deadline.
    let (run, took) = timed(&site.url("/drip"), &["--timeout", "3"]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
    let (run, _) = timed("http://nowhere.invalid/", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("nowhere.invalid"), "{}", run.stderr);
    let refused = crate::support::linksnap(&[
        "snap",
        &site.url("/redirect-to?to=http://10.0.0.1/"),
        "--engine",
        "browser",
        "--chromium",
        chromium(),
        "--allow-net",
        "127.0.0.0/8",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("10.0.0.1"), "{}", refused.stderr);
}

#[test]
fn the_link_list_shows_thumbnails_of_browser_captures() {
    use crate::serve::token;
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-ui-thumbnails");
    crate::ui::add_admin(&dir, "ann");
    let s = browser_server(&dir);
    let tok = token(&dir, "t");
    let mut ids = Vec::new();
    for path in ["/site/rendered/page.html", "/rendered/tall.html"] {
        ids.push(add_captured(&s, &tok, &site.url(path)));
    }
    let session = crate::readcache::sign_in(&s, "ann", "correct+horse+battery");
    let base = s.url("");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let browser = crate::ui::browser(&dir.join("profile")).await;
        let page = browser.new_page("about:blank").await.unwrap();
        crate::ui::set_session(&page, &base, &session).await;
        page.goto(format!("{base}/")).await.unwrap();
        // Both links show their thumbnail, loaded (640×360, shown at 160×90).
        crate::ui::wait_for(
            &page,
            "document.querySelectorAll('li.link .thumb img').length == 2 && \
             Array.from(document.querySelectorAll('li.link .thumb img')).every(i => i.complete && i.naturalWidth == 640 && i.naturalHeight == 360)",
            "two loaded thumbnails in the list",
        )
        .await;
        // A link's page offers its screenshot.
        page.goto(format!("{base}/links/{}", ids[0])).await.unwrap();
        let href: String = crate::ui::eval(
            &page,
            "document.querySelector('a.screenshot').getAttribute('href')",
        )
        .await;
        assert_eq!(href, format!("/api/v1/links/{}/versions/1/screenshot", ids[0]));
    });
}

#[test]
fn a_page_that_moves_on_by_script_after_load_is_saved_where_it_went() {
    let site = FixtureServer::start();
    let dir = artifact_dir("browser-moves");
    let out = dir.join("moves.json");
    let run = snap_loopback(
        &site.url("/rendered/moves.html"),
        "browser",
        &out,
        &["--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["url"], site.url("/rendered/moves.html"));
    assert_eq!(
        report["final_url"],
        site.url("/site/rendered/frame.html"),
        "{report}"
    );
    assert_eq!(report["engine"], "browser");
    assert!(
        report["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("frame says fetched in the frame"),
        "{report}"
    );
}
