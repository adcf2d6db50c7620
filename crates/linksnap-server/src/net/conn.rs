//! The accept loop and the connection table. In the spirit of mini-redis: a permit for
//! a connection slot is taken before `accept`, resource exhaustion (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM) backs off instead of ending the loop, every connection is its own task
//! whose errors stay its own. Each connection is counted (bytes, requests) in a table that
//! statistics read, and is closed when idle past the configured timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::config::ServerConfig;
use crate::net::listen::Listener;

/// Who is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A Unix-socket peer, with its user id from SO_PEERCRED.
    Unix {
        uid: Option<u32>,
    },
}

/// One live connection.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub peer: Peer,
    /// The listener that accepted it.
    pub listener: Arc<str>,
    /// Accepted on the data directory's private socket by this server's own user: the
    /// local CLI, trusted like the owner.
    pub local: bool,
    pub started: SystemTime,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub requests: AtomicU64,
    pub in_flight: AtomicU64,
    /// Milliseconds since the table's epoch at the last byte read or written.
    last_active: AtomicU64,
    /// When the last request finished (ms since the epoch), and `bytes_in` then: bytes
    /// beyond it while no request is in flight are the next request's head arriving.
    idle_since: AtomicU64,
    bytes_in_at_idle: AtomicU64,
    /// The client spoke HTTP/2 (its preface), where bytes between requests are frames.
    h2: std::sync::atomic::AtomicBool,
    /// The client group it counts against (TCP peers).
    pub key: Option<ipnet::IpNet>,
    /// The socket, for TCP_INFO; read only under the table's lock (the connection leaves
    /// the table before its socket closes).
    pub(crate) fd: Option<std::os::fd::RawFd>,
}

impl Conn {
    /// What the connection is doing: `active` (a request in flight), `reading` (a
    /// request's head is arriving) or `idle` (keep-alive, waiting).
    #[must_use]
    pub fn activity(&self) -> &'static str {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            "active"
        } else if !self.h2.load(Ordering::Relaxed)
            && self.bytes_in.load(Ordering::Relaxed) > self.bytes_in_at_idle.load(Ordering::Relaxed)
        {
            "reading"
        } else {
            "idle"
        }
    }
}

#[derive(Debug, Default)]
struct Live {
    conns: HashMap<u64, Arc<Conn>>,
    per_key: HashMap<ipnet::IpNet, u32>,
}

/// Every live connection, and totals.
#[derive(Debug)]
pub struct ConnTable {
    epoch: Instant,
    next_id: AtomicU64,
    live: Mutex<Live>,
    emptied: Notify,
    pub accepted_total: AtomicU64,
    /// Times `accept` failed for lack of descriptors or memory and the loop backed off.
    pub accept_backoffs: AtomicU64,
}

impl Default for ConnTable {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            live: Mutex::new(Live::default()),
            emptied: Notify::new(),
            accepted_total: AtomicU64::new(0),
            accept_backoffs: AtomicU64::new(0),
        }
    }
}

