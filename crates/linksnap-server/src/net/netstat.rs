//! Connection statistics like `ss`: our own table (per connection, per client, per
//! listener), TCP_INFO of each socket, the kernel's view of our listening ports from
//! `/proc/net/tcp{,6}` by state, and `/proc/net/sockstat`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

use serde::Serialize;
use utoipa::ToSchema;

use std::sync::Arc;

use crate::addr::ListenAddr;
use crate::net::conn::{Conn, ConnTable, Peer};
use crate::net::guard::Guard;

/// What TCP_INFO says of a connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TcpInfo {
    /// The TCP state, named like `ss` (ESTABLISHED, CLOSE_WAIT…).
    pub state: &'static str,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    /// Retransmissions of the current unacknowledged segment.
    pub retransmits: u8,
    pub total_retrans: u32,
    pub cwnd: u32,
    pub unacked: u32,
    pub lost: u32,
}

/// `ss`'s name of a kernel TCP state number (include/net/tcp_states.h).
fn state_name(n: u8) -> &'static str {
    match n {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// TCP_INFO of a socket (`None` if it is not a TCP socket any more).
#[must_use]
pub fn tcp_info(fd: std::os::fd::RawFd) -> Option<TcpInfo> {
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: a valid pointer and length for the out-parameter; a bad fd is an error.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    (r == 0).then(|| TcpInfo {
        state: state_name(info.tcpi_state),
        rtt_us: info.tcpi_rtt,
        rttvar_us: info.tcpi_rttvar,
        retransmits: info.tcpi_retransmits,
        total_retrans: info.tcpi_total_retrans,
        cwnd: info.tcpi_snd_cwnd,
        unacked: info.tcpi_unacked,
        lost: info.tcpi_lost,
    })
}

/// The kernel's sockets on our listening ports, counted by state (`/proc/net/tcp`,
/// `/proc/net/tcp6` of this network namespace).
#[must_use]
pub fn kernel_states(listeners: &[SocketAddr]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let ours = |a: &SocketAddr| {
        listeners.iter().any(|l| {
            l.port() == a.port()
                && (l.ip().is_unspecified()
                    || crate::net::guard::canonical(l.ip()) == crate::net::guard::canonical(a.ip()))
        })
    };
    for table in [procfs::net::tcp(), procfs::net::tcp6()] {
        let Ok(entries) = table else { continue };
        for e in entries {
            if ours(&e.local_address) {
                *out.entry(proc_state(&e.state).to_owned()).or_insert(0) += 1;
            }
        }
    }
    out
}

fn proc_state(s: &procfs::net::TcpState) -> &'static str {
    use procfs::net::TcpState as S;
    match s {
        S::Established => "ESTABLISHED",
        S::SynSent => "SYN_SENT",
        S::SynRecv => "SYN_RECV",
        S::FinWait1 => "FIN_WAIT1",
        S::FinWait2 => "FIN_WAIT2",
        S::TimeWait => "TIME_WAIT",
        S::Close => "CLOSE",
        S::CloseWait => "CLOSE_WAIT",
        S::LastAck => "LAST_ACK",
        S::Listen => "LISTEN",
        S::Closing => "CLOSING",
        S::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// `/proc/net/sockstat`, flattened: `tcp_inuse`, `tcp_orphan`, `tcp_tw`, `tcp_alloc`,
/// `tcp_mem` (pages), `sockets_used`, `udp_inuse`…
#[must_use]
pub fn sockstat() -> BTreeMap<String, i64> {
    std::fs::read_to_string("/proc/net/sockstat")
        .map(|t| parse_sockstat(&t))
        .unwrap_or_default()
}

fn parse_sockstat(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let proto = proto.trim().to_ascii_lowercase();
        let words: Vec<&str> = rest.split_whitespace().collect();
        for pair in words.chunks(2) {
            if let [k, v] = pair
                && let Ok(n) = v.parse()
            {
                out.insert(format!("{proto}_{k}"), n);
            }
        }
    }
    out
}

/// A listener and the connections it holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListenerStats {
    pub addr: String,
    pub connections: usize,
}

/// A client address (or IPv6 prefix) and its connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct PeerStats {
    pub addr: String,
    pub connections: u32,
}

