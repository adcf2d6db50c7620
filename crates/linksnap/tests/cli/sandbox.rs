//! The served snapshot in real Chromium: an archived page that tries every way out —
//! a popup, links with `target=_blank` and `_top` (clicked by script and by the mouse),
//! top navigation, navigating itself, a meta refresh, a form — reaches nothing, whether
//! it is opened at `/snapshots/…`, through a public share link, or framed in its link's
//! page. A canary server on loopback counts every request that gets out.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::layout::Point;
use chromiumoxide::page::ScreenshotParams;

use crate::readcache::sign_in;
use crate::serve::{Serve, http, send, token};
use crate::support::{FixtureServer, artifact_dir, linksnap};
use crate::ui::{browser, eval};

/// A loopback server that answers anything and, once armed, records each request line.
/// A connection that sends nothing is not a request: Chromium opens one ahead when the
/// mouse presses a link (its navigation predictor), before any policy applies to the
/// navigation; no request follows when the navigation is blocked.
fn canary() -> (u16, Arc<AtomicBool>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(Mutex::new(Vec::new()));
    let (a, h) = (armed.clone(), hits.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            if a.load(Ordering::SeqCst) && !line.is_empty() {
                h.lock().unwrap().push(line);
            }
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 7\r\nconnection: close\r\n\r\nescaped",
            );
        }
    });
    (port, armed, hits)
}

/// Whether a screenshot of the page shows `rgb` somewhere: how a test reads what a
/// framed snapshot's script did (a sandboxed frame cannot be read from outside).
pub(crate) async fn shows_colour(page: &Page, rgb: [u8; 3]) -> bool {
    let png = page
        .screenshot(ScreenshotParams::builder().full_page(true).build())
        .await
        .expect("screenshot");
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .any(|p| p[..3] == rgb)
}

/// What the fixtures' hostile pages paint when their script ran and got nowhere.
pub(crate) const GREEN: [u8; 3] = [0, 200, 83];