impl ConnTable {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Adds a connection unless its client group already holds `cap` (0: no cap).
    fn try_register(
        self: &Arc<Self>,
        peer: Peer,
        listener: Arc<str>,
        local: bool,
        key: Option<ipnet::IpNet>,
        cap: u32,
        fd: Option<std::os::fd::RawFd>,
    ) -> Option<Registered> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            peer,
            listener,
            local,
            started: SystemTime::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            last_active: AtomicU64::new(self.now_ms()),
            idle_since: AtomicU64::new(self.now_ms()),
            bytes_in_at_idle: AtomicU64::new(0),
            h2: std::sync::atomic::AtomicBool::new(false),
            key,
            fd,
        });
        {
            let mut live = self.lock();
            if let Some(k) = key {
                let n = live.per_key.entry(k).or_insert(0);
                // At the cap, `n` is above 0: no empty entry is left behind.
                if cap > 0 && *n >= cap {
                    return None;
                }
                *n += 1;
            }
            live.conns.insert(id, conn.clone());
        }
        self.accepted_total.fetch_add(1, Ordering::Relaxed);
        Some(Registered {
            table: self.clone(),
            conn,
        })
    }

    /// Connections per client group, most first.
    pub fn per_key(&self) -> Vec<(ipnet::IpNet, u32)> {
        let mut v: Vec<_> = self.lock().per_key.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live connections, oldest first.
    /// `f` of each live connection, called while the table is locked (so none closes
    /// meanwhile), in the order they were accepted.
    pub fn map_locked<T>(&self, mut f: impl FnMut(&Arc<Conn>) -> T) -> Vec<T> {
        let live = self.lock();
        let mut v: Vec<(u64, T)> = live.conns.values().map(|c| (c.id, f(c))).collect();
        drop(live);
        v.sort_by_key(|(id, _)| *id);
        v.into_iter().map(|(_, t)| t).collect()
    }

    pub fn snapshot(&self) -> Vec<Arc<Conn>> {
        let mut v: Vec<_> = self.lock().conns.values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// How many connections are live.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until no connection is left.
    pub async fn drained(&self) {
        loop {
            let wait = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            wait.await;
        }
    }

    /// Time since the connection last moved a byte or finished a request.
    fn idle_for(&self, c: &Conn) -> Duration {
        let last = c
            .last_active
            .load(Ordering::Relaxed)
            .max(c.idle_since.load(Ordering::Relaxed));
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// Removes its connection from the table when the connection's task ends.
struct Registered {
    table: Arc<ConnTable>,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self.table.lock();
        live.conns.remove(&self.conn.id);
        if let Some(k) = self.conn.key
            && let Some(n) = live.per_key.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                live.per_key.remove(&k);
            }
        }
        if live.conns.is_empty() {
            self.table.emptied.notify_waiters();
        }
    }
}

/// An IO object that counts bytes and records activity in its [`Conn`].
struct Metered<S> {
    inner: S,
    conn: Arc<Conn>,
    table: Arc<ConnTable>,
}

