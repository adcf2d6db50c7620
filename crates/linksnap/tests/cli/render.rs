//! The snapshot, opened in real headless Chromium with the network unreachable, renders
//! like the live page and makes no network request.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{FixtureServer, artifact_dir, snap};

const WIDTH: u32 = 900;
const HEIGHT: u32 = 800;

/// Takes a screenshot of `url` in a window of `size`. `proxy`, when given, is where every
/// network request goes (loopback included), so that its connection count proves whether
/// any was made.
pub(crate) fn screenshot(url: &str, out: &Path, proxy: Option<u16>, (width, height): (u32, u32)) {
    let profile = out.with_extension("profile");
    let mut cmd = Command::new(crate::support::chromium());
    cmd.args(["--headless", "--no-sandbox"])
        .args(crate::support::CHROMIUM_FLAGS)
        .args(["--hide-scrollbars", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", out.display()));
    if let Some(port) = proxy {
        cmd.arg(format!("--proxy-server=http://127.0.0.1:{port}"))
            .arg("--proxy-bypass-list=<-loopback>");
    }
    let output = cmd.arg(url).output().expect("run chromium");
    assert!(
        out.exists(),
        "no screenshot of {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(profile);
}

/// A proxy that accepts connections, records each request line and answers nothing.
fn recording_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            l.lock().unwrap().push(line);
        }
    });
    (port, lines)
}

/// Chromium calls home (clock, updater, accounts) whatever page it shows; those requests
/// are its own, go nowhere (the proxy answers nothing) and are not the snapshot's.
fn is_chromium_own(request_line: &str) -> bool {
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let host = target
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    [
        ".google.com",
        ".googleapis.com",
        ".gstatic.com",
        ".gvt1.com",
    ]
    .iter()
    .any(|d| host.ends_with(d))
}

/// Takes a screenshot of the snapshot file `snapshot` in a window of `size`, every
/// request it makes going to a recording proxy; returns the requests that were not
/// Chromium's own.
pub(crate) fn screenshot_offline(snapshot: &Path, out: &Path, size: (u32, u32)) -> Vec<String> {
    let (proxy_port, proxy_log) = recording_proxy();
    let file_url = format!("file://{}", snapshot.canonicalize().unwrap().display());
    screenshot(&file_url, out, Some(proxy_port), size);
    proxy_log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !is_chromium_own(l))
        .cloned()
        .collect()
}

/// How many pixels of two RGBA buffers (of the same length) differ by more than 32 in
/// some channel.
pub(crate) fn differing_pixels(a: &[u8], b: &[u8]) -> usize {
    a.chunks(4)
        .zip(b.chunks(4))
        .filter(|(x, y)| x.iter().zip(y.iter()).any(|(p, q)| p.abs_diff(*q) > 32))
        .count()
}

pub(crate) fn rgba(path: &Path) -> (u32, u32, Vec<u8>) {
    let mut decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let px = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, px)
}

fn has_colour(px: &[u8], rgb: [u8; 3]) -> bool {
    px.chunks(4).any(|p| p[..3] == rgb)
}

#[test]
fn chromium_own_requests_are_told_apart_from_the_snapshots() {
    assert!(is_chromium_own(
        "CONNECT update.googleapis.com:443 HTTP/1.1"
    ));
    assert!(is_chromium_own(
        "GET http://clients2.google.com/time/1/current HTTP/1.1"
    ));
    assert!(!is_chromium_own(
        "GET http://127.0.0.1:8080/site/img/photo.png HTTP/1.1"
    ));
    assert!(!is_chromium_own("CONNECT cdn.example.invalid:443 HTTP/1.1"));
    assert!(!is_chromium_own(
        "GET http://evil.google.com.example/ HTTP/1.1"
    ));
}

#[test]
fn the_snapshot_renders_like_the_live_page_with_the_network_cut_off() {
    let server = FixtureServer::start();
    let dir = artifact_dir("render");
    let snapshot = dir.join("snapshot.html");
    let live_url = server.url("/site/pages/index.html");
    let run = snap(&live_url, &["-o", snapshot.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let live_png = dir.join("live.png");
    screenshot(&live_url, &live_png, None, (WIDTH, HEIGHT));

    let before = server.requests().len();
    let snap_png = dir.join("snapshot.png");
    let requests = screenshot_offline(&snapshot, &snap_png, (WIDTH, HEIGHT));
    assert_eq!(
        requests,
        Vec::<String>::new(),
        "the snapshot made network requests"
    );
    assert_eq!(
        server.requests().len(),
        before,
        "the snapshot reached the live site: {:?}",
        &server.requests()[before..]
    );

    let (w1, h1, live) = rgba(&live_png);
    let (w2, h2, shot) = rgba(&snap_png);
    assert_eq!((w1, h1), (w2, h2));
    // Sanity: the live page really rendered its assets, and so did the snapshot.
    for (what, colour) in [
        ("photo.png", [200, 40, 40]),
        ("lazy.png via its loader", [150, 60, 190]),
        ("deep.png from the third @import", [0, 200, 200]),
        ("picture.png from <source>", [40, 160, 60]),
        ("inline-style.png", [0, 120, 255]),
        ("frame.png inside the iframe", [100, 70, 20]),
    ] {
        assert!(has_colour(&live, colour), "live page lacks {what}");
        assert!(has_colour(&shot, colour), "snapshot lacks {what}");
    }
    assert!(
        !has_colour(&shot, [255, 0, 255]),
        "noscript content shown although scripts run"
    );
    let differing = differing_pixels(&live, &shot);
    let ratio = differing as f64 / f64::from(w1 * h1);
    std::fs::write(
        dir.join("diff.txt"),
        format!("{differing} of {} pixels differ ({ratio:.5})\n", w1 * h1),
    )
    .unwrap();
    assert!(
        ratio < 0.002,
        "{differing} pixels differ ({ratio:.4}); see {}",
        dir.display()
    );
}
