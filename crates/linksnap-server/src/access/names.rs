//! The names this server answers to. A request over TCP whose `Host` is not one of them is
//! answered 421 (Misdirected Request) before anything else: a DNS-rebinding page, whose
//! name the attacker points at this server, cannot read or drive it. Allowed: an IP
//! literal (any address: rebinding needs a name), `localhost` and `*.localhost` (which
//! browsers resolve to loopback themselves), every `public_name` the operator configured,
//! and the snapshot origin. Unix-socket clients are not browsers and are not checked.

use crate::addr::ListenAddr;

/// The server's names, lower-case, each `host` or `host:port`.
#[derive(Debug, Clone, Default)]
pub struct ServerNames {
    names: Vec<String>,
    /// The app's origins, for the snapshot origin's `frame-ancestors`.
    app_origins: Vec<String>,
}

/// `host` of `host[:port]` (IPv6 in brackets kept).
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..h.len() + 2]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// `localhost` or a name under it, in any case.
fn is_localhost(host: &str) -> bool {
    let (b, l) = (host.as_bytes(), b"localhost".len());
    b.len() >= l
        && b[b.len() - l..].eq_ignore_ascii_case(b"localhost")
        && (b.len() == l || b[b.len() - l - 1] == b'.')
}

fn is_ip_literal(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
}

impl ServerNames {
    /// From the operator's public names, the snapshot origin and the bound listeners.
    #[must_use]
    pub fn new(public: &[String], snapshot_origin: Option<&str>, bound: &[ListenAddr]) -> Self {
        let mut names: Vec<String> = public.iter().map(|n| n.to_ascii_lowercase()).collect();
        if let Some(o) = snapshot_origin {
            names.push(
                o.split_once("://")
                    .map_or(o, |(_, a)| a)
                    .to_ascii_lowercase(),
            );
        }
        let mut app_origins = Vec::new();
        for name in public {
            app_origins.push(format!("http://{name}"));
            app_origins.push(format!("https://{name}"));
        }
        for l in bound {
            if let ListenAddr::Tcp(a) = l {
                let port = a.port();
                if a.ip().is_unspecified() {
                    app_origins.push(format!("http://127.0.0.1:{port}"));
                    app_origins.push(format!("http://[::1]:{port}"));
                } else {
                    app_origins.push(format!("http://{a}"));
                }
                app_origins.push(format!("http://localhost:{port}"));
            }
        }
        Self { names, app_origins }
    }

    /// Whether `Host: host` names this server.
    #[must_use]
    pub fn allows(&self, authority: &str) -> bool {
        // On every request: compared without lower-casing a copy (the names are kept
        // lower-case).
        let authority = authority.trim();
        let host = host_part(authority);
        is_ip_literal(host)
            || is_localhost(host)
            || self.names.iter().any(|n| {
                n.eq_ignore_ascii_case(authority)
                    || (!n.contains(':') && n.eq_ignore_ascii_case(host))
            })
    }

    /// The app's origins (for `frame-ancestors` on the snapshot origin).
    #[must_use]
    pub fn app_origins(&self) -> &[String] {
        &self.app_origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_public_name;

    #[test]
    fn names_ip_literals_and_localhost_are_allowed_and_nothing_else() {
        let n = ServerNames::new(
            &["links.example.org".into(), "alt.example:8443".into()],
            Some("http://snap.example:8081"),
            &[],
        );
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.0.2.7",
            "localhost:8080",
            "app.localhost",
            "links.example.org",
            "LINKS.example.org:443",
            "alt.example:8443",
            "snap.example:8081",
        ] {
            assert!(n.allows(ok), "{ok}");
        }
        for no in [
            "rebind.attacker.example",
            "alt.example:8444",
            "alt.example",
            "snap.example",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!n.allows(no), "{no}");
        }
        assert!(parse_public_name("links.example.org").is_ok());
        assert!(parse_public_name("links.example.org:8443").is_ok());
        assert!(parse_public_name("https://links.example.org").is_err());
        assert!(parse_public_name("links.example.org/x").is_err());
    }
}
