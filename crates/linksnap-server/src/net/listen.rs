//! Listening sockets, built by hand with socket2 so that every option is deliberate:
//! SO_REUSEADDR, an explicit backlog, TCP_DEFER_ACCEPT; and the options every accepted
//! socket gets (TCP_NODELAY, SO_KEEPALIVE with idle/interval/count).

use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, TcpKeepalive, Type};

use crate::addr::ListenAddr;
use crate::config::TcpOptions;

/// A bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
    },
}

impl Listener {
    /// The address actually bound (the port chosen for port 0).
    pub fn local_addr(&self) -> ListenAddr {
        match self {
            Self::Tcp(l) => ListenAddr::Tcp(l.local_addr().expect("a bound socket has an address")),
            Self::Unix { path, .. } => ListenAddr::Unix(path.clone()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds and listens.
///
/// # Errors
/// The system call that failed, with the address in the message.
pub fn bind(addr: &ListenAddr, opts: &TcpOptions) -> std::io::Result<Listener> {
    let context = |e: std::io::Error| std::io::Error::new(e.kind(), format!("{addr}: {e}"));
    match addr {
        ListenAddr::Tcp(a) => bind_tcp(*a, opts).map_err(context),
        ListenAddr::Unix(p) => bind_unix(p, opts.backlog, None).map_err(context),
    }
}

/// Binds a Unix socket that only this user can connect to (mode 0600), for the CLI.
///
/// # Errors
/// As [`bind`].
pub fn bind_private_unix(path: &Path, backlog: i32) -> std::io::Result<Listener> {
    bind_unix(path, backlog, Some(0o600))
        .map_err(|e| std::io::Error::new(e.kind(), format!("unix:{}: {e}", path.display())))
}

fn bind_tcp(addr: SocketAddr, opts: &TcpOptions) -> std::io::Result<Listener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted server can bind at once although old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]` means IPv6 only; listen on 0.0.0.0 as well to get IPv4.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(opts.backlog)?;
    if let Some(d) = opts.defer_accept {
        set_defer_accept(&socket, d)?;
    }
    Ok(Listener::Tcp(tokio::net::TcpListener::from_std(
        socket.into(),
    )?))
}

fn bind_unix(path: &Path, backlog: i32, mode: Option<u32>) -> std::io::Result<Listener> {
    if path.exists() {
        // A socket file left by a server that died is removed; one a live server answers on
        // is not stolen.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another server is listening on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::unix(path)?)?;
    if let Some(mode) = mode {
        // Before listen(2): nobody can connect before the mode is right.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    socket.listen(backlog)?;
    let std: std::os::unix::net::UnixListener = socket.into();
    Ok(Listener::Unix {
        listener: tokio::net::UnixListener::from_std(std)?,
        path: path.to_owned(),
    })
}

/// TCP_DEFER_ACCEPT (Linux): `accept` returns a connection only once it has data, so
/// connections that never send anything cost no task. Not wrapped by socket2.
fn set_defer_accept(socket: &Socket, d: Duration) -> std::io::Result<()> {
    let secs = libc::c_int::try_from(d.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    setsockopt_int(
        socket.as_raw_fd(),
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        secs,
    )
}

fn setsockopt_int(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: fd is a valid socket for the duration of the call; the value pointer and its
    // length describe one c_int on the stack.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Options for an accepted TCP socket.
///
/// # Errors
/// The failing setsockopt.
pub fn configure_accepted(
    stream: &tokio::net::TcpStream,
    opts: &TcpOptions,
) -> std::io::Result<()> {
    stream.set_nodelay(opts.nodelay)?;
    let socket = socket2::SockRef::from(stream);
    if let Some(ka) = opts.keepalive {
        let params = TcpKeepalive::new()
            .with_time(ka.idle)
            .with_interval(ka.interval)
            .with_retries(ka.count);
        socket.set_tcp_keepalive(&params)?;
    } else {
        socket.set_keepalive(false)?;
    }
    Ok(())
}

/// The effective options of a socket as the kernel reports them (getsockopt), for
/// `net stats`, the admin page and tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketReport {
    pub nodelay: bool,
    pub keepalive: bool,
    pub keepalive_idle_secs: u64,
    pub keepalive_interval_secs: u64,
    pub keepalive_count: u32,
}

/// Reads [`SocketReport`] off a socket.
///
/// # Errors
/// The failing getsockopt.
pub fn report(socket: socket2::SockRef<'_>) -> std::io::Result<SocketReport> {
    Ok(SocketReport {
        nodelay: socket.tcp_nodelay()?,
        keepalive: socket.keepalive()?,
        keepalive_idle_secs: socket.tcp_keepalive_time()?.as_secs(),
        keepalive_interval_secs: socket.tcp_keepalive_interval()?.as_secs(),
        keepalive_count: socket.tcp_keepalive_retries()?,
    })
}

/// TCP_DEFER_ACCEPT as set on a listening socket, in seconds (0: off). The kernel rounds
/// the value up to its retransmission schedule, so it may read back larger than set.
///
/// # Errors
/// The failing getsockopt.
pub fn defer_accept_secs(fd: std::os::fd::RawFd) -> std::io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len point to stack memory of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(u32::try_from(value).unwrap_or(0))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The sockets this server can be reached at over TCP: each listener's address; for a
/// wildcard listener, every address of this host's interfaces and loopback, on its port.
/// Captures are refused all of them.
#[must_use]
pub fn own_sockets(bound: &[ListenAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for l in bound {
        let ListenAddr::Tcp(a) = l else { continue };
        if a.ip().is_unspecified() {
            let mut ips = interface_addresses();
            ips.push(std::net::Ipv4Addr::LOCALHOST.into());
            ips.push(std::net::Ipv6Addr::LOCALHOST.into());
            ips.push(a.ip());
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, a.port())));
        } else {
            out.push(*a);
        }
    }
    out
}

/// Every address of this host's network interfaces (getifaddrs).
fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we only read and then free
    // with freeifaddrs; every pointer is checked for null before it is read.
    unsafe {
        if libc::getifaddrs(&raw mut list) != 0 {
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*addr.cast::<libc::sockaddr_in>();
                        out.push(
                            std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
                        );
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*addr.cast::<libc::sockaddr_in6>();
                        out.push(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr).into());
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Keepalive;

    #[tokio::test]
    async fn listeners_and_accepted_sockets_have_the_options_asked_for() {
        use std::os::fd::AsRawFd as _;
        let opts = TcpOptions {
            backlog: 16,
            nodelay: true,
            defer_accept: Some(Duration::from_secs(3)),
            keepalive: Some(Keepalive {
                idle: Duration::from_secs(42),
                interval: Duration::from_secs(7),
                count: 4,
            }),
        };
        let listener = bind(&"127.0.0.1:0".parse().unwrap(), &opts).unwrap();
        let Listener::Tcp(l) = &listener else {
            panic!("a TCP listener")
        };
        let socket = socket2::SockRef::from(l);
        assert!(socket.reuse_address().unwrap());
        assert!(defer_accept_secs(l.as_raw_fd()).unwrap() >= 3);
        let ListenAddr::Tcp(addr) = listener.local_addr() else {
            panic!()
        };
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        // TCP_DEFER_ACCEPT: the connection is handed over once it has data.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
            .await
            .unwrap();
        let (accepted, _) = l.accept().await.unwrap();
        configure_accepted(&accepted, &opts).unwrap();
        let r = report(socket2::SockRef::from(&accepted)).unwrap();
        assert_eq!(
            r,
            SocketReport {
                nodelay: true,
                keepalive: true,
                keepalive_idle_secs: 42,
                keepalive_interval_secs: 7,
                keepalive_count: 4,
            }
        );
        let off = TcpOptions {
            nodelay: false,
            keepalive: None,
            ..opts
        };
        configure_accepted(&accepted, &off).unwrap();
        let r = report(socket2::SockRef::from(&accepted)).unwrap();
        assert!(!r.nodelay && !r.keepalive);
    }

    #[test]
    fn a_unix_socket_in_use_is_not_stolen_and_a_stale_one_is_replaced() {
        let dir = std::env::temp_dir().join(format!("linksnap-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let first = bind_private_unix(&path, 8).unwrap();
            let err = bind_private_unix(&path, 8).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
            drop(first);
            // A file left by a server that crashed: bound once, nobody listening now.
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            assert!(path.exists());
            let again = bind_private_unix(&path, 8).unwrap();
            drop(again);
        });
        assert!(!path.exists(), "removed when the listener is dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn listen_addresses_parse_or_explain() {
        assert_eq!(
            "127.0.0.1:8080".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:8080".parse().unwrap())
        );
        assert!(matches!("[::]:80".parse(), Ok(ListenAddr::Tcp(a)) if a.is_ipv6()));
        assert_eq!(
            "unix:/tmp/a.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/a.sock".into())
        );
        assert!("unix:".parse::<ListenAddr>().is_err());
        assert!(
            "localhost:80"
                .parse::<ListenAddr>()
                .unwrap_err()
                .contains("IP:PORT")
        );
    }
}
