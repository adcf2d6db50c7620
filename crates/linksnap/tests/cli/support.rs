//! Test support: a fixture web server on loopback, and running the `linksnap` binary.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;

/// Where the fixture site lives.
pub fn site_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/site")
}

/// The shared corpus of real pages (`../shared/corpus` beside the repository).
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("LINKSNAP_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"));
    assert!(
        dir.join("readability").is_dir(),
        "the corpus is missing at {} (set LINKSNAP_CORPUS)",
        dir.display()
    );
    dir
}

/// A font the fixture site serves as a web font (installed by scripts/test.sh).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

#[derive(Clone, Default)]
struct Shared {
    log: Arc<Mutex<Vec<String>>>,
    /// The HTTP version of every request, in order (`HTTP/1.1`, `HTTP/2.0`).
    versions: Arc<Mutex<Vec<String>>>,
    /// Requests to `/changing` so far.
    changes: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests to `/slow/…` in progress now, and the most there ever were at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

/// A web server on a loopback address, serving the fixture site, the corpus and routes that
/// misbehave on purpose. Stops when dropped.
pub struct FixtureServer {
    pub addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FixtureServer {
    /// Starts on 127.0.0.1.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1".parse().unwrap())
    }

    /// Starts on `ip`, port chosen by the kernel.
    pub fn start_on(ip: IpAddr) -> Self {
        let shared = Shared::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fixture server start");
        Self {
            addr,
            shared,
            stop: Some(stop_tx),
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request so far, as `path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// The HTTP version of every request so far.
    pub fn versions(&self) -> Vec<String> {
        self.shared.versions.lock().unwrap().clone()
    }

    /// Starts an HTTPS server on 127.0.0.1 (HTTP/2 and HTTP/1.1 offered by ALPN) with a
    /// certificate from a fresh private CA; returns it and the CA's PEM file in `dir`.
    pub fn start_tls(dir: &Path) -> (Self, PathBuf) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "linksnap test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&leaf_key, &ca)
                .unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();

        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let shared = Shared::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(shared.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => match accepted {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                    };
                    let (acceptor, app) = (acceptor.clone(), app.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper_util::service::TowerToHyperService::new(app);
                        let _ = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                    });
                }
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("TLS fixture server start");
        (
            Self {
                addr,
                shared,
                stop: Some(stop_tx),
            },
            ca_path,
        )
    }

    /// `https://ADDR{path}`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{}", self.addr, path)
    }

    /// The most `/slow/…` requests that were ever in progress at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.lock().unwrap().1
    }