/// One connection of the table.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnStats {
    pub id: u64,
    pub peer: String,
    pub listener: String,
    pub age_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests: u64,
    pub in_flight: u64,
    /// `active`, `reading` or `idle`.
    pub activity: &'static str,
    pub tcp: Option<TcpInfo>,
}

/// Refusals and limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuardStats {
    pub max_connections: usize,
    pub max_conns_per_ip: u32,
    pub refused_per_ip_cap: u64,
    pub refused_banned: u64,
    pub rate_limited: u64,
    pub automatic_bans: u64,
    pub accepted_total: u64,
    pub accept_backoffs: u64,
}

/// `net stats --json` and `GET /api/v1/net/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NetStats {
    pub listeners: Vec<ListenerStats>,
    /// The kernel's sockets on our TCP ports by state.
    pub states: BTreeMap<String, usize>,
    /// Clients by connections held, most first.
    pub peers: Vec<PeerStats>,
    pub sockstat: BTreeMap<String, i64>,
    pub limits: GuardStats,
    pub connections: Vec<ConnStats>,
    /// The server's memory and its child processes' (a running Chromium).
    pub memory: crate::procmem::MemoryStats,
}

/// Gathers everything now.
#[must_use]
pub fn collect(
    conns: &ConnTable,
    guard: &Guard,
    listeners: &[ListenAddr],
    max_connections: usize,
) -> NetStats {
    let now = std::time::SystemTime::now();
    let table = with_tcp_info(conns);
    let tcp_listeners: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| match l {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        })
        .collect();
    let listener_stats = listeners
        .iter()
        .map(|l| {
            let addr = l.to_string();
            let connections = table.iter().filter(|(c, _)| *c.listener == *addr).count();
            ListenerStats { addr, connections }
        })
        .collect();
    let connections = table
        .into_iter()
        .map(|(c, tcp)| ConnStats {
            id: c.id,
            peer: match &c.peer {
                Peer::Tcp(a) => a.to_string(),
                Peer::Unix { uid } => {
                    uid.map_or_else(|| "unix".into(), |u| format!("unix uid {u}"))
                }
            },
            listener: c.listener.to_string(),
            age_ms: now
                .duration_since(c.started)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            activity: c.activity(),
            tcp,
        })
        .collect();
    NetStats {
        listeners: listener_stats,
        states: kernel_states(&tcp_listeners),
        peers: conns
            .per_key()
            .into_iter()
            .map(|(k, n)| PeerStats {
                addr: if k.prefix_len() == k.max_prefix_len() {
                    k.addr().to_string()
                } else {
                    k.to_string()
                },
                connections: n,
            })
            .collect(),
        sockstat: sockstat(),
        limits: GuardStats {
            max_connections,
            max_conns_per_ip: guard.max_conns_per_ip,
            refused_per_ip_cap: guard.refused_cap.load(Ordering::Relaxed),
            refused_banned: guard.refused_banned.load(Ordering::Relaxed),
            rate_limited: guard.rate_limited.load(Ordering::Relaxed),
            automatic_bans: guard.autobans.load(Ordering::Relaxed),
            accepted_total: conns.accepted_total.load(Ordering::Relaxed),
            accept_backoffs: conns.accept_backoffs.load(Ordering::Relaxed),
        },
        connections,
        memory: crate::procmem::collect(),
    }
}

