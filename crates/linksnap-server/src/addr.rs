//! Addresses and names as the configuration writes them: where to listen, the snapshot
//! origin, the server's public names. Parsed once here. Pure.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where to listen: `127.0.0.1:8080`, `[::]:8080`, or `unix:/path/to.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs a path, e.g. unix:/run/linksnap.sock".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(Self::Tcp).map_err(|_| {
            format!(
                "`{s}` is not a listen address: use IP:PORT (127.0.0.1:8080, [::]:8080) or unix:/path"
            )
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Checks a configured origin: `http(s)://host[:port]` with nothing after it.
///
/// # Errors
/// What is wrong with it.
pub fn parse_origin(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s.trim()).map_err(|e| format!("`{s}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{s}`: expected http(s)://HOST[:PORT]"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{s}`: an origin has no path, query or fragment"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Checks a configured public name: `host` or `host:port`, no scheme or path.
///
/// # Errors
/// What is wrong with it.
pub fn parse_public_name(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let bad = || format!("`{s}`: expected a host name, HOST:PORT, or an IP address");
    if s.is_empty() || s.contains("://") || s.contains('/') || s.contains('@') {
        return Err(bad());
    }
    let url = url::Url::parse(&format!("http://{s}/")).map_err(|_| bad())?;
    if url.host_str().is_none() {
        return Err(bad());
    }
    Ok(s)
}