    /// How many requests asked for exactly `path` (query ignored).
    pub fn hits(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.split('?').next() == Some(path))
            .count()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/site/{*path}", get(site))
        .route("/corpus/{*path}", get(corpus))
        .route("/font/fixture.ttf", get(font))
        .route(
            "/plain",
            get(|| async { html("<title>Plain</title><p>plain page</p>") }),
        )
        .route("/redirect/{n}", get(redirect_chain))
        .route("/loop/{x}", get(redirect_loop))
        .route("/redirect-to", get(redirect_to))
        .route("/drip", get(drip))
        .route("/bomb", get(bomb))
        .route("/huge", get(huge))
        .route("/status/{code}", get(status_page))
        .route(
            "/empty",
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], "") }),
        )
        .route("/doc.pdf", get(pdf))
        .route("/cookie/page", get(cookie_page))
        .route("/cookie/style.css", get(cookie_css))
        .route("/bytes/{n}", get(page_of_size))
        .route("/blob/{n}", get(blob))
        .route("/page-with", get(page_with))
        .route("/hostile.html", get(hostile))
        .route("/escape/{port}", get(escape_page))
        .route("/reach/{port}", get(reach_page))
        .route("/rendered/moves.html", get(|| async {
            html(r#"<!doctype html><title>moves</title><p>the first page</p><script>addEventListener("load", function () { setTimeout(function () { location.href = "/site/rendered/frame.html"; }, 100); });</script>"#)
        }))
        .route("/rendered/alerts.html", get(|| async {
            html(r#"<!doctype html><title>alerts</title><p>shown before the alerts</p><script>setTimeout(function () { for (;;) { alert("again"); } }, 0);</script>"#)
        }))
        .route("/rendered/hog.html", get(|RawQuery(q): RawQuery| async move {
            // `?mib=N`: holds N MiB of numbers, then says so; without: more for ever.
            let mib = query_values(&q, "mib").pop().and_then(|m| m.parse::<u32>().ok());
            let stop = mib.map_or("Infinity".to_owned(), |m| m.to_string());
            html(format!(r#"<!doctype html><title>hog</title><p id="held">holding nothing</p><script>
var held = [], mib = 0;
while (mib < {stop}) {{ held.push(new Array(131072).fill(mib + 0.5)); mib += 1; }}
document.getElementById("held").textContent = "held " + mib + " MiB";
</script>"#))
        }))
        .route("/rendered/mislabeled.html", get(|| async {
            // UTF-8 bytes under a <meta> that says GB2312, no charset in the header.
            html("<!doctype html><meta charset=\"gb2312\"><title>标签</title><p>中文内容，标签说错了编码</p>")
        }))
        .route("/rendered/heavy.html", get(|| async {
            html(r#"<!doctype html><title>heavy</title><p>the text of a page whose resources never end</p><img id="huge" src="/huge" alt="too large"><script>fetch("/drip").then(function (r) { return r.text(); });</script>"#)
        }))
        .route("/rendered/busy.html", get(|| async {
            html(r#"<!doctype html><title>busy</title><p>a script that never yields</p><script>setTimeout(function () { for (;;) {} }, 100);</script>"#)
        }))
        .route("/rendered/tall.html", get(|| async {
            html(r#"<!doctype html><body style="margin:0"><div style="height:30000px;background:rgb(0,200,83)">tall</div></body>"#)
        }))
        .route("/slow/{ms}", get(slow))
        .route("/slow/{ms}/{tag}", get(slow_tagged))
        .route("/encoded/{name}", get(encoded))
        .route("/changing", get(changing))
        .route("/random/{n}", get(random_bytes))
        .route("/deep/{shape}/{n}", get(deep_page))
        .route("/compressed/{encoding}", get(compressed))
        .route(
            "/ua",
            get(|headers: HeaderMap| async move {
                let ua = headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                html(format!("<title>ua</title><p id=ua>{ua}</p>"))
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such fixture") })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            log_request,
        ))
        .with_state(shared)
}

async fn log_request(
    State(shared): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = req.uri();
    let entry = match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), q),
        None => uri.path().to_owned(),
    };
    shared.log.lock().unwrap().push(entry);
    shared
        .versions
        .lock()
        .unwrap()
        .push(format!("{:?}", req.version()));
    next.run(req).await
}

fn html(body: impl Into<String>) -> Response {
    ([(header::CONTENT_TYPE, "text/html")], body.into()).into_response()
}

fn content_type_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "text/javascript",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ttf" => "font/ttf",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn serve_file(root: &Path, rel: &str) -> Response {
    if rel.split('/').any(|seg| seg == "..") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let path = root.join(rel);
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type_for(&path))], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

async fn site(UrlPath(path): UrlPath<String>) -> Response {
    serve_file(&site_dir(), &path)
}

async fn corpus(UrlPath(path): UrlPath<String>) -> Response {
    serve_file(&corpus_dir(), &path)
}

/// A page whose script tries what an archived page must never manage once it is served by
/// linksnap: read the app's cookies and call its API with the viewer's session. It writes
/// what it managed into `#result`, and paints the page green if nothing worked, red if
/// anything did.
async fn hostile() -> Response {
    const PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><title>hostile page</title></head>
<body><h1>Hostile page</h1><pre id="result">pending</pre>
<script>
(async function () {
  var out = [];
  try { out.push("cookie=" + document.cookie); } catch (e) { out.push("cookie-denied"); }
  try { localStorage.setItem("x", "1"); out.push("storage=yes"); } catch (e) { out.push("storage-denied"); }
  try {
    var r = await fetch("/api/v1/links", { credentials: "include" });
    out.push("fetch=" + r.status + " " + (await r.text()).slice(0, 300));
  } catch (e) { out.push("fetch-blocked"); }
  document.getElementById("result").textContent = out.join("\n");
  // What it managed, in a colour (a sandboxed frame cannot be read from outside):
  // green when the sandbox held, red when anything got through.
  var held = out.indexOf("cookie-denied") >= 0 && out.indexOf("fetch-blocked") >= 0;
  document.body.style.background = held ? "rgb(0, 200, 83)" : "rgb(200, 0, 0)";
})();
</script></body></html>"#;
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

/// A page that tries every way out of its snapshot towards `http://127.0.0.1:PORT/…` (a
/// canary the test listens on): a popup, `<a target=_blank>` and `<a target=_top>`
/// clicked, top navigation, navigating itself, a meta refresh (made by script), a form. Its
/// link to click sits in the top-left corner, where a test can click it as a user would.
async fn escape_page(UrlPath(port): UrlPath<u16>) -> Response {
    let c = format!("http://127.0.0.1:{port}");
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>escape page</title>
</head><body style="margin:0">
<a id="blank" href="{c}/blank-link" target="_blank" style="position:fixed;left:0;top:0;width:300px;height:80px;display:block;background:#ccc">open</a>
<a id="top" href="{c}/top-link" target="_top">top</a>
<form id="f" action="{c}/form" method="post"><input name="x" value="1"></form>
<pre id="result" style="margin-top:100px">escape page</pre>
<script>
var C = "{c}";
var tried = [];
function attempt(name, f) {{ try {{ f(); tried.push(name); }} catch (e) {{ tried.push(name + "-threw"); }} }}
// A meta refresh (a capture drops one written in the page; this one is made by script).
attempt("meta", function () {{ var m = document.createElement("meta"); m.httpEquiv = "refresh"; m.content = "3;url=" + C + "/meta-refresh"; document.head.appendChild(m); }});
attempt("open", function () {{ window.open(C + "/popup?" + encodeURIComponent(location.href)); }});
setTimeout(function () {{ attempt("form", function () {{ document.getElementById("f").submit(); }}); }}, 100);
setTimeout(function () {{ attempt("blank-click", function () {{ document.getElementById("blank").click(); }}); }}, 200);
setTimeout(function () {{ attempt("top-click", function () {{ document.getElementById("top").click(); }}); }}, 300);
setTimeout(function () {{ attempt("top", function () {{ top.location.href = C + "/top?" + encodeURIComponent(location.href); }}); }}, 400);
setTimeout(function () {{ attempt("self", function () {{ location.href = C + "/self?" + encodeURIComponent(location.href); }}); }}, 3000);
document.getElementById("result").textContent = "ran";
document.body.style.background = "rgb(0, 200, 83)";
</script></body></html>"#
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// A page whose script, when it runs, reaches for `127.0.0.1:PORT` every way a page can
/// load something (each attempt names itself in the path), then says `tried N` in
/// `#result`.
async fn reach_page(UrlPath(port): UrlPath<u16>, RawQuery(q): RawQuery) -> Response {
    let host = query_values(&q, "host")
        .pop()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let c = format!("{host}:{port}");
    // Navigating away and opening windows are no loads a snapshot's policy can stop:
    // asked for only where the browser engine's interception is what is tested.
    let navigate = if query_values(&q, "navigate").is_empty() {
        String::new()
    } else {
        format!(
            r#"window.open("http://{c}/popup");
var blank = document.createElement("a"); blank.href = "http://{c}/blank-link"; blank.target = "_blank"; document.body.appendChild(blank); blank.click();
setTimeout(function () {{ location.href = "http://{c}/navigate-away"; }}, 50);"#
        )
    };
    let page = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>reach page</title>
</head><body>
<pre id="result">not run</pre>
<script>
var C = "http://{c}", W = "ws://{c}";
var tried = 0;
function attempt(f) {{ try {{ f(); }} catch (e) {{}} tried++; }}
function add(html) {{ var d = document.createElement("div"); d.innerHTML = html; document.body.appendChild(d); }}
attempt(function () {{ fetch(C + "/fetch", {{ mode: "no-cors" }}).catch(function () {{}}); }});
attempt(function () {{ var x = new XMLHttpRequest(); x.open("GET", C + "/xhr"); x.send(); }});
attempt(function () {{ new WebSocket(W + "/websocket"); }});
attempt(function () {{ new EventSource(C + "/eventsource"); }});
attempt(function () {{ navigator.sendBeacon(C + "/beacon", "x"); }});
attempt(function () {{ new Image().src = C + "/image"; }});
attempt(function () {{ new Audio(C + "/audio").play().catch(function () {{}}); }});
attempt(function () {{ add('<img src="' + C + '/img-tag">'); }});
attempt(function () {{ add('<iframe src="' + C + '/iframe"></iframe>'); }});
attempt(function () {{ add('<object data="' + C + '/object"></object>'); }});
attempt(function () {{ add('<embed src="' + C + '/embed">'); }});
attempt(function () {{ add('<video src="' + C + '/video"></video>'); }});
attempt(function () {{ add('<link rel="stylesheet" href="' + C + '/stylesheet">'); }});
attempt(function () {{ add('<link rel="prefetch" href="' + C + '/prefetch">'); }});
attempt(function () {{ add('<link rel="preload" as="image" href="' + C + '/preload">'); }});
attempt(function () {{ add('<link rel="icon" href="' + C + '/icon">'); }});
attempt(function () {{ add('<style>@import url("' + C + '/css-import"); body {{ background-image: url("' + C + '/css-background") }} @font-face {{ font-family: f; src: url("' + C + '/css-font") }} pre {{ font-family: f }}</style>'); }});
attempt(function () {{ var s = document.createElement("script"); s.src = C + "/script"; document.head.appendChild(s); }});
attempt(function () {{ import(C + "/module").catch(function () {{}}); }});
attempt(function () {{ new Worker(C + "/worker"); }});
attempt(function () {{ var b = new Blob(["fetch('" + C + "/from-worker')"], {{ type: "text/javascript" }}); new Worker(URL.createObjectURL(b)); }});
attempt(function () {{ navigator.serviceWorker.register(C + "/service-worker"); }});
attempt(function () {{ new SharedWorker(C + "/shared-worker"); }});
attempt(function () {{ var b = new Blob(["fetch('" + C + "/from-shared-worker')"], {{ type: "text/javascript" }}); new SharedWorker(URL.createObjectURL(b)); }});
attempt(function () {{ document.write('<img src="' + C + '/document-write">'); }});
// The same loopback machine under other names and spellings.
["localhost", "[::1]", "[::ffff:127.0.0.2]", "2130706434", "0x7f.0.0.2", "127.1"].forEach(function (h) {{
  attempt(function () {{ fetch("http://" + h + ":{port}/fetch-" + h, {{ mode: "no-cors" }}).catch(function () {{}}); }});
  attempt(function () {{ new WebSocket("ws://" + h + ":{port}/websocket-" + h); }});
}});
{navigate}
document.getElementById("result").textContent = "tried " + tried;
</script></body></html>"#
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

async fn font() -> Response {
    match std::fs::read(FONT) {
        Ok(b) => ([(header::CONTENT_TYPE, "font/ttf")], b).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "font missing: run scripts/test.sh").into_response(),
    }
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// Exactly `n` redirects, then the plain page.
async fn redirect_chain(UrlPath(n): UrlPath<u32>) -> Response {
    match n {
        0 => html("<title>Plain</title><p>plain page</p>"),
        1 => redirect("/plain"),
        n => redirect(&format!("/redirect/{}", n - 1)),
    }
}

async fn redirect_loop(UrlPath(x): UrlPath<String>) -> Response {
    redirect(if x == "a" { "/loop/b" } else { "/loop/a" })
}

fn query_values(raw: &Option<String>, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

async fn redirect_to(RawQuery(q): RawQuery) -> Response {
    let to = query_values(&q, "to")
        .pop()
        .unwrap_or_else(|| "/plain".into());
    redirect(&to)
}

/// One small chunk every 100 ms, forever.
async fn drip() -> Response {
    let s = stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("<p>{n}</p>\n"))),
            n + 1,
        ))
    });
    ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(s)).into_response()
}

