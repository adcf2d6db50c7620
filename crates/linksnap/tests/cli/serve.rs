//! `linksnap serve`, black-box: the real binary on port 0 with a fresh data directory per
//! test, the REST API over loopback, the CLI through the server's socket, shutdown.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{FixtureServer, artifact_dir, command_for_test, linksnap, linksnap_stdin};

/// A running `linksnap serve`; stopped with SIGTERM when dropped.
pub struct Serve {
    child: Option<Child>,
    /// The first TCP listener, e.g. `127.0.0.1:41234`.
    pub addr: String,
    /// Every address it printed.
    pub listening: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Serve {
    /// Starts `linksnap --data DIR serve --listen 127.0.0.1:0 --allow-net 127.0.0.0/8 EXTRA…`
    /// and waits until it listens.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(dir, extra, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--data", dir.to_str().unwrap(), "serve"];
        if !extra.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        args.extend(["--allow-net", "127.0.0.0/8"]);
        args.extend_from_slice(extra);
        let mut cmd = command_for_test(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd)
    }

    /// Starts a prepared `linksnap … serve` command and waits until it listens.
    pub fn spawn(mut cmd: std::process::Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn linksnap serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut listening = Vec::new();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        // Until the private socket (always last) is reported.
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(a) = line.strip_prefix("linksnap: listening on ") {
                listening.push(
                    a.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_owned(),
                );
                if a.ends_with("linksnap.sock") {
                    break;
                }
            }
        }
        assert!(
            !listening.is_empty(),
            "serve did not start: {}",
            log.lock().unwrap()
        );
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Self {
            child: Some(child),
            addr: listening[0].clone(),
            listening,
            stderr: log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// SIGTERM, then the exit code and everything it printed on stderr.
    pub fn stop(mut self) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let code = wait_with_timeout(&mut child, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(50));
        (code, self.stderr.lock().unwrap().clone())
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = wait_with_timeout(&mut child, Duration::from_secs(30));
        }
    }
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One request with a fresh client (no connection reuse between calls): these headers,
/// a body if any, redirects followed or not.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    follow_redirects: bool,
) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = reqwest::Client::builder().no_proxy();
        if !follow_redirects {
            client = client.redirect(reqwest::redirect::Policy::none());
        }
        let mut req = client
            .build()
            .unwrap()
            .request(method.parse().unwrap(), url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("request");
        Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.bytes().await.unwrap().to_vec(),
        }
    })
}

/// A JSON request (the token as `Authorization: Bearer`), redirects followed.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> Answer {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    send(
        method,
        url,
        &headers,
        body.map(|b| b.to_string().into_bytes()),
        true,
    )
}