impl<S> Metered<S> {
    fn touch(&self) {
        self.conn
            .last_active
            .store(self.table.now_ms(), Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            if self.conn.bytes_in.load(Ordering::Relaxed) == 0
                && buf.filled()[before..].starts_with(b"PRI * HTTP/2.0")
            {
                self.conn.h2.store(true, Ordering::Relaxed);
            }
            self.conn.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.conn.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What every connection task shares.
pub(crate) struct Shared {
    pub config: ServerConfig,
    pub guard: Arc<crate::net::guard::Guard>,
    /// Automatic bans to persist.
    pub new_bans: tokio::sync::mpsc::UnboundedSender<linksnap_store::Ban>,
    pub conns: Arc<ConnTable>,
    pub slots: Arc<Semaphore>,
    pub router: axum::Router,
    /// HTTP/1.1 or HTTP/2, told apart by reading the first bytes (Unix sockets).
    pub http: auto::Builder<TokioExecutor>,
    /// The same, for one protocol each: TCP connections are told apart by peeking.
    pub http1: auto::Builder<TokioExecutor>,
    pub http2: auto::Builder<TokioExecutor>,
}

impl Shared {
    pub(crate) fn new(
        config: ServerConfig,
        router: axum::Router,
        conns: Arc<ConnTable>,
        guard: Arc<crate::net::guard::Guard>,
        new_bans: tokio::sync::mpsc::UnboundedSender<linksnap_store::Ban>,
    ) -> Self {
        let mut http = auto::Builder::new(TokioExecutor::new());
        // hyper's own header timeout would also bound the wait for the next request on a
        // keep-alive connection; the watchdog in `serve_io` keeps the two limits apart.
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true);
        http.http2().timer(TokioTimer::new());
        let http1 = http.clone().http1_only();
        let http2 = http.clone().http2_only();
        Self {
            guard,
            new_bans,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            conns,
            config,
            router,
            http,
            http1,
            http2,
        }
    }
}

/// The request extension carrying the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo(pub Arc<Conn>);

/// Whether an accept error means "out of descriptors or memory": wait, then try again.
fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The first wait after an exhaustion error; doubled on each one in a row, up to the max.
pub const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(5);
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections until `stop` turns true.
pub(crate) async fn accept_loop(
    listener: Listener,
    shared: Arc<Shared>,
    local: bool,
    mut stop: watch::Receiver<bool>,
) {
    let name: Arc<str> = listener.local_addr().to_string().into();
    let my_uid = uid();
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    loop {
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((io, peer)) => {
                backoff = ACCEPT_BACKOFF_FIRST;
                if local && !matches!(peer, Peer::Unix { uid: Some(u) } if u == my_uid || u == 0) {
                    tracing::warn!(
                        ?peer,
                        "refused a connection to the private socket from another user"
                    );
                    continue;
                }
                let ip = match &peer {
                    Peer::Tcp(a) => Some(a.ip()),
                    Peer::Unix { .. } => None,
                };
                if let Some(ip) = ip
                    && shared.guard.banned(ip).is_some()
                {
                    shared.guard.refused_banned.fetch_add(1, Ordering::Relaxed);
                    reset(io);
                    continue;
                }
                let fd = match &io {
                    Stream::Tcp(s) => Some(std::os::fd::AsRawFd::as_raw_fd(s)),
                    Stream::Unix(_) => None,
                };
                let key = ip.map(|ip| shared.guard.key(ip));
                let cap = shared.guard.max_conns_per_ip;
                let Some(registered) =
                    shared
                        .conns
                        .try_register(peer, name.clone(), local, key, cap, fd)
                else {
                    reset(io);
                    if let Some(ip) = ip
                        && let Some(ban) = shared.guard.strike(ip)
                    {
                        tracing::warn!(net = %ban.net, reason = %ban.reason, "banned automatically");
                        let _ = shared.new_bans.send(ban);
                    }
                    continue;
                };
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    serve(io, registered, shared, permit, stop).await;
                });
            }
            Err(e) if is_exhaustion(&e) => {
                shared.conns.accept_backoffs.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(listener = %name, error = %e, wait = ?backoff, "accept: out of resources; backing off");
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
            // ECONNABORTED, EPROTO, EPERM (a firewall), …: that one connection is gone.
            Err(e) => tracing::debug!(listener = %name, error = %e, "accept failed"),
        }
    }
}

/// Closes a refused connection with RST (SO_LINGER 0): no FIN handshake, no TIME_WAIT
/// here, and the client knows at once.
fn reset(io: Stream) {
    if let Stream::Tcp(s) = &io
        && let Err(e) = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO))
    {
        tracing::debug!(error = %e, "SO_LINGER");
    }
    drop(io);
}

fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// An accepted stream of either kind.
pub(crate) enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, a) = l.accept().await?;
            Ok((Stream::Tcp(s), Peer::Tcp(a)))
        }
        Listener::Unix { listener, .. } => {
            let (s, _) = listener.accept().await?;
            let uid = s.peer_cred().ok().map(|c| c.uid());
            Ok((Stream::Unix(s), Peer::Unix { uid }))
        }
    }
}

async fn serve(
    stream: Stream,
    registered: Registered,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    match stream {
        Stream::Tcp(s) => {
            if let Err(e) = crate::net::listen::configure_accepted(&s, &shared.config.tcp) {
                tracing::debug!(error = %e, "socket options");
                return;
            }
            // A connection that has sent nothing is idle: closed after the idle timeout,
            // or at once when the server stops, as hyper would close it.
            let first = tokio::select! {
                r = tokio::time::timeout(shared.config.idle_timeout, sniff(&s)) => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            let http = match first {
                Ok(Ok(Protocol::Http1)) => &shared.http1,
                Ok(Ok(Protocol::Http2)) => &shared.http2,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "reading the first bytes");
                    return;
                }
                Err(_) => {
                    tracing::debug!("nothing sent within the idle timeout");
                    return;
                }
            };
            serve_io(s, http, registered, &shared, stop).await;
        }
        Stream::Unix(s) => serve_io(s, &shared.http, registered, &shared, stop).await,
    }
}