/// A gzip body of about 300 KB that inflates to 300 MB.
async fn bomb() -> Response {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BOMB.get_or_init(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(b"<html><body>").unwrap();
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..300 {
            enc.write_all(&zeros).unwrap();
        }
        enc.finish().unwrap()
    });
    (
        [
            (header::CONTENT_TYPE, "text/html"),
            (header::CONTENT_ENCODING, "gzip"),
        ],
        body.clone(),
    )
        .into_response()
}

/// 300 MB of HTML, streamed without a Content-Length.
async fn huge() -> Response {
    let chunk = Bytes::from(format!("<p>{}</p>\n", "x".repeat(65_000)));
    let s = stream::iter((0..4700).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    ([(header::CONTENT_TYPE, "text/html")], Body::from_stream(s)).into_response()
}

async fn status_page(UrlPath(code): UrlPath<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        format!("<title>Status {code}</title><h1>Error page {code}</h1>"),
    )
        .into_response()
}

async fn pdf() -> Response {
    let body = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n".to_vec();
    ([(header::CONTENT_TYPE, "application/pdf")], body).into_response()
}

async fn cookie_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html")),
            (
                header::SET_COOKIE,
                HeaderValue::from_static("snapsession=kept; Path=/"),
            ),
        ],
        r#"<link rel="stylesheet" href="/cookie/style.css"><p>cookie page</p>"#,
    )
        .into_response()
}

