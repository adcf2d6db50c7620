//! Who may connect and how often: bans (refused at accept), the per-address connection cap
//! (enforced in the connection table), automatic temporary bans for a client that keeps
//! hitting it, the per-address request rate, and the real client behind a trusted proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;
use linksnap_store::{Ban, LiveBans, now_ms};

use crate::config::{Autoban, ServerConfig};

/// The shared state of the address rules.
pub struct Guard {
    pub max_conns_per_ip: u32,
    ipv6_prefix: u8,
    autoban: Option<Autoban>,
    trusted: Vec<IpNet>,
    bans: LiveBans,
    /// Cap refusals per client within the current window.
    strikes: Mutex<HashMap<IpNet, (Instant, u32)>>,
    limiter: Option<governor::DefaultKeyedRateLimiter<IpNet>>,
    pub refused_cap: AtomicU64,
    pub refused_banned: AtomicU64,
    pub rate_limited: AtomicU64,
    pub autobans: AtomicU64,
}

/// An IPv4 address inside IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
#[must_use]
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Guard {
    #[must_use]
    pub fn new(config: &ServerConfig, bans: LiveBans) -> Self {
        let limiter = config.rate_limit.map(|r| {
            // One request every `per / requests`, bursts of `burst`.
            let period = (r.per / r.requests.max(1)).max(Duration::from_micros(1));
            let burst = std::num::NonZeroU32::new(r.burst).unwrap_or(std::num::NonZeroU32::MIN);
            let quota = governor::Quota::with_period(period)
                .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
                .allow_burst(burst);
            governor::RateLimiter::keyed(quota)
        });
        Self {
            max_conns_per_ip: config.max_conns_per_ip,
            ipv6_prefix: config.ipv6_prefix,
            autoban: config.autoban,
            trusted: config.trusted_proxies.clone(),
            bans,
            strikes: Mutex::new(HashMap::new()),
            limiter,
            refused_cap: AtomicU64::new(0),
            refused_banned: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            autobans: AtomicU64::new(0),
        }
    }

    /// The client group an address belongs to: itself (IPv4), or its IPv6 prefix.
    #[must_use]
    pub fn key(&self, ip: IpAddr) -> IpNet {
        match canonical(ip) {
            IpAddr::V4(v4) => IpNet::from(IpAddr::V4(v4)),
            IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, self.ipv6_prefix)
                .map_or_else(|_| IpNet::from(IpAddr::V6(v6)), |n| IpNet::V6(n.trunc())),
        }
    }

    /// The ban that holds `ip` now, if any.
    #[must_use]
    pub fn banned(&self, ip: IpAddr) -> Option<Ban> {
        let ip = canonical(ip);
        let now = now_ms();
        self.bans
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|b| b.active_at(now) && b.net.contains(&ip))
            .cloned()
    }

    /// Whether `ip` is one of the trusted proxies.
    #[must_use]
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Counts a refusal by the cap; returns the ban to make when the client crossed the
    /// automatic-ban threshold (it is in force here at once). Trusted proxies are never
    /// banned automatically.
    pub fn strike(&self, ip: IpAddr) -> Option<Ban> {
        self.refused_cap.fetch_add(1, Ordering::Relaxed);
        let rule = self.autoban?;
        if self.is_trusted(ip) {
            return None;
        }
        let key = self.key(ip);
        let mut strikes = self
            .strikes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let entry = strikes.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) > rule.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 < rule.threshold {
            return None;
        }
        strikes.remove(&key);
        // Forget old windows now and then, so the map cannot grow without bound.
        if strikes.len() > 10_000 {
            strikes.retain(|_, (start, _)| now.duration_since(*start) <= rule.window);
        }
        drop(strikes);
        let ban = Ban {
            net: key,
            reason: format!(
                "automatic: {} connections refused by the per-address cap ({}) within {}",
                rule.threshold,
                self.max_conns_per_ip,
                humantime::format_duration(rule.window)
            ),
            automatic: true,
            created_at: now_ms(),
            expires_at: Some(
                now_ms()
                    .saturating_add(i64::try_from(rule.ban_for.as_millis()).unwrap_or(i64::MAX)),
            ),
        };
        self.autobans.fetch_add(1, Ordering::Relaxed);
        self.bans
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ban.clone());
        Some(ban)
    }

    /// The client a request is from: the TCP peer, or, when the peer is a trusted proxy,
    /// the nearest untrusted address its `Forwarded`/`X-Forwarded-For` names.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let mut chain: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("forwarded") {
            let Ok(v) = value.to_str() else { continue };
            for element in v.split(',') {
                for pair in element.split(';') {
                    let Some((k, val)) = pair.split_once('=') else {
                        continue;
                    };
                    if k.trim().eq_ignore_ascii_case("for")
                        && let Some(ip) = forwarded_node(val)
                    {
                        chain.push(ip);
                    }
                }
            }
        }
        if chain.is_empty() {
            for value in headers.get_all("x-forwarded-for") {
                let Ok(v) = value.to_str() else { continue };
                chain.extend(v.split(',').filter_map(forwarded_node));
            }
        }
        // From the nearest hop outwards: the first address that is not a trusted proxy.
        chain
            .into_iter()
            .rev()
            .map(canonical)
            .find(|ip| !self.is_trusted(*ip))
            .unwrap_or(peer)
    }

    /// Takes one request from the client's allowance; `Err` carries how long to wait.
    ///
    /// # Errors
    /// The time until the next request is allowed.
    pub fn check_rate(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&self.key(client)).map_err(|not_until| {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
        })
    }

    /// Forgets rate-limit state of clients that are within their allowance again.
    pub fn tidy(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// One node of `Forwarded: for=…` or `X-Forwarded-For` (`1.2.3.4`, `"[2001:db8::1]:80"`,
/// `1.2.3.4:5678`); obfuscated and unknown nodes are `None`.
fn forwarded_node(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(edit: impl FnOnce(&mut ServerConfig)) -> Guard {
        let mut c = ServerConfig::default();
        edit(&mut c);
        Guard::new(&c, LiveBans::default())
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix_and_mapped_ipv4_is_ipv4() {
        let g = guard(|_| {});
        assert_eq!(
            g.key("2001:db8:1:2:aaaa::1".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            g.key("2001:db8:1:2:aaaa::1".parse().unwrap()),
            g.key("2001:db8:1:2:bbbb::9".parse().unwrap())
        );
        assert_eq!(
            g.key("::ffff:192.0.2.1".parse().unwrap()).to_string(),
            "192.0.2.1/32"
        );
        let g = guard(|c| c.ipv6_prefix = 128);
        assert_eq!(
            g.key("2001:db8::1".parse().unwrap()).to_string(),
            "2001:db8::1/128"
        );
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let g = guard(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.2, 10.0.0.3".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            g.client_ip(proxy, &h),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        // From anyone else the header is ignored.
        let other: IpAddr = "192.0.2.5".parse().unwrap();
        assert_eq!(g.client_ip(other, &h), other);
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::7]:4711\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            g.client_ip(proxy, &h),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(g.client_ip(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn the_autoban_comes_at_its_threshold_and_spares_trusted_proxies() {
        let g = guard(|c| {
            c.autoban = Some(Autoban {
                threshold: 3,
                window: Duration::from_secs(60),
                ban_for: Duration::from_secs(60),
            });
            c.trusted_proxies = vec!["10.0.0.1/32".parse().unwrap()];
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(g.strike(ip).is_none());
        assert!(g.strike(ip).is_none());
        assert!(g.banned(ip).is_none());
        let ban = g.strike(ip).expect("third strike bans");
        assert_eq!(ban.net.to_string(), "192.0.2.1/32");
        assert!(g.banned(ip).is_some());
        assert!(g.banned("192.0.2.2".parse().unwrap()).is_none());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert!(g.strike(proxy).is_none());
        }
        assert_eq!(g.refused_cap.load(Ordering::Relaxed), 13);
    }

    #[test]
    fn the_rate_limit_allows_its_burst_then_says_how_long_to_wait() {
        let g = guard(|c| {
            c.rate_limit = Some(crate::config::RateLimit {
                requests: 1,
                per: Duration::from_secs(1),
                burst: 3,
            })
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            g.check_rate(ip).unwrap();
        }
        let wait = g.check_rate(ip).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        g.check_rate("192.0.2.2".parse().unwrap()).unwrap();
        assert!(guard(|c| c.rate_limit = None).check_rate(ip).is_ok());
    }
}
