//! Our own name resolution, checked against the address policy.
//!
//! The fetcher never lets the HTTP client resolve names: [`GuardedResolver`] resolves each
//! host once per capture with hickory (reading `/etc/hosts` and `/etc/resolv.conf`),
//! drops every address the policy refuses, and hands the HTTP client exactly the checked
//! addresses. There is therefore no gap between the check and the connection in which a
//! second DNS answer could point somewhere else (DNS rebinding).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tokio::sync::OnceCell;
use url::{Host, Url};

use crate::policy::{AddressPolicy, Refusal};

/// Why a host cannot be connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Every address of the host is refused by the policy.
    #[error("{host}: {refusal}")]
    Refused {
        /// The host as written in the URL.
        host: String,
        /// The first refusal.
        refusal: Refusal,
    },
    /// The name does not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Dns {
        /// The host as written in the URL.
        host: String,
        /// The resolver's explanation.
        reason: String,
    },
}

/// Resolves names. Shared by all captures of a process; holds hickory's cache.
pub struct NameResolver {
    /// The system resolver; `None` when no resolver configuration could be read.
    system: Option<TokioResolver>,
    /// Fixed answers (like curl's `--resolve`), still subject to the policy.
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl std::fmt::Debug for NameResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameResolver")
            .field("system", &self.system.is_some())
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl NameResolver {
    /// The system configuration (`/etc/resolv.conf`, `/etc/hosts`). Where there is none,
    /// only overrides and IP literals resolve.
    pub fn system() -> Self {
        let builder = TokioResolver::builder_tokio().or_else(|e| {
            tracing::warn!(error = %e, "no system resolver configuration; only /etc/hosts and overrides resolve");
            Ok::<_, hickory_resolver::net::NetError>(TokioResolver::builder_with_config(
                ResolverConfig::udp_and_tcp(&hickory_resolver::config::ServerGroup {
                    ips: &[],
                    server_name: "none",
                    path: "",
                }),
                TokioRuntimeProvider::default(),
            ))
        });
        let system = builder.ok().and_then(|mut b| {
            b.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            b.build()
                .map_err(|e| tracing::warn!(error = %e, "resolver could not be built"))
                .ok()
        });
        Self {
            system,
            overrides: HashMap::new(),
        }
    }

    /// Asks exactly these name servers (UDP, then TCP) instead of the system's.
    /// `/etc/hosts` is still read first.
    ///
    /// # Errors
    /// When the resolver cannot be built.
    pub fn with_servers(servers: &[SocketAddr]) -> Result<Self, String> {
        let name_servers = servers
            .iter()
            .map(|s| {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                ns
            })
            .collect();
        let config = ResolverConfig::from_parts(None, vec![], name_servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let system = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            system: Some(system),
            overrides: HashMap::new(),
        })
    }

    /// Answers `host` with `addrs` without asking DNS (the answer is still checked).
    pub fn with_override(mut self, host: &str, addrs: Vec<IpAddr>) -> Self {
        self.overrides.insert(host.to_ascii_lowercase(), addrs);
        self
    }

    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(addrs) = self.overrides.get(&host.to_ascii_lowercase()) {
            return Ok(addrs.clone());
        }
        let Some(system) = &self.system else {
            return Err("no resolver is configured".to_owned());
        };
        let answer = system.lookup_ip(host).await.map_err(|e| {
            let text = e.to_string();
            if text.contains("no records found") {
                "no such name (the DNS server has no address for it)".to_owned()
            } else {
                text
            }
        })?;
        let addrs: Vec<IpAddr> = answer.iter().collect();
        if addrs.is_empty() {
            return Err("no addresses".to_owned());
        }
        Ok(addrs)
    }
}

/// A host's checked addresses, computed once by whichever request asks first.
type CheckedHost = Arc<OnceCell<Result<Vec<IpAddr>, HostError>>>;

/// One capture's view of name resolution: each host resolved and checked once.
pub struct GuardedResolver {
    /// The process-wide resolver.
    names: Arc<NameResolver>,
    /// The policy every address is checked against.
    policy: Arc<AddressPolicy>,
    /// Checked answers by lower-cased host, shared with the HTTP client's resolver
    /// callback; dropped with the capture.
    checked: Mutex<HashMap<String, CheckedHost>>,
}

impl GuardedResolver {
    /// A fresh per-capture resolver.
    pub fn new(names: Arc<NameResolver>, policy: Arc<AddressPolicy>) -> Arc<Self> {
        Arc::new(Self {
            names,
            policy,
            checked: Mutex::default(),
        })
    }