async fn cookie_css(headers: HeaderMap) -> Response {
    let has = headers
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap_or("").contains("snapsession=kept"));
    let css = if has {
        "body{--cookie:present}"
    } else {
        "body{--cookie:missing}"
    };
    ([(header::CONTENT_TYPE, "text/css")], css).into_response()
}

/// An HTML page of exactly `n` bytes.
async fn page_of_size(UrlPath(n): UrlPath<usize>) -> Response {
    let head = "<title>sized</title><p>";
    let mut body = String::from(head);
    body.push_str(&"y".repeat(n.saturating_sub(head.len())));
    body.truncate(n);
    html(body)
}

/// `n` bytes of a PNG-looking body.
async fn blob(UrlPath(n): UrlPath<usize>) -> Response {
    let mut body = b"\x89PNG\r\n\x1a\n".to_vec();
    body.resize(n, 0);
    body.truncate(n);
    ([(header::CONTENT_TYPE, "image/png")], body).into_response()
}

/// A page with one `<img>` per `img` parameter and one stylesheet per `css` parameter.
async fn page_with(RawQuery(q): RawQuery) -> Response {
    let mut body = String::from("<title>page with</title>");
    for css in query_values(&q, "css") {
        body.push_str(&format!("<link rel=stylesheet href=\"{css}\">"));
    }
    for img in query_values(&q, "img") {
        body.push_str(&format!("<img src=\"{img}\">"));
    }
    for frame in query_values(&q, "frame") {
        body.push_str(&format!("<iframe src=\"{frame}\"></iframe>"));
    }
    html(body)
}