pub fn token(dir: &Path, name: &str) -> String {
    let run = linksnap(&["--data", dir.to_str().unwrap(), "token", "create", name]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout_str().trim().to_owned()
}

/// Polls `GET /api/v1/links/{id}` until its status is not queued or capturing.
pub(crate) fn wait_captured(s: &Serve, token: &str, id: i64) -> Value {
    let start = Instant::now();
    loop {
        let a = http(
            "GET",
            &s.url(&format!("/api/v1/links/{id}")),
            Some(token),
            None,
        );
        assert_eq!(a.status, 200);
        let v = a.json();
        if !matches!(v["status"].as_str(), Some("queued" | "capturing")) {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never captured: {v}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_api_needs_a_token_and_serves_links_tags_search_and_snapshots() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-api");
    let s = Serve::start(&dir, &["--workers", "1"]);
    // A token created through the server (the CLI goes through its socket).
    let tok = token(&dir, "tests");
    assert!(tok.starts_with("lsk_"), "{tok}");

    assert_eq!(
        http("GET", &s.url("/healthz"), None, None).json()["status"],
        "ok"
    );
    let denied = http("GET", &s.url("/api/v1/links"), None, None);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["code"], "unauthorized");
    assert_eq!(denied.headers["www-authenticate"], "Bearer");
    let forged = format!("lsk_{}", "0".repeat(64));
    assert_eq!(
        http("GET", &s.url("/api/v1/links"), Some(&forged), None).status,
        401
    );
    assert_eq!(
        http("GET", &s.url("/snapshots/1/latest"), None, None).status,
        401,
        "snapshots need credentials too"
    );

    let url = site.url("/site/pages/index.html");
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": url, "tags": ["lang/rust", "编程"]})),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let link = created.json();
    for field in ["id", "url", "title", "tags", "status", "created_at"] {
        assert!(link.get(field).is_some(), "{field} missing: {link}");
    }
    assert_eq!(link["status"], "queued");
    let id = link["id"].as_i64().unwrap();
    // The same URL again: the existing link, with the new tag added, not a duplicate.
    let again = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": url, "tags": ["later"]})),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], id);

    let done = wait_captured(&s, &tok, id);
    assert_eq!(done["status"], "ok", "{done}");
    assert_eq!(done["versions"].as_array().unwrap().len(), 1);
    let snapshot_url = done["snapshot_url"]
        .as_str()
        .expect("snapshot_url")
        .to_owned();

    let snap = http("GET", &s.url(&snapshot_url), Some(&tok), None);
    assert_eq!(snap.status, 200);
    let csp = snap.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox allow-scripts"), "{csp}");
    assert!(!csp.contains("allow-same-origin"), "{csp}");
    assert!(csp.contains("connect-src 'none'"), "{csp}");
    assert!(String::from_utf8_lossy(&snap.body).contains("<html"));

    let list = http(
        "GET",
        &s.url("/api/v1/links?tag=lang&limit=10"),
        Some(&tok),
        None,
    )
    .json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["links"][0]["id"], id);
    let none = http("GET", &s.url("/api/v1/links?tag=nothing"), Some(&tok), None).json();
    assert_eq!(none["total"], 0);
    let bad = http("GET", &s.url("/api/v1/links?limit=0"), Some(&tok), None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "bad_request");

    let title_word = done["title"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let hits = http(
        "GET",
        &s.url(&format!("/api/v1/search?q={title_word}")),
        Some(&tok),
        None,
    );
    assert_eq!(hits.status, 200);
    assert_eq!(hits.json()[0]["id"], id, "{}", hits.json());

    let renamed = http(
        "POST",
        &s.url("/api/v1/tags/rename"),
        Some(&tok),
        Some(json!({"from": "lang", "to": "language"})),
    );
    assert_eq!(
        renamed.status,
        200,
        "{}",
        String::from_utf8_lossy(&renamed.body)
    );
    let tags: Vec<String> = http("GET", &s.url("/api/v1/tags"), Some(&tok), None)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(tags.contains(&"language/rust".to_owned()), "{tags:?}");
    assert!(tags.contains(&"编程".to_owned()), "{tags:?}");

    let edited = http(
        "PATCH",
        &s.url(&format!("/api/v1/links/{id}")),
        Some(&tok),
        Some(json!({"note": "read later", "favourite": true, "remove_tags": ["later"]})),
    )
    .json();
    assert_eq!(edited["note"], "read later");
    assert_eq!(edited["favourite"], true);
    assert!(!edited["tags"].to_string().contains("later\""), "{edited}");

    let unknown = http("GET", &s.url("/api/v1/nothing-here"), Some(&tok), None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "not_found");
    let missing = http("GET", &s.url("/api/v1/links/999"), Some(&tok), None);
    assert_eq!(missing.status, 404);
    let bad_url = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": "ftp://example.com/"})),
    );
    assert_eq!(bad_url.status, 422);
    assert_eq!(bad_url.json()["code"], "bad_url");

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
        http(
            "GET",
            &s.url(&format!("/api/v1/links/{id}")),
            Some(&tok),
            None
        )
        .status,
        404
    );

    // A revoked token stops working at once.
    let run = linksnap(&["--data", dir.to_str().unwrap(), "token", "revoke", "tests"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        http("GET", &s.url("/api/v1/links"), Some(&tok), None).status,
        401
    );
    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
    // The secret never reaches the log.
    assert!(!log.contains(&tok), "{log}");
}

#[test]
fn the_cli_runs_through_a_running_server() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-cli");
    let d = dir.to_str().unwrap();
    let s = Serve::start(&dir, &["--workers", "0"]);
    // Without the server the second writer would be refused; with it, commands work.
    let url = site.url("/site/pages/index.html");
    let run = linksnap(&[
        "--data",
        d,
        "add",
        &url,
        "--tag",
        "via/cli",
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout_str().trim(), "1");
    assert!(run.stderr.contains("saved version 1"), "{}", run.stderr);
    let ls = linksnap(&["--data", d, "ls", "--json", "--tag", "via"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    assert_eq!(ls.json()[0]["status"], "ok");
    // Standard input travels with the command.
    let import = linksnap_stdin(
        &["--data", d, "import", "-", "--no-capture"],
        b"https://example.com/one\nhttps://example.com/two\n",
    );
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(
        import.stderr.contains("imported 2 new links"),
        "{}",
        import.stderr
    );
    // Relative paths are the CLI's, not the server's.
    let cwd = artifact_dir("serve-cli-cwd");
    std::fs::write(cwd.join("list.txt"), "https://example.com/three\n").unwrap();
    let out = command_for_test(&["--data", d, "import", "list.txt", "--no-capture"])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Errors and exit codes come back as they would locally.
    let bad = linksnap(&["--data", d, "show", "999"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("no link with id 999"), "{}", bad.stderr);
    let usage = linksnap(&["--data", d, "tag", "1"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    let work = linksnap(&["--data", d, "work", "--once"]);
    assert_eq!(work.code, 1);
    assert!(
        work.stderr.contains("captures queued links itself"),
        "{}",
        work.stderr
    );
    // Every link is there, in the server's database.
    assert_eq!(
        linksnap(&["--data", d, "ls", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // The handshake: a client of another version is told so, clearly.
    let mut sock = std::os::unix::net::UnixStream::connect(dir.join("linksnap.sock")).unwrap();
    let body = "{\"args\":[\"ls\"],\"cwd\":\"/\"}\n";
    write!(
        sock,
        "POST /_cli/v1/run HTTP/1.1\r\nhost: 127.0.0.1\r\nlinksnap-protocol: 1\r\nlinksnap-version: 0.0.1-old\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(
        answer.contains("version_mismatch") && answer.contains("0.0.1-old"),
        "{answer}"
    );
    // And the CLI route is not reachable over TCP, even with a token.
    let tok = token(&dir, "t");
    let over_tcp = http("POST", &s.url("/_cli/v1/run"), Some(&tok), None);
    assert_eq!(over_tcp.status, 403);

    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        !dir.join("linksnap.sock").exists(),
        "the socket file is removed"
    );
    // With the server gone, the CLI opens the library itself again.
    assert_eq!(linksnap(&["--data", d, "ls"]).code, 0);
}

#[test]
fn listens_on_ipv4_ipv6_and_unix_sockets_at_once() {
    let dir = artifact_dir("serve-listeners");
    let unix = dir.join("api.sock");
    let unix_arg = format!("unix:{}", unix.display());
    let s = Serve::start(
        &dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--listen",
            &unix_arg,
            "--workers",
            "0",
        ],
    );
    assert_eq!(s.listening.len(), 4, "{:?}", s.listening);
    for addr in &s.listening[..2] {
        let a = http("GET", &format!("http://{addr}/healthz"), None, None);
        assert_eq!(a.status, 200, "{addr}");
    }
    assert!(s.listening[1].starts_with("[::1]:"), "{:?}", s.listening);
    let mut sock = std::os::unix::net::UnixStream::connect(&unix).unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    sock.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The data directory's socket is private to this user.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("linksnap.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // A second server on the same data directory is refused clearly.
    let second = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("one server per data directory"),
        "{}",
        second.stderr
    );
    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = artifact_dir("serve-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), "workerz = 2\n").unwrap();
    let run = linksnap(&["--data", dir.to_str().unwrap(), "serve"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("config.toml") && run.stderr.contains("workerz"),
        "{}",
        run.stderr
    );
    std::fs::write(dir.join("config.toml"), "listen = [\"127.0.0.1:0\"]\n").unwrap();
    let run = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--listen",
        "localhost",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--listen localhost"), "{}", run.stderr);
    let run = crate::support::linksnap_with_env(
        &["--data", dir.to_str().unwrap(), "serve"],
        &[("LINKSNAP_IDLE_TIMEOUT", "soon")],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("LINKSNAP_IDLE_TIMEOUT"),
        "{}",
        run.stderr
    );
}

#[test]
fn precedence_is_flags_then_environment_then_file() {
    let dir = artifact_dir("serve-precedence");
    std::fs::create_dir_all(&dir).unwrap();
    let free = |ip: &str| {
        std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (p_file, p_env, p_flag) = (free("127.0.0.1"), free("127.0.0.1"), free("127.0.0.1"));
    std::fs::write(
        dir.join("config.toml"),
        format!("listen = [\"127.0.0.1:{p_file}\"]\nworkers = 0\n"),
    )
    .unwrap();
    let s = Serve::start_with(&dir, &["--listen", &format!("127.0.0.1:{p_flag}")], &[]);
    assert_eq!(s.addr, format!("127.0.0.1:{p_flag}"));
    drop(s);
    let env = format!("127.0.0.1:{p_env}");
    let s = Serve::start_with(
        &dir,
        &["--listen", &format!("127.0.0.1:{p_flag}")],
        &[("LINKSNAP_LISTEN", &env)],
    );
    assert_eq!(
        s.addr,
        format!("127.0.0.1:{p_flag}"),
        "a flag beats the environment"
    );
    drop(s);
    // Without the flag: the environment beats the file. (`start` adds a listen flag
    // unless one is given, so give the env's own address as the flag's absence test.)
    let mut cmd = command_for_test(&["--data", dir.to_str().unwrap(), "serve"]);
    cmd.env("LINKSNAP_LISTEN", &env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on http"))
        .into_iter()
        .for_each(|l| first = l);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(first.contains(&env), "{first}");
    let mut cmd = command_for_test(&["--data", dir.to_str().unwrap(), "serve"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let line = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on http"))
        .unwrap_or_default();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(
        line.contains(&format!("127.0.0.1:{p_file}")),
        "the file applies: {line}"
    );
}

fn requested(site: &FixtureServer, path: &str) -> bool {
    site.requests().iter().any(|r| r.starts_with(path))
}

pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_stops_accepting() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-sigterm-requests");
    let d = dir.to_str().unwrap();
    let s = Serve::start(&dir, &["--workers", "0", "--shutdown-grace", "20s"]);
    let addr = s.addr.clone();
    // A CLI command in flight: a capture that takes 1.5 s, run by the server.
    let slow = site.url("/slow/1500/sigterm");
    let cli = command_for_test(&[
        "--data",
        d,
        "add",
        &slow,
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_until("the capture to start", || {
        requested(&site, "/slow/1500/sigterm")
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.pid(), libc::SIGTERM) };
    // New connections are refused at once.
    wait_until("the listener to close", || {
        std::net::TcpStream::connect(&addr).is_err()
    });
    let out = cli.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("saved version 1"));
    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
    // Nothing acknowledged was lost.
    let ls = linksnap(&["--data", d, "ls", "--json"]).json();
    assert_eq!(ls[0]["status"], "ok", "{ls}");
}

#[test]
fn sigterm_returns_captures_that_cannot_finish_in_time_to_the_queue() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-sigterm-captures");
    let d = dir.to_str().unwrap();
    let s = Serve::start(&dir, &["--workers", "1", "--shutdown-grace", "500ms"]);
    let tok = token(&dir, "t");
    let slow = site.url("/slow/4000/returned");
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": slow})),
    );
    assert_eq!(created.status, 202);
    wait_until("the worker to start the capture", || {
        requested(&site, "/slow/4000/returned")
    });
    let started = Instant::now();
    let (code, log) = s.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(log.contains("1 capture(s) returned to the queue"), "{log}");
    let ls = linksnap(&["--data", d, "ls", "--json"]).json();
    assert_eq!(ls[0]["status"], "queued", "{ls}");
    // The next worker captures it.
    let work = linksnap(&["--data", d, "work", "--once", "--allow-net", "127.0.0.0/8"]);
    assert_eq!(work.code, 0, "{}", work.stderr);
    assert_eq!(
        linksnap(&["--data", d, "ls", "--json"]).json()[0]["status"],
        "ok"
    );
}

#[test]
fn accepted_sockets_carry_the_configured_keepalive() {
    let dir = artifact_dir("serve-keepalive");
    let s = Serve::start(&dir, &["--workers", "0", "--keepalive", "30s,4s,5"]);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let port = s.addr.rsplit(':').next().unwrap().to_owned();
    let ss = std::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss (iproute2)");
    let table = String::from_utf8_lossy(&ss.stdout);
    // The server's end of the connection runs the keepalive timer, set to 30 s idle.
    let timer = table
        .split("timer:(keepalive,")
        .nth(1)
        .unwrap_or_else(|| panic!("no keepalive timer: {table}"));
    let secs: f64 = timer
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((25.0..=30.0).contains(&secs), "{table}");
    drop(c);
}

#[test]
fn slow_headers_idle_connections_and_large_bodies_are_cut_at_their_limits() {
    let dir = artifact_dir("serve-timeouts");
    let s = Serve::start(
        &dir,
        &[
            "--workers",
            "0",
            "--header-read-timeout",
            "1s",
            "--idle-timeout",
            "3s",
            "--form-limit",
            "1000",
        ],
    );
    let closed_within = |c: &mut std::net::TcpStream| {
        let start = Instant::now();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    };
    // Slowloris: half a request, then nothing.
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    let t = closed_within(&mut c);
    assert!(
        t >= Duration::from_millis(900) && t < Duration::from_millis(2500),
        "{t:?}"
    );
    // An idle keep-alive connection after a complete request: the idle timeout (3 s), not
    // the header timeout, decides.
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let t = closed_within(&mut c);
    assert!(
        t >= Duration::from_millis(2900) && t < Duration::from_secs(6),
        "{t:?}"
    );
    // The form limit (every route that takes no file), at its boundary.
    let tok = token(&dir, "t");
    let body = |n: usize| json!({"url": format!("https://example.com/{}", "a".repeat(n))});
    let fits = body(0).to_string().len();
    let at = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(body(1000 - fits)),
    );
    assert_ne!(at.status, 413, "{}", String::from_utf8_lossy(&at.body));
    let over = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(body(1001 - fits)),
    );
    assert_eq!(over.status, 413);
}

/// A request with a raw body.
fn http_raw(method: &str, url: &str, token: &str, body: &[u8]) -> Answer {
    let auth = format!("Bearer {token}");
    send(
        method,
        url,
        &[("authorization", &auth)],
        Some(body.to_vec()),
        true,
    )
}

#[test]
fn import_and_export_through_the_api() {
    let dir = artifact_dir("serve-import");
    let s = Serve::start(&dir, &["--workers", "0"]);
    let tok = token(&dir, "t");
    let file = r#"<!DOCTYPE NETSCAPE-Bookmark-file-1>
<DL><p>
<DT><A HREF="https://example.com/a" ADD_DATE="1600000000" TAGS="read,lang/rust">A</A>
<DD>a note
<DT><A HREF="https://example.com/b?utm_source=x" TAGS="中文">B</A>
<DT><A HREF="javascript:alert(1)">bad</A>
</DL><p>"#
        .as_bytes();
    let first = http_raw("POST", &s.url("/api/v1/import?capture=false"), &tok, file);
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let r = first.json();
    assert_eq!(
        (
            r["added"].as_i64(),
            r["existing"].as_i64(),
            r["skipped_count"].as_i64()
        ),
        (Some(2), Some(0), Some(1))
    );
    let again = http_raw("POST", &s.url("/api/v1/import?capture=false"), &tok, file).json();
    assert_eq!(
        (again["added"].as_i64(), again["existing"].as_i64()),
        (Some(0), Some(2))
    );
    // A broken file imports nothing.
    let bad = http_raw(
        "POST",
        &s.url("/api/v1/import?format=json"),
        &tok,
        b"[{\"url\": ",
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "bad_import");
    let wrong = http_raw("POST", &s.url("/api/v1/import?format=docx"), &tok, b"x");
    assert_eq!(wrong.status, 400);
    let json = http("GET", &s.url("/api/v1/export"), Some(&tok), None).json();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let html = http(
        "GET",
        &s.url("/api/v1/export?format=netscape"),
        Some(&tok),
        None,
    );
    let text = String::from_utf8_lossy(&html.body);
    assert!(
        text.contains("HREF=\"https://example.com/b\"") && text.contains("TAGS=\"中文\""),
        "{text}"
    );
    assert!(text.contains("<DD>a note"), "{text}");
    // What the API exported, the CLI's import reads back into another library.
    let other = artifact_dir("serve-import-other");
    let back = linksnap_stdin(
        &[
            "--data",
            other.to_str().unwrap(),
            "import",
            "-",
            "--no-capture",
        ],
        &html.body,
    );
    assert!(
        back.stderr.contains("imported 2 new links"),
        "{}",
        back.stderr
    );
    drop(s);
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_that_answer() {
    let dir = artifact_dir("serve-openapi");
    let s = Serve::start(&dir, &["--workers", "0"]);
    let tok = token(&dir, "t");
    let doc = http("GET", &s.url("/api/v1/openapi.json"), None, None);
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Something to point the path parameters at.
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": "https://example.com/x", "tags": ["a/b"]})),
    );
    assert_eq!(created.status, 202);
    // A nested tag's name travels percent-encoded.
    let deleted = http("DELETE", &s.url("/api/v1/tags/a%2Fb"), Some(&tok), None);
    assert_eq!(
        deleted.status,
        200,
        "{}",
        String::from_utf8_lossy(&deleted.body)
    );
    assert_eq!(deleted.json()["deleted"], 1);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let url = s.url(
                &path
                    .replace("{id}", &created.json()["id"].to_string())
                    .replace("{name}", "nothing-here")
                    .replace("{net}", "192.0.2.99%2F32"),
            );
            let body = match (method.as_str(), path.as_str()) {
                ("post", "/api/v1/links") => Some(json!({"url": "https://example.com/y"})),
                ("post", "/api/v1/tags/rename") => Some(json!({"from": "zz", "to": "yy"})),
                ("post", "/api/v1/tags/merge") => Some(json!({"from": ["zz"], "into": "yy"})),
                ("patch", _) => Some(json!({"note": "n"})),
                ("post", "/api/v1/net/bans") => Some(json!({"net": "192.0.2.99", "for": "1m"})),
                _ => None,
            };
            let a = http(&method.to_uppercase(), &url, Some(&tok), body);
            // Every documented operation is routed: neither the fallback nor 405.
            assert_ne!(a.status, 405, "{method} {path}");
            if a.status == 404 {
                assert_ne!(a.json()["message"], "no such route", "{method} {path}");
            }
            // And answers with one of the statuses it documents.
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                documented.iter().any(|c| **c == a.status.to_string()),
                "{method} {path} answered {} but documents {documented:?}",
                a.status
            );
            operations += 1;
        }
    }
    assert!(operations >= 16, "{operations}");
    for p in [
        "/api/v1/links",
        "/api/v1/links/{id}",
        "/api/v1/search",
        "/api/v1/tags",
        "/api/v1/links/{id}/versions",
        "/api/v1/links/{id}/diff",
        "/api/v1/import",
        "/api/v1/export",
        "/api/v1/jobs",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    drop(s);
}

#[test]
fn share_links_open_a_snapshot_without_credentials_until_revoked() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-share");
    let s = Serve::start(&dir, &["--workers", "1"]);
    let tok = token(&dir, "t");
    let link = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": site.url("/site/pages/index.html")})),
    )
    .json();
    let id = link["id"].as_i64().unwrap();
    // Nothing to share before a snapshot exists.
    let early = http("POST", &s.url("/api/v1/links/999/shares"), Some(&tok), None);
    assert_eq!(early.status, 404);
    assert_eq!(wait_captured(&s, &tok, id)["status"], "ok");
    let created = http(
        "POST",
        &s.url(&format!("/api/v1/links/{id}/shares")),
        Some(&tok),
        None,
    );
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let share = created.json();
    let url = share["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("/s/") && url.len() > 40, "{url}");
    // Anyone may open it: no token, no cookie; sandboxed like every snapshot.
    let open = http("GET", &s.url(&url), None, None);
    assert_eq!(open.status, 200);
    let csp = open.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox allow-scripts") && !csp.contains("allow-same-origin"));
    assert!(String::from_utf8_lossy(&open.body).contains("linksnap fixture"));
    // Listed without its secret.
    let listed = http(
        "GET",
        &s.url(&format!("/api/v1/links/{id}/shares")),
        Some(&tok),
        None,
    )
    .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0].get("url").is_none(), "{listed}");
    assert!(
        !String::from_utf8_lossy(&std::fs::read(dir.join("linksnap.db")).unwrap())
            .contains(url.trim_start_matches("/s/"))
    );
    // A guess does not open anything.
    assert_eq!(
        http("GET", &s.url(&format!("/s/{}", "0".repeat(64))), None, None).status,
        404
    );
    // Revoked: gone at once.
    let share_id = share["id"].as_i64().unwrap();
    assert_eq!(
        http(
            "DELETE",
            &s.url(&format!("/api/v1/shares/{share_id}")),
            Some(&tok),
            None
        )
        .status,
        204
    );
    assert_eq!(http("GET", &s.url(&url), None, None).status, 404);
    assert_eq!(
        http(
            "DELETE",
            &s.url(&format!("/api/v1/shares/{share_id}")),
            Some(&tok),
            None
        )
        .status,
        404
    );
    drop(s);
}

#[test]
fn an_event_stream_whose_browser_went_away_is_dropped_at_the_next_heartbeat() {
    let dir = artifact_dir("serve-sse");
    let s = Serve::start(&dir, &["--workers", "0", "--sse-heartbeat", "500ms"]);
    let tok = token(&dir, "t");
    let streams = || {
        http("GET", &s.url("/api/v1/server"), Some(&tok), None).json()["event_streams"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(streams(), 0);
    let mut browser = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        browser,
        "GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {tok}\r\naccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    // Heartbeats arrive while nothing happens.
    browser
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains("heartbeat") {
        let n = browser.read(&mut buf).unwrap();
        assert!(n > 0, "{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.starts_with("HTTP/1.1 200") && seen.contains("text/event-stream"),
        "{seen}"
    );
    assert_eq!(streams(), 1);
    // The browser goes away; the next heartbeat finds out and the stream is dropped.
    drop(browser);
    let gone = Instant::now();
    wait_until("the stream to be dropped", || streams() == 0);
    assert!(
        gone.elapsed() < Duration::from_secs(3),
        "{:?}",
        gone.elapsed()
    );
    let (code, _) = s.stop();
    assert_eq!(code, 0);
}

#[test]
fn each_user_sees_only_their_own_library() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-users");
    let d = dir.to_str().unwrap();
    for (name, admin) in [("ann", true), ("bob", false)] {
        let mut args = vec!["--data", d, "user", "add", name, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        let run = linksnap_stdin(&args, b"long enough password\n");
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // The first user owns the data directory's library, which the CLI uses by default;
    // bob's is his own.
    let run = linksnap(&[
        "--data",
        d,
        "add",
        "https://example.org/ann",
        "--tag",
        "ann/tag",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = linksnap(&[
        "--data",
        d,
        "--as",
        "bob",
        "add",
        "https://example.org/bob",
        "--tag",
        "bob/secret",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = linksnap(&["--data", d, "--as", "nobody", "ls"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no user named `nobody`"),
        "{}",
        run.stderr
    );
    let ann = token(&dir, "ann-token");
    let run = linksnap(&["--data", d, "--as", "bob", "token", "create", "bob-token"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bob = run.stdout_str().trim().to_owned();

    let s = Serve::start(&dir, &["--workers", "1"]);
    let urls = |tok: &str| -> Vec<String> {
        let a = http("GET", &s.url("/api/v1/links"), Some(tok), None);
        assert_eq!(a.status, 200);
        a.json()["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["url"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(urls(&ann), ["https://example.org/ann"]);
    assert_eq!(urls(&bob), ["https://example.org/bob"]);
    // Ids are per library: bob's link 1 is not ann's link 1.
    let one = http("GET", &s.url("/api/v1/links/1"), Some(&ann), None).json();
    assert_eq!(one["url"], "https://example.org/ann");
    // Tags and search stay apart.
    let tags = http("GET", &s.url("/api/v1/tags"), Some(&ann), None);
    assert!(
        !String::from_utf8_lossy(&tags.body).contains("secret"),
        "{}",
        String::from_utf8_lossy(&tags.body)
    );
    let hits = http("GET", &s.url("/api/v1/search?q=example"), Some(&ann), None);
    let hits = String::from_utf8_lossy(&hits.body).into_owned();
    assert!(
        hits.contains("example.org/ann") && !hits.contains("example.org/bob"),
        "{hits}"
    );
    // Through the running server the CLI acts as bob too.
    let run = linksnap(&["--data", d, "--as", "bob", "ls", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json().as_array().unwrap().len(), 1);
    assert_eq!(run.json()[0]["url"], "https://example.org/bob");

    // Bob's captures run (the workers serve every library), and his share link opens.
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&bob),
        Some(json!({"url": site.url("/site/pages/index.html")})),
    );
    assert_eq!(
        created.status,
        202,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let id = created.json()["id"].as_i64().unwrap();
    assert_eq!(wait_captured(&s, &bob, id)["status"], "ok");
    // Ann cannot reach it: in her library that id is another link or none.
    let theirs = http(
        "GET",
        &s.url(&format!("/snapshots/{id}/latest")),
        Some(&ann),
        None,
    );
    assert_eq!(
        theirs.status,
        404,
        "{}",
        String::from_utf8_lossy(&theirs.body)
    );
    let share = http(
        "POST",
        &s.url(&format!("/api/v1/links/{id}/shares")),
        Some(&bob),
        None,
    );
    assert_eq!(share.status, 201);
    let public = http(
        "GET",
        &s.url(share.json()["url"].as_str().unwrap()),
        None,
        None,
    );
    assert_eq!(public.status, 200);
    // Network operations are for operators: not for a token of a user who is no
    // administrator, even to read.
    assert_eq!(
        http("GET", &s.url("/api/v1/net/stats"), Some(&bob), None).status,
        403
    );
    let ban = http(
        "POST",
        &s.url("/api/v1/net/bans"),
        Some(&bob),
        Some(json!({"net": "192.0.2.1"})),
    );
    assert_eq!(ban.status, 403);
    assert_eq!(
        http("GET", &s.url("/api/v1/net/stats"), Some(&ann), None).status,
        200
    );
    let run = linksnap(&["--data", d, "--as", "ann", "token", "create", "ann-admin"]);
    let ann_admin = run.stdout_str().trim().to_owned();
    assert_eq!(
        http("GET", &s.url("/api/v1/net/bans"), Some(&ann_admin), None).status,
        200
    );
    // Bob's token cannot revoke someone else's token through the settings form, nor
    // see it listed there.
    let form = |path: &str, tok: &str, body: &str| -> u16 {
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.write_all(format!("POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", s.addr, body.len()).as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out[9..12].parse().unwrap()
    };
    assert_eq!(form("/settings/tokens/revoke", &bob, "name=ann-token"), 404);
    assert_eq!(
        http("GET", &s.url("/api/v1/links"), Some(&ann), None).status,
        200
    );
    let settings = http("GET", &s.url("/settings"), Some(&bob), None);
    let page = String::from_utf8_lossy(&settings.body).into_owned();
    assert!(
        page.contains("bob-token") && !page.contains("ann-token"),
        "{page}"
    );
    // A user's tokens and bans: accounts stay in the data directory's library.
    let listed = linksnap(&["--data", d, "--as", "bob", "token", "list", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["user"], "bob");
    drop(s);
    assert!(dir.join("users").is_dir());
}

/// A request to the server at `addr` as if to `host` (another name of it), without
/// credentials: status and body.
fn as_host(
    addr: &str,
    host: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, HeaderMapLite, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head[9..12].parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

type HeaderMapLite = std::collections::HashMap<String, String>;

#[test]
fn snapshots_can_live_on_an_origin_of_their_own() {
    let site = FixtureServer::start();
    let dir = artifact_dir("serve-snapshot-origin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let origin = format!("http://localhost:{port}");
    let s = Serve::start(
        &dir,
        &[
            "--listen",
            &listen,
            "--workers",
            "1",
            "--snapshot-origin",
            &origin,
        ],
    );
    let tok = token(&dir, "t");
    let created = http(
        "POST",
        &s.url("/api/v1/links"),
        Some(&tok),
        Some(json!({"url": site.url("/site/pages/index.html")})),
    );
    let id = created.json()["id"].as_i64().unwrap();
    assert_eq!(wait_captured(&s, &tok, id)["status"], "ok");
    // On the app's origin: a redirect to a signed address on the snapshot origin.
    let (status, headers, _) = as_host(
        &listen,
        &listen,
        &format!("/snapshots/{id}/latest"),
        Some(&tok),
    );
    assert_eq!(status, 303);
    let location = headers["location"].clone();
    let path = location
        .strip_prefix(&origin)
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    assert!(
        path.starts_with(&format!("/v/main/{id}/latest?e=")),
        "{path}"
    );
    // There, without any credentials, the sandboxed snapshot.
    let host = format!("localhost:{port}");
    let (status, headers, body) = as_host(&listen, &host, &path, None);
    assert_eq!(status, 200);
    assert!(
        headers["content-security-policy"].starts_with("sandbox allow-scripts"),
        "{headers:?}"
    );
    assert!(
        body.to_ascii_lowercase().contains("<html"),
        "{}",
        &body[..body.len().min(200)]
    );
    // A changed signature, another link, or the app's origin: nothing.
    let tampered = path.replace("&s=", "&s=0");
    assert_eq!(as_host(&listen, &host, &tampered, None).0, 404);
    let other = path.replacen(&format!("/{id}/"), &format!("/{}/", id + 1), 1);
    assert_eq!(as_host(&listen, &host, &other, None).0, 404);
    assert_eq!(as_host(&listen, &listen, &path, None).0, 404);
    // The snapshot origin serves nothing else, not even with a token.
    assert_eq!(as_host(&listen, &host, "/api/v1/links", Some(&tok)).0, 404);
    assert_eq!(as_host(&listen, &host, "/", None).0, 404);
    // There the snapshot may be framed by the app's pages, and by nothing else.
    assert!(
        headers["content-security-policy"]
            .contains(&format!("frame-ancestors 'self' http://{listen}")),
        "{headers:?}"
    );
    // A share link is never served on the app's origin: off to the snapshot origin too.
    let share = http(
        "POST",
        &s.url(&format!("/api/v1/links/{id}/shares")),
        Some(&tok),
        None,
    );
    let share_path = share.json()["url"].as_str().unwrap().to_owned();
    let (status, headers, _) = as_host(&listen, &listen, &share_path, None);
    assert_eq!(status, 303);
    assert!(headers["location"].starts_with(&format!("{origin}/v/main/{id}/latest?e=")));
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow, noarchive");
    // The app's pages may frame the snapshot origin.
    let (status, headers, _) = as_host(&listen, &listen, "/login", None);
    assert_eq!(status, 200);
    assert!(
        headers["content-security-policy"].contains(&format!("frame-src 'self' {origin}")),
        "{headers:?}"
    );
    drop(s);
    // A bad origin is a clear error.
    let bad = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--snapshot-origin",
        "ftp://x",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("expected http(s)://HOST[:PORT]"),
        "{}",
        bad.stderr
    );
}

/// One request with a client that speaks HTTP/2 from the first byte (no upgrade).
fn h2_prior_knowledge(url: &str) -> (u16, reqwest::Version) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let res = client.get(url).send().await.expect("an HTTP/2 request");
        (res.status().as_u16(), res.version())
    })
}

#[test]
fn http1_and_http2_are_told_apart_even_when_the_first_bytes_come_slowly() {
    use std::net::TcpStream;
    let dir = artifact_dir("serve-protocols");
    let s = Serve::start(&dir, &[]);
    assert_eq!(
        h2_prior_knowledge(&s.url("/healthz")),
        (200, reqwest::Version::HTTP_2)
    );
    assert_eq!(
        http("GET", &s.url("/healthz"), None, None).status,
        200,
        "HTTP/1.1"
    );
    let read_some = |c: &mut TcpStream| {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    // HTTP/1: "P" could begin the HTTP/2 preface ("PRI * …"); the rest says otherwise.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"OST /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let answer = read_some(&mut c);
    assert!(
        answer.starts_with(b"HTTP/1.1 405") || answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // HTTP/2: the preface in two pieces, then an empty SETTINGS frame; the server answers
    // with its own SETTINGS frame (type 4).
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let frame = read_some(&mut c);
    assert!(frame.len() >= 9 && frame[3] == 4, "{frame:?}");
}