/// The Prometheus text exposition of the figures.
#[must_use]
/// `read_cache`: the read caches' answers and computations so far.
pub fn prometheus(
    stats: &NetStats,
    bans: usize,
    sse_streams: usize,
    uptime_s: u64,
    (hits, misses): (u64, u64),
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    let l = &stats.limits;
    metric(
        "linksnap_connections_open",
        "gauge",
        "Connections in the table, by listener.",
        &stats
            .listeners
            .iter()
            .map(|s| {
                (
                    format!("{{listener=\"{}\"}}", escape(&s.addr)),
                    s.connections as f64,
                )
            })
            .collect::<Vec<_>>(),
    );
    metric(
        "linksnap_connections_accepted_total",
        "counter",
        "Connections admitted.",
        &one(l.accepted_total as f64),
    );
    metric(
        "linksnap_connections_refused_total",
        "counter",
        "Connections reset right after accept, by reason.",
        &[
            (
                "{reason=\"per_ip_cap\"}".into(),
                l.refused_per_ip_cap as f64,
            ),
            ("{reason=\"banned\"}".into(), l.refused_banned as f64),
        ],
    );
    metric(
        "linksnap_accept_backoffs_total",
        "counter",
        "Times accept ran out of descriptors or memory and backed off.",
        &one(l.accept_backoffs as f64),
    );
    metric(
        "linksnap_requests_rate_limited_total",
        "counter",
        "Requests answered 429.",
        &one(l.rate_limited as f64),
    );
    metric(
        "linksnap_bans_automatic_total",
        "counter",
        "Automatic bans made.",
        &one(l.automatic_bans as f64),
    );
    metric(
        "linksnap_bans_active",
        "gauge",
        "Bans in force.",
        &one(bans as f64),
    );
    metric(
        "linksnap_connection_peers",
        "gauge",
        "Client addresses (IPv6: prefixes) holding connections.",
        &one(stats.peers.len() as f64),
    );
    metric(
        "linksnap_tcp_sockets",
        "gauge",
        "Kernel sockets on our TCP ports, by state.",
        &stats
            .states
            .iter()
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), *n as f64))
            .collect::<Vec<_>>(),
    );
    metric(
        "linksnap_sockstat",
        "gauge",
        "/proc/net/sockstat.",
        &stats
            .sockstat
            .iter()
            .map(|(k, v)| (format!("{{field=\"{k}\"}}"), *v as f64))
            .collect::<Vec<_>>(),
    );
    metric(
        "linksnap_read_cache_requests_total",
        "counter",
        "Requests to the read caches: answered from memory (hit) or computed (miss).",
        &[
            ("{outcome=\"hit\"}".to_owned(), hits as f64),
            ("{outcome=\"miss\"}".to_owned(), misses as f64),
        ],
    );
    metric(
        "linksnap_event_streams_open",
        "gauge",
        "Server-sent event streams open.",
        &one(sse_streams as f64),
    );
    metric(
        "linksnap_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        &one(uptime_s as f64),
    );
    let m = &stats.memory;
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size.",
        &one(m.server_rss_bytes as f64),
    );
    metric(
        "linksnap_memory_pss_bytes",
        "gauge",
        "Proportional set size of the server and, summed, of the processes it started (a running Chromium's).",
        &[
            ("{process=\"server\"}".to_owned(), m.server_pss_bytes as f64),
            (
                "{process=\"children\"}".to_owned(),
                m.children_pss_bytes as f64,
            ),
        ],
    );
    metric(
        "linksnap_child_processes",
        "gauge",
        "Processes the server started, and theirs (a running Chromium's).",
        &one(m.children as f64),
    );
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Whether `ip` may read `/metrics` without credentials.
#[must_use]
pub fn is_loopback(ip: IpAddr) -> bool {
    crate::net::guard::canonical(ip).is_loopback()
}

/// Each live TCP connection with its TCP_INFO, read while the table is locked (so no
/// socket closes under the read).
pub fn with_tcp_info(table: &ConnTable) -> Vec<(Arc<Conn>, Option<TcpInfo>)> {
    table.map_locked(|c| (c.clone(), c.fd.and_then(tcp_info)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_is_flattened() {
        let s = parse_sockstat(
            "sockets: used 44\nTCP: inuse 3 orphan 0 tw 2 alloc 5 mem 1\nUDP: inuse 0 mem 256\n",
        );
        assert_eq!(s["sockets_used"], 44);
        assert_eq!(s["tcp_tw"], 2);
        assert_eq!(s["tcp_alloc"], 5);
        assert_eq!(s["udp_mem"], 256);
    }

    #[test]
    fn tcp_info_reads_a_real_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let info = tcp_info(std::os::fd::AsRawFd::as_raw_fd(&s)).unwrap();
        assert_eq!(info.state, "ESTABLISHED");
        assert!(info.cwnd > 0);
        drop(c);
        assert!(tcp_info(-1).is_none());
        let states = kernel_states(&[l.local_addr().unwrap()]);
        assert_eq!(states.get("LISTEN"), Some(&1), "{states:?}");
        assert!(
            states.contains_key("ESTABLISHED") || states.contains_key("CLOSE_WAIT"),
            "{states:?}"
        );
    }
}