async fn slow(State(shared): State<Shared>, UrlPath(ms): UrlPath<u64>) -> Response {
    {
        let mut g = shared.in_flight.lock().unwrap();
        g.0 += 1;
        g.1 = g.1.max(g.0);
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    shared.in_flight.lock().unwrap().0 -= 1;
    (
        [(header::CONTENT_TYPE, "image/png")],
        b"\x89PNG\r\n\x1a\nslow".to_vec(),
    )
        .into_response()
}

async fn slow_tagged(
    state: State<Shared>,
    UrlPath((ms, _tag)): UrlPath<(u64, String)>,
) -> Response {
    slow(state, UrlPath(ms)).await
}

/// The same page with the body compressed as `encoding` says (and the header to match).
async fn compressed(UrlPath(encoding): UrlPath<String>) -> Response {
    let page = format!(
        "<title>compressed</title><p>{}</p>",
        format!("body sent as {encoding}. ").repeat(400)
    );
    let raw = page.as_bytes();
    let body = match encoding.as_str() {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::BrotliCompress(
                &mut &raw[..],
                &mut out,
                &brotli::enc::BrotliEncoderParams::default(),
            )
            .unwrap();
            out
        }
        "zstd" => zstd::encode_all(raw, 3).unwrap(),
        // Claims gzip, is not: a body that cannot be decoded.
        "corrupt" => {
            return (
                [
                    (header::CONTENT_TYPE, "image/png"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                b"\x1f\x8b\x08\x00this is not deflate data at all".to_vec(),
            )
                .into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html".to_owned()),
            (header::CONTENT_ENCODING, encoding),
        ],
        body,
    )
        .into_response()
}

/// `n` pseudo-random bytes: a body no compression shrinks.
/// A page of `n` nested elements of one shape (`div`, `span`, `table`, `list`, `svg`),
/// with a title and some words at the bottom.
async fn deep_page(UrlPath((shape, n)): UrlPath<(String, usize)>) -> Response {
    let open = match shape.as_str() {
        "div" => "<div>",
        "span" => "<span>",
        "table" => "<table><tr><td>",
        "list" => "<ul><li>",
        "svg" => "<svg><g>",
        "mixed" => "<div><span>",
        _ => return (StatusCode::NOT_FOUND, "no such shape").into_response(),
    };
    html(format!(
        "<!doctype html><title>Deep {shape}</title>{}<p>the bottom of the tower</p>",
        open.repeat(n)
    ))
}

async fn random_bytes(UrlPath(n): UrlPath<usize>) -> Response {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let body: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
}

/// An article whose second paragraph changes on every request.
async fn changing(State(shared): State<Shared>) -> Response {
    let n = shared
        .changes
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let para = "This paragraph stays the same in every version of the article. ".repeat(3);
    html(format!(
        "<html><head><title>Changing</title></head><body><article><h1>Changing</h1>\
         <p>{para}</p><p>The price today is {} euros.</p><p>{para}</p></article></body></html>",
        n * 10
    ))
}

/// Pages in legacy encodings; the charset is declared the way the name says.
async fn encoded(UrlPath(name): UrlPath<String>) -> Response {
    let texts: HashMap<&str, (&'static encoding_rs::Encoding, &str, bool)> = HashMap::from([
        (
            "gbk-meta",
            (
                encoding_rs::GBK,
                "简体中文网页，编码测试：北京欢迎你。",
                true,
            ),
        ),
        (
            "big5-header",
            (
                encoding_rs::BIG5,
                "繁體中文網頁，編碼測試：臺北歡迎你。",
                false,
            ),
        ),
        (
            "sjis-meta",
            (
                encoding_rs::SHIFT_JIS,
                "日本語のウェブページ、文字コードのテストです。",
                true,
            ),
        ),
        (
            "eucjp-header",
            (
                encoding_rs::EUC_JP,
                "日本語のウェブページ、EUC-JPのテストです。",
                false,
            ),
        ),
        (
            "euckr-meta",
            (
                encoding_rs::EUC_KR,
                "한국어 웹 페이지, 인코딩 시험입니다.",
                true,
            ),
        ),
        (
            "cp1251-undeclared",
            (
                encoding_rs::WINDOWS_1251,
                "Русская страница, проверка кодировки без объявления. Съешь же ещё этих мягких французских булок, да выпей чаю.",
                false,
            ),
        ),
    ]);
    let Some((enc, text, meta)) = texts.get(name.as_str()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let declared = if name.ends_with("undeclared") {
        None
    } else {
        Some(enc.name())
    };
    let meta_tag = match (meta, declared) {
        (true, Some(n)) => format!("<meta charset=\"{n}\">"),
        _ => String::new(),
    };
    let page = format!(
        "<html><head>{meta_tag}<title>{text}</title></head><body><p>{text}</p></body></html>"
    );
    let (bytes, _, _) = enc.encode(&page);
    let ct = match (meta, declared) {
        (false, Some(n)) => format!("text/html; charset={n}"),
        _ => "text/html".to_owned(),
    };
    ([(header::CONTENT_TYPE, ct)], bytes.into_owned()).into_response()
}

/// A DNS server on loopback that answers every query with NXDOMAIN. Every run of the
/// binary in these tests asks it instead of the system's name servers, so no test ever
/// sends a DNS query off this machine (the corpus pages name real hosts).
pub fn stub_dns() -> std::net::SocketAddr {
    static ADDR: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind stub DNS");
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if let Some(reply) = nxdomain(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        addr
    })
}

/// The NXDOMAIN answer to a DNS query: same id and question, no records.
fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + *query.get(end)? as usize;
    }
    end += 5; // the zero label, QTYPE, QCLASS
    let mut reply = query.get(..end)?.to_vec();
    reply[2] = 0x80 | (query[2] & 0x79); // QR, opcode, RD
    reply[3] = 0x80 | 3; // RA, NXDOMAIN
    reply[6..12].fill(0); // no answer, authority or additional records
    Some(reply)
}