/// Waits until the framed snapshot's script has run and painted green (red: what it
/// tried got through).
pub(crate) async fn wait_script_ran(page: &Page, what: &str) {
    for _ in 0..100 {
        if shows_colour(page, GREEN).await {
            return;
        }
        assert!(
            !shows_colour(page, [200, 0, 0]).await,
            "{what}: the archived page's script got through"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: the framed snapshot's script never ran");
}

#[test]
fn an_archived_page_cannot_navigate_open_windows_or_submit_from_any_view() {
    let site = FixtureServer::start();
    let (port, armed, hits) = canary();
    let dir = artifact_dir("sandbox-escape");
    let data = dir.join("data");
    let d = data.to_str().unwrap();
    crate::ui::add_admin(&data, "ann");
    let page_url = site.url(&format!("/escape/{port}"));
    let run = linksnap(&[
        "--data",
        d,
        "add",
        &page_url,
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = Serve::start(&data, &["--workers", "0"]);
    let tok = token(&data, "t");
    let id = http("GET", &s.url("/api/v1/links"), Some(&tok), None).json()["links"][0]["id"]
        .as_i64()
        .unwrap();
    // The snapshot kept every way out (so the test can fail): the script, the refresh.
    let auth = format!("Bearer {tok}");
    let raw = send(
        "GET",
        &s.url(&format!("/snapshots/{id}/latest")),
        &[("authorization", &auth)],
        None,
        true,
    );
    let html = String::from_utf8_lossy(&raw.body).into_owned();
    for kept in [
        "window.open",
        "m.httpEquiv = \"refresh\"",
        "target=\"_blank\"",
        "<form",
    ] {
        assert!(html.contains(kept), "{kept} not in the snapshot: {html}");
    }
    let share = http(
        "POST",
        &s.url(&format!("/api/v1/links/{id}/shares")),
        Some(&tok),
        None,
    );
    assert_eq!(share.status, 201);
    let share_path = share.json()["url"].as_str().unwrap().to_owned();
    let session = sign_in(&s, "ann", "correct+horse+battery");
    armed.store(true, Ordering::SeqCst);

    let base = s.url("");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let browser = browser(&dir.join("profile")).await;
        let page = browser.new_page("about:blank").await.unwrap();
        let pages_before = browser.pages().await.unwrap().len();
        crate::ui::set_session(&page, &base, &session).await;
        for (view, path, click) in [
            (
                "the snapshot opened in a tab",
                format!("/snapshots/{id}/latest"),
                true,
            ),
            ("a public share link", share_path.clone(), true),
            ("the link's page", format!("/links/{id}"), false),
        ] {
            let url = format!("{base}{path}");
            page.goto(url.clone()).await.unwrap();
            wait_script_ran(&page, view).await;
            if click {
                // A user's click on the snapshot's `target=_blank` link.
                page.click(Point { x: 150.0, y: 40.0 }).await.unwrap();
            }
            // The meta refresh and the self-navigation (3 s) have had their time.
            tokio::time::sleep(Duration::from_millis(4500)).await;
            let top: String = eval(&page, "location.href").await;
            assert_eq!(top, url, "{view}: the top page moved");
            let pages = browser.pages().await.unwrap().len();
            assert_eq!(pages, pages_before, "{view}: a window was opened");
            let got = hits.lock().unwrap().clone();
            assert!(got.is_empty(), "{view}: requests got out: {got:?}");
        }
    });
    drop(s);
}

#[test]
fn snapshots_are_framed_never_top_level_and_never_scripts() {
    let site = FixtureServer::start();
    let dir = artifact_dir("sandbox-headers");
    let run = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "add",
        &site.url("/page-with?headers"),
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let s = Serve::start(&dir, &["--workers", "0"]);
    let tok = token(&dir, "t");
    let auth = format!("Bearer {tok}");
    let share = http("POST", &s.url("/api/v1/links/1/shares"), Some(&tok), None);
    let share_path = share.json()["url"].as_str().unwrap().to_owned();
    for (path, public) in [
        ("/snapshots/1/latest".to_owned(), false),
        (share_path, true),
    ] {
        let get = |dest: &str| {
            send(
                "GET",
                &s.url(&path),
                &[("authorization", &auth), ("sec-fetch-dest", dest)],
                None,
                true,
            )
        };
        // A top-level navigation gets the framing page, never the snapshot.
        let doc = get("document");
        assert_eq!(doc.status, 200);
        let body = String::from_utf8_lossy(&doc.body).into_owned();
        assert!(
            body.contains(&format!("<iframe src=\"{path}\" sandbox=\"allow-scripts\"")),
            "{body}"
        );
        let csp = doc.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-src 'self'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
        assert_eq!(doc.headers["referrer-policy"], "no-referrer");
        // The frame gets the snapshot: no popups, framed only by this origin.
        let frame = get("iframe");
        let csp = frame.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("sandbox allow-scripts;"), "{csp}");
        assert!(
            !csp.contains("allow-popups") && !csp.contains("allow-top"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
        let plain = send(
            "GET",
            &s.url(&path),
            &[("authorization", &auth)],
            None,
            true,
        );
        assert_eq!(frame.body, plain.body, "the frame gets the snapshot itself");
        assert!(!String::from_utf8_lossy(&frame.body).contains("<iframe src="));
        // Never as a script, style sheet or worker.
        for dest in ["script", "style", "worker", "serviceworker"] {
            assert_eq!(get(dest).status, 403, "{path} as {dest}");
        }
        // Share links are not for search engines.
        assert_eq!(
            doc.headers.get("x-robots-tag").is_some(),
            public,
            "{path}: {:?}",
            doc.headers
        );
        if public {
            assert!(
                frame.headers["x-robots-tag"]
                    .to_str()
                    .unwrap()
                    .contains("noindex")
            );
        }
    }
}

#[test]
fn captured_originals_that_are_not_documents_are_downloads() {
    let site = FixtureServer::start();
    let dir = artifact_dir("sandbox-originals");
    for page in ["/cookie/style.css", "/doc.pdf"] {
        let run = linksnap(&[
            "--data",
            dir.to_str().unwrap(),
            "add",
            &site.url(page),
            "--wait",
            "--allow-net",
            "127.0.0.0/8",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let s = Serve::start(&dir, &["--workers", "0"]);
    let tok = token(&dir, "t");
    let auth = format!("Bearer {tok}");
    let listed = http("GET", &s.url("/api/v1/links"), Some(&tok), None).json();
    for l in listed["links"].as_array().unwrap() {
        let id = l["id"].as_i64().unwrap();
        let a = send(
            "GET",
            &s.url(&format!("/snapshots/{id}/latest")),
            &[("authorization", &auth), ("sec-fetch-dest", "iframe")],
            None,
            true,
        );
        assert_eq!(a.status, 200);
        let kind = a.headers["content-type"].to_str().unwrap().to_owned();
        let disposition = a
            .headers
            .get("content-disposition")
            .map(|v| v.to_str().unwrap().to_owned());
        if kind.starts_with("text/css") {
            // A style sheet served inline from this origin could be loaded by an injected
            // page as this origin's own: it is a download.
            assert_eq!(
                disposition.as_deref(),
                Some("attachment; filename=\"original\""),
                "{kind}"
            );
        } else {
            assert!(kind.starts_with("application/pdf"), "{kind}");
            assert_eq!(disposition, None, "a PDF is shown in place");
        }
    }
    assert_eq!(listed["links"].as_array().unwrap().len(), 2);
}

#[test]
fn a_snapshot_file_opened_from_disk_reaches_nothing_though_its_scripts_run() {
    // Outside linksnap's viewer there is no sandbox and no CSP header: the file's own
    // Content-Security-Policy meta is all that stands between its kept scripts and the
    // network. The page's script reaches for a canary 37 ways at once.
    let site = FixtureServer::start();
    let (port, armed, hits) = canary();
    let dir = artifact_dir("sandbox-from-disk");
    let out = dir.join("reach.html");
    let run = linksnap(&[
        "snap",
        &site.url(&format!("/reach/{port}")),
        "-o",
        out.to_str().unwrap(),
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("new WebSocket(W"),
        "the script was kept: {html}"
    );
    armed.store(true, Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let browser = browser(&dir.join("profile")).await;
        let page = browser.new_page("about:blank").await.unwrap();
        page.goto(format!("file://{}", out.display()))
            .await
            .unwrap();
        crate::ui::wait_for(
            &page,
            "document.getElementById('result').textContent == 'tried 37'",
            "the snapshot's script to run",
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let got = hits.lock().unwrap().clone();
    assert!(got.is_empty(), "requests got out: {got:?}");
}
