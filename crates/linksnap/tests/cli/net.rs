//! Network operations, black-box: statistics that agree with `ss`, the per-address cap,
//! bans, the request rate, trusted proxies, `/metrics`, dead peers reaped by keepalive (in
//! network namespaces of the test's own), and load and fault tests that stop by themselves.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Serve, http, token, wait_until};
use crate::support::{artifact_dir, command_for_test, linksnap};

/// A TCP connection from `from` (any 127.x.y.z) to `to`.
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

/// Closes with RST (no TIME_WAIT left behind on the client's side).
fn abort(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Sends a keep-alive request and reads the head of its answer: the status code, or the
/// error (a reset connection is `ConnectionReset`).
fn ask(s: &mut TcpStream, req: &[u8]) -> std::io::Result<u16> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(req)?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    Ok(head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0))
}

fn addr(s: &Serve) -> SocketAddr {
    s.addr.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn stats(dir: &Path) -> Value {
    let run = linksnap(&["--data", dir.to_str().unwrap(), "net", "stats", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

fn peer_count(stats: &Value, peer: &str) -> u64 {
    stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["addr"] == peer)
        .map_or(0, |p| p["connections"].as_u64().unwrap())
}

/// Established connections to `port` per client address, as `ss` sees them.
fn ss_peers(port: u16) -> std::collections::BTreeMap<String, u64> {
    let out = std::process::Command::new("ss")
        .args([
            "-tanH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .expect("ss (installed by scripts/test.sh)");
    let mut peers = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // Recv-Q Send-Q Local:Port Peer:Port
        let Some(peer) = line.split_whitespace().nth(3) else {
            continue;
        };
        let host = peer
            .rsplit_once(':')
            .map_or(peer, |(h, _)| h)
            .trim_matches(['[', ']']);
        *peers.entry(host.to_owned()).or_insert(0) += 1;
    }
    peers
}

fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn connection_statistics_agree_with_ss() {
    let dir = artifact_dir("net-stats");
    let s = Serve::start(&dir, &["--workers", "0"]);
    let mut held = Vec::new();
    for (from, n) in [("127.0.0.2", 3), ("127.0.0.3", 1)] {
        for _ in 0..n {
            let mut c = connect_from(ip(from), addr(&s)).unwrap();
            assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
            held.push(c);
        }
    }
    // The kernel's tables are read without a lock (by `ss` and from /proc alike): under
    // heavy churn elsewhere (the other tests) one reading may skip a socket. Agreement is
    // asked of two readings taken back to back, up to a few times.
    let mut tries = 0;
    let (ours, theirs) = loop {
        let ours = stats(&dir);
        let theirs = ss_peers(addr(&s).port());
        let agree = ours["states"]["ESTABLISHED"] == theirs.values().sum::<u64>()
            && theirs.iter().all(|(p, n)| peer_count(&ours, p) == *n);
        tries += 1;
        if agree || tries == 5 {
            break (ours, theirs);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(peer_count(&ours, "127.0.0.2"), 3, "{ours}");
    assert_eq!(peer_count(&ours, "127.0.0.3"), 1, "{ours}");
    for (peer, n) in &theirs {
        assert_eq!(
            peer_count(&ours, peer),
            *n,
            "{peer}: ss {theirs:?}, ours {ours}"
        );
    }
    assert_eq!(theirs.values().sum::<u64>(), 4, "{theirs:?}");
    // Most connections first.
    assert_eq!(ours["peers"][0]["addr"], "127.0.0.2");
    // The kernel's view of our port: the listener and the four.
    assert_eq!(ours["states"]["LISTEN"], 1, "{ours}");
    assert_eq!(ours["states"]["ESTABLISHED"], 4, "{ours}");
    let tcp_listener = ours["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["addr"] == s.addr.as_str())
        .unwrap()
        .clone();
    assert_eq!(tcp_listener["connections"], 4);
    assert!(
        ours["sockstat"]["tcp_inuse"].as_i64().unwrap() >= 5,
        "{ours}"
    );
    let conns = ours["connections"].as_array().unwrap();
    let tcp: Vec<&Value> = conns.iter().filter(|c| !c["tcp"].is_null()).collect();
    assert_eq!(tcp.len(), 4, "{ours}");
    for c in tcp {
        assert_eq!(c["tcp"]["state"], "ESTABLISHED");
        assert!(c["tcp"]["rtt_us"].as_u64().unwrap() > 0);
        assert_eq!(c["requests"], 1);
        assert_eq!(c["activity"], "idle");
    }
    // The human table, and the admin page and metrics carry the same figures.
    let table = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "net",
        "stats",
        "--connections",
    ]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let text = table.stdout_str();
    assert!(
        text.contains("127.0.0.2") && text.contains("ESTABLISHED 4"),
        "{text}"
    );
    let mut sock = std::os::unix::net::UnixStream::connect(dir.join("linksnap.sock")).unwrap();
    sock.write_all(b"GET /admin/net HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    sock.read_to_string(&mut page).unwrap();
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    assert!(
        page.contains("<code>127.0.0.2</code></td><td class=\"num\">3</td>"),
        "{page}"
    );
    let metrics = http("GET", &s.url("/metrics"), None, None);
    assert_eq!(metrics.status, 200);
    let m = String::from_utf8(metrics.body).unwrap();
    // The two, and this request from 127.0.0.1.
    assert!(m.contains("linksnap_connection_peers 3"), "{m}");
    assert!(
        m.contains("linksnap_tcp_sockets{state=\"LISTEN\"} 1"),
        "{m}"
    );
    drop(held);
    // Without a server there is nothing to describe.
    drop(s);
    let run = linksnap(&["--data", dir.to_str().unwrap(), "net", "stats"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no server is running"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_per_address_cap_resets_at_its_boundary_and_bans_hold_across_restarts() {
    let dir = artifact_dir("net-cap");
    let args = [
        "--workers",
        "0",
        "--max-conns-per-ip",
        "3",
        "--autoban",
        "4/60s,1h",
        "--rate-limit",
        "off",
    ];
    let s = Serve::start(&dir, &args);
    let from = ip("127.0.0.5");
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect_from(from, addr(&s)).unwrap();
        assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
        held.push(c);
    }
    // The fourth is reset at once: it never reaches HTTP.
    let mut over = connect_from(from, addr(&s)).unwrap();
    let err = ask(&mut over, HEALTHZ).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    // Another address is not affected.
    let mut other = connect_from(ip("127.0.0.6"), addr(&s)).unwrap();
    assert_eq!(ask(&mut other, HEALTHZ).unwrap(), 200);
    let st = stats(&dir);
    assert_eq!(peer_count(&st, "127.0.0.5"), 3);
    assert_eq!(st["limits"]["refused_per_ip_cap"], 1);
    // Three more refusals: the fourth within the window bans the address.
    for _ in 0..3 {
        let mut c = connect_from(from, addr(&s)).unwrap();
        assert!(ask(&mut c, HEALTHZ).is_err());
    }
    let bans = linksnap(&["--data", dir.to_str().unwrap(), "net", "bans", "--json"]).json();
    let auto = bans
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["net"] == "127.0.0.5/32")
        .expect("automatic ban")
        .clone();
    assert_eq!(auto["automatic"], true);
    assert!(
        auto["reason"].as_str().unwrap().contains("per-address cap"),
        "{auto}"
    );
    // Banned: refused even under the cap.
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = connect_from(from, addr(&s)).unwrap();
    assert_eq!(
        ask(&mut c, HEALTHZ).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionReset
    );
    assert!(stats(&dir)["limits"]["refused_banned"].as_u64().unwrap() >= 1);
    let run = linksnap(&["--data", dir.to_str().unwrap(), "net", "unban", "127.0.0.5"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut c = connect_from(from, addr(&s)).unwrap();
    assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);

    // A ban by hand, through the running server: at once; and kept across a restart.
    let run = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "net",
        "ban",
        "127.0.0.7",
        "--for",
        "10s",
        "--reason",
        "test",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut c = connect_from(ip("127.0.0.7"), addr(&s)).unwrap();
    assert!(ask(&mut c, HEALTHZ).is_err());
    let banned_at = Instant::now();
    let (code, _) = s.stop();
    assert_eq!(code, 0);
    let s = Serve::start(&dir, &args);
    let mut c = connect_from(ip("127.0.0.7"), addr(&s)).unwrap();
    assert!(
        ask(&mut c, HEALTHZ).is_err(),
        "the ban survived the restart"
    );
    // It expires by itself.
    std::thread::sleep(
        Duration::from_secs(10).saturating_sub(banned_at.elapsed()) + Duration::from_millis(300),
    );
    let mut c = connect_from(ip("127.0.0.7"), addr(&s)).unwrap();
    assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
    let bans = linksnap(&["--data", dir.to_str().unwrap(), "net", "bans", "--json"]).json();
    assert!(bans.as_array().unwrap().is_empty(), "{bans}");
    // Bad input is a clear error.
    let run = linksnap(&["--data", dir.to_str().unwrap(), "net", "ban", "300.1.1.1"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("not an address or CIDR"),
        "{}",
        run.stderr
    );
    let run = linksnap(&["--data", dir.to_str().unwrap(), "net", "unban", "192.0.2.1"]);
    assert_eq!(run.code, 2);
}

#[test]
fn the_request_rate_is_limited_per_client_and_proxies_are_believed_only_when_trusted() {
    let dir = artifact_dir("net-rate");
    let s = Serve::start(
        &dir,
        &[
            "--workers",
            "0",
            "--rate-limit",
            "3/m,3",
            "--trusted-proxy",
            "127.0.0.9",
            "--metrics",
            "token",
        ],
    );
    let tok = token(&dir, "ops");
    let get = |from: &str, xff: Option<&str>| -> (u16, String) {
        let mut c = connect_from(ip(from), addr(&s)).unwrap();
        let xff = xff.map_or(String::new(), |x| format!("X-Forwarded-For: {x}\r\n"));
        c.write_all(format!("GET /api/v1/server HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n{xff}Connection: close\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        (out[9..12].parse().unwrap(), out)
    };
    for _ in 0..3 {
        assert_eq!(get("127.0.0.8", None).0, 200);
    }
    let (status, answer) = get("127.0.0.8", None);
    assert_eq!(status, 429, "{answer}");
    let retry: u64 = answer
        .lines()
        .find_map(|l| l.strip_prefix("retry-after: "))
        .expect("Retry-After")
        .trim()
        .parse()
        .unwrap();
    // A new request every 20 s (3 a minute).
    assert!((1..=20).contains(&retry), "{answer}");
    assert!(answer.contains("\"code\":\"rate_limited\""), "{answer}");
    // Behind the trusted proxy each client has its own allowance…
    for _ in 0..3 {
        assert_eq!(get("127.0.0.9", Some("203.0.113.5")).0, 200);
    }
    assert_eq!(get("127.0.0.9", Some("203.0.113.5")).0, 429);
    assert_eq!(get("127.0.0.9", Some("203.0.113.6")).0, 200);
    // …while the header from anyone else is ignored: 127.0.0.8 is still limited.
    assert_eq!(get("127.0.0.8", Some("198.51.100.1")).0, 429);
    // A ban reaches clients behind the proxy, at the HTTP level.
    let run = linksnap(&[
        "--data",
        dir.to_str().unwrap(),
        "net",
        "ban",
        "203.0.113.0/24",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, answer) = get("127.0.0.9", Some("203.0.113.7"));
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("\"code\":\"banned\""), "{answer}");
    // /metrics with `--metrics token`: not without a token, even from loopback.
    assert_eq!(http("GET", &s.url("/metrics"), None, None).status, 403);
    std::thread::sleep(Duration::from_secs(1));
    let m = http("GET", &s.url("/metrics"), Some(&tok), None);
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    let limited: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("linksnap_requests_rate_limited_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(limited >= 3, "{text}");
    assert!(text.contains("linksnap_bans_active 1"), "{text}");
}

/// Two network namespaces of the test's own, joined by a veth pair; removed on drop.
struct Namespaces {
    server: String,
    client: String,
}

impl Namespaces {
    fn create(tag: &str) -> Self {
        let id = std::process::id();
        let ns = Self {
            server: format!("lss-{tag}-{id}"),
            client: format!("lsc-{tag}-{id}"),
        };
        let (vs, vc) = (format!("vs{id}"), format!("vc{id}"));
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2)");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &ns.server]);
        ip(&["netns", "add", &ns.client]);
        ip(&["link", "add", &vs, "type", "veth", "peer", "name", &vc]);
        ip(&["link", "set", &vs, "netns", &ns.server]);
        ip(&["link", "set", &vc, "netns", &ns.client]);
        ip(&["-n", &ns.server, "addr", "add", "10.213.0.1/30", "dev", &vs]);
        ip(&["-n", &ns.client, "addr", "add", "10.213.0.2/30", "dev", &vc]);
        for (n, dev) in [(&ns.server, &vs), (&ns.client, &vc)] {
            ip(&["-n", n, "link", "set", "lo", "up"]);
            ip(&["-n", n, "link", "set", dev, "up"]);
        }
        ns
    }

    /// Cuts the client's side: its interface goes down, nothing is sent, no FIN, no RST.
    fn cut(&self) {
        let id = std::process::id();
        let out = std::process::Command::new("ip")
            .args([
                "-n",
                &self.client,
                "link",
                "set",
                &format!("vc{id}"),
                "down",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
    }

    /// Runs `f` on a thread inside the client namespace (sockets made there stay there).
    fn in_client<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.client);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: joining a network namespace on this thread only.
            let r =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in [&self.server, &self.client] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .output();
        }
    }
}

#[test]
fn keepalive_reaps_a_peer_that_vanished_without_a_word() {
    let ns = Namespaces::create("ka");
    let dir = artifact_dir("net-keepalive");
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.server])
        .arg(env!("CARGO_BIN_EXE_linksnap"));
    cmd.args([
        "--data",
        dir.to_str().unwrap(),
        "serve",
        "--listen",
        "10.213.0.1:0",
        "--workers",
        "0",
    ]);
    // Probes after 2 s idle, every 1 s, 2 unanswered: dead after about 4 s.
    cmd.args(["--keepalive", "2s,1s,2"]);
    let template = command_for_test(&[]);
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let s = Serve::spawn(cmd);
    let server = addr(&s);
    let client = ns.in_client(move || {
        let mut c = TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
        assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
        c
    });
    wait_until("the connection in the table", || {
        peer_count(&stats(&dir), "10.213.0.2") == 1
    });
    ns.cut();
    let cut = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        peer_count(&stats(&dir), "10.213.0.2"),
        1,
        "not before the keepalive idle time"
    );
    let deadline = Duration::from_secs(2 + 2) + Duration::from_secs(3);
    while peer_count(&stats(&dir), "10.213.0.2") == 1 {
        assert!(
            cut.elapsed() < deadline,
            "keepalive did not reap the dead peer within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reaped = cut.elapsed();
    eprintln!("dead peer reaped {reaped:?} after the cut (idle 2s + 1s × 2 probes)");
    assert!(reaped >= Duration::from_millis(2900), "{reaped:?}");
    drop(client);
}

#[test]
fn slowloris_from_a_thousand_addresses_does_not_starve_normal_requests() {
    let dir = artifact_dir("net-slowloris");
    let s = Serve::start(
        &dir,
        &[
            "--workers",
            "0",
            "--header-read-timeout",
            "30s",
            "--rate-limit",
            "off",
        ],
    );
    let base = rss_kb(s.pid());
    let mut loris = Vec::new();
    for i in 0..1000u32 {
        let from = IpAddr::from([127, 1, (i / 250) as u8, (i % 250 + 1) as u8]);
        let mut c = connect_from(from, addr(&s)).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        loris.push(c);
    }
    wait_until("1000 slow connections held", || {
        stats(&dir)["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["connections"].as_u64().unwrap() >= 1000)
    });
    let mut times = Vec::new();
    let drip = Instant::now();
    for n in 0..300 {
        // The slow ones drip a header line now and then.
        if n % 50 == 0 {
            for c in &mut loris {
                let _ = c.write_all(b"X-a: b\r\n");
            }
        }
        let t = Instant::now();
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
        times.push(t.elapsed());
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    let rss = rss_kb(s.pid());
    let held = stats(&dir)["listeners"][0]["connections"].as_u64().unwrap();
    eprintln!(
        "slowloris: {held} connections held from 1000 addresses; 300 normal requests in {:?}: p50 {p50:?}, p99 {p99:?}; RSS {} MB (idle {} MB)",
        drip.elapsed(),
        rss / 1024,
        base / 1024
    );
    assert!(held >= 1000);
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
    for c in loris {
        abort(c);
    }
}

#[test]
fn twenty_thousand_attempts_from_one_address_meet_the_cap() {
    let dir = artifact_dir("net-flood");
    let s = Serve::start(
        &dir,
        &[
            "--workers",
            "0",
            "--max-conns-per-ip",
            "50",
            "--autoban",
            "off",
            "--rate-limit",
            "off",
        ],
    );
    let base = rss_kb(s.pid());
    let from = ip("127.0.0.20");
    let mut open = std::collections::VecDeque::new();
    let mut most = 0;
    let started = Instant::now();
    for n in 0..20_000 {
        let mut c = connect_from(from, addr(&s)).unwrap();
        let _ = c.write_all(HEALTHZ);
        open.push_back(c);
        if open.len() > 200 {
            abort(open.pop_front().unwrap());
        }
        if n % 2_000 == 0 {
            most = most.max(peer_count(&stats(&dir), "127.0.0.20"));
        }
    }
    let elapsed = started.elapsed();
    // The last attempts may still be in the accept queue: read until every attempt has
    // been seen (admitted or reset), for at most 10 s.
    let seen = |st: &serde_json::Value| {
        st["limits"]["refused_per_ip_cap"].as_u64().unwrap_or(0)
            + st["limits"]["accepted_total"].as_u64().unwrap_or(0)
    };
    let mut st = stats(&dir);
    let waited = Instant::now();
    while seen(&st) < 20_000 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        st = stats(&dir);
    }
    most = most.max(peer_count(&st, "127.0.0.20"));
    let rss = rss_kb(s.pid());
    eprintln!(
        "flood: 20000 attempts in {elapsed:?}; at most {most} held (cap 50); {} refused by the cap; {} accepted; RSS {} MB (idle {} MB)",
        st["limits"]["refused_per_ip_cap"],
        st["limits"]["accepted_total"],
        rss / 1024,
        base / 1024
    );
    assert!(most <= 50, "{most}");
    // Every attempt was either admitted (while the address held fewer than 50: how many
    // depends on how fast the server sees the client's resets) or reset by the cap.
    let refused = st["limits"]["refused_per_ip_cap"].as_u64().unwrap();
    let admitted = st["limits"]["accepted_total"].as_u64().unwrap();
    assert!(refused + admitted >= 20_000, "{refused} + {admitted}");
    assert!(refused >= 1_000, "{refused}");
    assert!(rss < base + 64 * 1024, "RSS grew from {base} to {rss} kB");
    for c in open {
        abort(c);
    }
    // Still serving.
    assert_eq!(http("GET", &s.url("/healthz"), None, None).status, 200);
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let dir = artifact_dir("net-emfile");
    let s = Serve::start(&dir, &["--workers", "0", "--rate-limit", "off"]);
    let pid = s.pid();
    let in_use = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    // Room for 6 more descriptors.
    let limit = libc::rlimit {
        rlim_cur: in_use + 6,
        rlim_max: in_use + 6,
    };
    // SAFETY: setting another process's limits (the test runs as root).
    let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
    let mut first = Vec::new();
    for _ in 0..6 {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        assert_eq!(ask(&mut c, HEALTHZ).unwrap(), 200);
        first.push(c);
    }
    // These wait in the backlog: accept fails with EMFILE and the loop backs off.
    let mut waiting = Vec::new();
    for _ in 0..10 {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        c.write_all(HEALTHZ).unwrap();
        waiting.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Descriptors free up: every waiting connection is served.
    for c in first {
        abort(c);
    }
    let t = Instant::now();
    for mut c in waiting {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let n = c
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e}: {}", s.log()));
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Closing frees this one's descriptor in the server for the next.
        abort(c);
    }
    let recovered = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let backoffs = stats(&dir)["limits"]["accept_backoffs"].as_u64().unwrap();
    eprintln!(
        "EMFILE: {backoffs} accept back-offs; 10 queued connections served {recovered:?} after descriptors freed"
    );
    assert!(backoffs > 0);
    assert_eq!(http("GET", &s.url("/healthz"), None, None).status, 200);
}

#[test]
fn a_client_gone_mid_request_does_not_stop_durable_work() {
    let site = crate::support::FixtureServer::start();
    let dir = artifact_dir("net-gone");
    let d = dir.to_str().unwrap();
    let s = Serve::start(&dir, &["--workers", "0"]);
    // `add --wait` through the server: the capture runs there; the CLI vanishes mid-way.
    let url = site.url("/slow/1500/gone");
    let mut cli = command_for_test(&[
        "--data",
        d,
        "add",
        &url,
        "--wait",
        "--allow-net",
        "127.0.0.0/8",
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    wait_until("the capture to start", || {
        site.requests()
            .iter()
            .any(|r| r.contains("/slow/1500/gone"))
    });
    cli.kill().unwrap();
    cli.wait().unwrap();
    // The capture carries on and is saved.
    wait_until("the capture to be saved", || {
        let ls = linksnap(&["--data", d, "ls", "--json"]);
        ls.code == 0 && ls.json()[0]["status"] == "ok"
    });
    let versions = linksnap(&["--data", d, "versions", "1", "--json"]).json();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    drop(s);
}