/// The result of running the binary.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stderr))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `linksnap ARGS` with a clean environment for the variables it reads.
pub fn linksnap(args: &[&str]) -> Run {
    linksnap_with_env(args, &[])
}

/// The binary with `args`, asking the stub DNS server, and none of the variables it reads
/// inherited from the environment running the tests.
fn command(args: &[&str]) -> Command {
    // `LINKSNAP_TEST_BIN` runs the tests against another build (bench/writes.sh measures
    // a release build, and an older one, with the load tests).
    let bin = std::env::var_os("LINKSNAP_TEST_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_linksnap").into());
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("LINKSNAP_DNS_SERVER", stub_dns().to_string())
        .env_remove("LINKSNAP_ALLOW_NET")
        .env_remove("LINKSNAP_USER_AGENT")
        .env_remove("LINKSNAP_STRIP_PARAMS")
        .env_remove("LINKSNAP_LOG")
        .env_remove("LINKSNAP_CHROMIUM")
        .env_remove("LINKSNAP_BROWSER_TABS")
        .env_remove("LINKSNAP_BROWSER_PDF")
        // The default engine is `auto` (the browser, Chromium being installed for the
        // browser tests): the suite's other captures are of the static engine, and the
        // tests of the browser engine, or of the default, say so.
        .env("LINKSNAP_ENGINE", "static");
    cmd
}