    /// Checks the host of `url`: an IP literal directly, a name by resolving it. Returns
    /// the addresses that may be connected to.
    ///
    /// # Errors
    /// [`HostError::Refused`] when no address passes the policy, [`HostError::Dns`] when
    /// the name does not resolve.
    pub async fn check_url(&self, url: &Url) -> Result<Vec<IpAddr>, HostError> {
        let addrs = match url.host() {
            Some(Host::Ipv4(v4)) => self.check_literal(IpAddr::V4(v4), url)?,
            Some(Host::Ipv6(v6)) => self.check_literal(IpAddr::V6(v6), url)?,
            Some(Host::Domain(name)) => self.check_name(name).await?,
            None => {
                return Err(HostError::Dns {
                    host: String::new(),
                    reason: "the URL has no host".to_owned(),
                });
            }
        };
        // The port matters for one rule: the server's own listeners are never reached. The
        // HTTP client connects by name to any checked address of the host, so one address
        // of the host that is this server's socket refuses the URL.
        let port = url.port_or_known_default().unwrap_or(0);
        for a in &addrs {
            if let Err(refusal) = self.policy.check_socket(*a, port) {
                return Err(HostError::Refused {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    refusal,
                });
            }
        }
        Ok(addrs)
    }

    fn check_literal(&self, addr: IpAddr, url: &Url) -> Result<Vec<IpAddr>, HostError> {
        self.policy
            .check(addr)
            .map(|()| vec![addr])
            .map_err(|refusal| HostError::Refused {
                host: url.host_str().unwrap_or_default().to_owned(),
                refusal,
            })
    }

    async fn check_name(&self, name: &str) -> Result<Vec<IpAddr>, HostError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        let cell = {
            let mut map = self.checked.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(|| async {
            let addrs = self
                .names
                .lookup(&key)
                .await
                .map_err(|reason| HostError::Dns {
                    host: key.clone(),
                    reason,
                })?;
            let mut first_refusal = None;
            let allowed: Vec<IpAddr> = addrs
                .into_iter()
                .filter(|a| match self.policy.check(*a) {
                    Ok(()) => true,
                    Err(r) => {
                        first_refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some(refusal)) => Err(HostError::Refused {
                    host: key.clone(),
                    refusal,
                }),
                (true, None) => Err(HostError::Dns {
                    host: key.clone(),
                    reason: "no addresses".to_owned(),
                }),
                (false, _) => Ok(allowed),
            }
        })
        .await
        .clone()
    }
}

/// The HTTP client's resolver: answers only with addresses [`GuardedResolver`] checked.
#[derive(Clone)]
pub(crate) struct ClientResolver(pub(crate) Arc<GuardedResolver>);

impl reqwest::dns::Resolve for ClientResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guarded = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = guarded.check_name(&host).await.map_err(Box::new)?;
            let iter = addrs.into_iter().map(|ip| SocketAddr::new(ip, 0));
            Ok(Box::new(iter) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(policy: AddressPolicy) -> Arc<GuardedResolver> {
        let names = NameResolver {
            system: None,
            overrides: HashMap::new(),
        }
        .with_override(
            "mixed.test",
            vec![
                "127.0.0.1".parse().unwrap(),
                "93.184.216.34".parse().unwrap(),
            ],
        )
        .with_override("inside.test", vec!["10.0.0.1".parse().unwrap()]);
        GuardedResolver::new(Arc::new(names), Arc::new(policy))
    }

    #[tokio::test]
    async fn only_checked_addresses_are_handed_out() {
        let r = resolver(AddressPolicy::new());
        let url = Url::parse("http://MIXED.test./x").unwrap();
        assert_eq!(
            r.check_url(&url).await.unwrap(),
            vec!["93.184.216.34".parse::<IpAddr>().unwrap()]
        );
        let err = r
            .check_url(&Url::parse("http://inside.test/").unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "inside.test: address 10.0.0.1 is refused by the rule private (10.0.0.0/8)"
        );
        let err = r
            .check_url(&Url::parse("http://[::1]:8080/").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::Refused { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_servers_own_sockets_are_refused_whatever_the_allow_rules() {
        let mut policy = AddressPolicy::new();
        policy.allow("127.0.0.0/8".parse().unwrap());
        policy.never_connect("127.0.0.1:8080".parse().unwrap());
        let r = resolver(policy);
        for own in [
            "http://127.0.0.1:8080/metrics",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://mixed.test:8080/",
        ] {
            let err = r.check_url(&Url::parse(own).unwrap()).await.unwrap_err();
            assert!(
                err.to_string().contains("this server's own listener"),
                "{own}: {err}"
            );
        }
        for other in [
            "http://127.0.0.1:8081/",
            "http://127.0.0.2:8080/",
            "http://mixed.test/",
        ] {
            assert!(
                r.check_url(&Url::parse(other).unwrap()).await.is_ok(),
                "{other}"
            );
        }
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_a_dns_error() {
        let r = resolver(AddressPolicy::new());
        let err = r
            .check_url(&Url::parse("http://nowhere.test/").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, HostError::Dns { .. }), "{err}");
    }

    #[tokio::test]
    async fn allow_rules_open_the_resolved_addresses() {
        let mut p = AddressPolicy::new();
        p.allow("10.0.0.0/8".parse().unwrap());
        let r = resolver(p);
        assert!(
            r.check_url(&Url::parse("http://inside.test/").unwrap())
                .await
                .is_ok()
        );
    }
}