/// What a TCP client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// HTTP/2 with prior knowledge opens with this (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long to wait before looking again at a client that sent part of the HTTP/2 preface.
const SNIFF_PAUSE: Duration = Duration::from_millis(10);

/// Tells HTTP/1 from HTTP/2 by peeking at the first bytes, leaving them in the socket.
/// hyper-util's detection reads them and replays them to hyper, whose first read then
/// returns only those 24 bytes; the read that completes the head made hyper double its
/// read buffer to 16 KiB, which every keep-alive connection kept while idle. Unread, the
/// head arrives in hyper's first 8 KiB buffer whole.
async fn sniff(s: &tokio::net::TcpStream) -> std::io::Result<Protocol> {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        let n = s.peek(&mut first).await?;
        if n == 0 || !H2_PREFACE.starts_with(&first[..n]) {
            // HTTP/1 (or the end of the stream, which hyper reports).
            return Ok(Protocol::Http1);
        }
        if n == H2_PREFACE.len() {
            return Ok(Protocol::Http2);
        }
        // Part of the preface: the socket stays readable, so wait rather than spin.
        tokio::time::sleep(SNIFF_PAUSE).await;
    }
}

async fn serve_io<S>(
    io: S,
    http: &auto::Builder<TokioExecutor>,
    registered: Registered,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let conn = registered.conn.clone();
    let io = TokioIo::new(Metered {
        inner: io,
        conn: conn.clone(),
        table: registered.table.clone(),
    });
    let tagged = conn.clone();
    let service =
        shared
            .router
            .clone()
            .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                tagged.requests.fetch_add(1, Ordering::Relaxed);
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnInfo(tagged.clone()));
                req
            });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);
    let idle = shared.config.idle_timeout;
    let headers = shared.config.header_read_timeout;
    let mut tick = tokio::time::interval(
        (idle.min(headers) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
    );
    let mut closing = false;
    // When the head of the next request began to arrive.
    let mut head_started: Option<Instant> = None;
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(conn = conn.id, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tick.tick() => {
                if conn.in_flight.load(Ordering::Relaxed) > 0 {
                    head_started = None;
                    continue;
                }
                let arriving = !conn.h2.load(Ordering::Relaxed)
                    && conn.bytes_in.load(Ordering::Relaxed)
                        > conn.bytes_in_at_idle.load(Ordering::Relaxed);
                if arriving {
                    // Slowloris: a head that does not complete in time ends the connection.
                    if head_started.get_or_insert_with(Instant::now).elapsed() >= headers {
                        tracing::debug!(conn = conn.id, "request head too slow; closing");
                        break;
                    }
                } else if !closing && registered.table.idle_for(&conn) >= idle {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    drop(registered);
}

/// Counts a request as in flight from dispatch until its response body is finished or
/// dropped (a streamed answer, such as an event stream, stays in flight while it streams).
pub(crate) async fn track_in_flight(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body_util::BodyExt as _;
    let Some(conn) = req.extensions().get::<ConnInfo>().map(|c| c.0.clone()) else {
        return next.run(req).await;
    };
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    let guard = InFlight(conn);
    let res = next.run(req).await;
    res.map(move |body| {
        axum::body::Body::new(body.map_frame(move |frame| {
            let _ = &guard;
            frame
        }))
    })
}

struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.0;
        if c.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            c.bytes_in_at_idle
                .store(c.bytes_in.load(Ordering::Relaxed), Ordering::Relaxed);
            c.idle_since
                .store(c.last_active.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }
}