/// The binary as a `Command`, set up like every other run in these tests.
pub fn command_for_test(args: &[&str]) -> Command {
    command(args)
}

/// Runs the binary with `input` on standard input.
pub fn linksnap_stdin(args: &[&str], input: &[u8]) -> Run {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn linksnap");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for linksnap");
    writer.join().unwrap();
    out.into()
}

pub fn linksnap_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = command(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run linksnap").into()
}

/// `linksnap snap URL --allow-net 127.0.0.0/8 ARGS…`.
pub fn snap(url: &str, extra: &[&str]) -> Run {
    let mut args = vec!["snap", url, "--allow-net", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    linksnap(&args)
}

/// Runs `linksnap ARGS` and also returns its peak resident memory in bytes (from
/// `wait4`, so it is this child's own figure).
pub fn linksnap_measured(args: &[&str]) -> (Run, u64) {
    use std::io::Read as _;
    use std::process::Stdio;
    // Reaped by wait4 below, which also yields this child's own rusage.
    #[allow(clippy::zombie_processes)]
    let mut child = command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn linksnap");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).unwrap();
        v
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let run = Run {
        code,
        stdout: out_t.join().unwrap(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap()).into_owned(),
    };
    (run, usage.ru_maxrss as u64 * 1024)
}

/// Flags every headless Chromium of the tests gets: no calls home, no QUIC, fixed scale, and
/// no name ever looked up (every name but 127.0.0.1 is "not found").
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--force-device-scale-factor=1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

/// Debian's Chromium, which `scripts/test.sh` installs.
pub fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|c| Path::new(c).exists())
        .expect("chromium is not installed: run scripts/test.sh, which installs it")
}

/// The resource of a `snap --format json` report whose URL ends with `url_suffix`.
pub fn report_resource<'a>(
    report: &'a serde_json::Value,
    url_suffix: &str,
) -> &'a serde_json::Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with(url_suffix))
        .unwrap_or_else(|| panic!("{url_suffix} not in {report:#}"))
}

/// A fresh directory under the target dir, kept after the test for inspection.
pub fn artifact_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-artifacts")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Private, as linksnap makes its own: many tests use it as a data directory, and
    // linksnap warns about one that other accounts can read.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}
