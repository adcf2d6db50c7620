//! The address policy: which IP addresses the fetcher may connect to.
//!
//! This is the seeds' `gethostbyname`, done safely. Every address a name resolves to, every
//! redirect target and every asset is checked here before any connection is made. The
//! default refuses everything that is not a public unicast address; an operator opens
//! exactly the ranges they name with allow rules (`--allow-net`, `LINKSNAP_ALLOW_NET`).
//!
//! Pure: no IO, so the whole table is unit-tested.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A named range the default policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenyRule {
    /// Short human name of the rule, used in error messages ("loopback", "private").
    pub name: &'static str,
    /// The range, as written in the RFC that reserves it.
    pub range: &'static str,
}

impl fmt::Display for DenyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.range)
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The address as resolved (before any IPv4-mapped normalisation).
    pub addr: IpAddr,
    /// The rule that matched.
    pub rule: DenyRule,
    /// Set when the rule matched the IPv4 address embedded in an IPv6 form
    /// (mapped, compatible, NAT64, 6to4); names that form.
    pub via: Option<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "address {} is refused by the rule {}",
            self.addr, self.rule
        )?;
        if let Some(via) = self.via {
            write!(f, " (through its {via} IPv4 address)")?;
        }
        Ok(())
    }
}

const V4_RULES: &[(&str, &str)] = &[
    ("unspecified", "0.0.0.0/8"),
    ("private", "10.0.0.0/8"),
    ("carrier-grade NAT", "100.64.0.0/10"),
    ("loopback", "127.0.0.0/8"),
    ("cloud metadata", "169.254.169.254/32"),
    ("link-local", "169.254.0.0/16"),
    ("private", "172.16.0.0/12"),
    ("cloud metadata", "192.0.0.192/32"),
    ("IETF protocol assignments", "192.0.0.0/24"),
    ("documentation", "192.0.2.0/24"),
    ("private", "192.168.0.0/16"),
    ("benchmarking", "198.18.0.0/15"),
    ("documentation", "198.51.100.0/24"),
    ("documentation", "203.0.113.0/24"),
    ("multicast", "224.0.0.0/4"),
    ("reserved", "240.0.0.0/4"),
];

const V6_RULES: &[(&str, &str)] = &[
    ("unspecified", "::/128"),
    ("loopback", "::1/128"),
    ("discard-only", "100::/64"),
    ("local-use NAT64", "64:ff9b:1::/48"),
    ("Teredo tunnel", "2001::/32"),
    ("IETF protocol assignments", "2001::/23"),
    ("documentation", "2001:db8::/32"),
    ("documentation", "3fff::/20"),
    ("cloud metadata", "fd00:ec2::254/128"),
    ("unique local (private)", "fc00::/7"),
    ("link-local", "fe80::/10"),
    ("site-local", "fec0::/10"),
    ("multicast", "ff00::/8"),
];

/// The address policy: the default deny table plus the operator's allow rules.
///
/// Invariant: an address is allowed iff an allow rule contains it (after IPv4-mapped
/// normalisation), or no deny rule matches it or any IPv4 address embedded in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
    /// Sockets never connected to, whatever the allow rules: the server's own listeners
    /// (a capture must not read the server's own routes, e.g. `/metrics`).
    never: Vec<std::net::SocketAddr>,
}

/// The rule that refuses the server's own sockets.
pub const OWN_SOCKET: DenyRule = DenyRule {
    name: "this server's own listener",
    range: "its listen address",
};

/// An allow rule that did not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid network `{input}`: expected an address or CIDR such as 127.0.0.0/8 or ::1/128")]
pub struct InvalidNet {
    /// What was given.
    pub input: String,
}

impl AddressPolicy {
    /// The default policy: only public unicast addresses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens one range. A bare address opens just itself.
    pub fn allow(&mut self, net: IpNet) {
        self.allow.push(net.trunc());
    }

    /// Parses a rule as `--allow-net` takes it: `127.0.0.0/8`, `::1`, `10.1.2.3`.
    ///
    /// # Errors
    /// [`InvalidNet`] when `input` is neither a CIDR nor an address.
    pub fn parse_net(input: &str) -> Result<IpNet, InvalidNet> {
        let s = input.trim();
        let s = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        IpNet::from_str(s)
            .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
            .map_err(|_| InvalidNet {
                input: input.to_owned(),
            })
    }

    /// Parses a comma-separated list, as `LINKSNAP_ALLOW_NET` holds it. Empty items are skipped.
    ///
    /// # Errors
    /// [`InvalidNet`] for the first item that does not parse.
    pub fn parse_net_list(input: &str) -> Result<Vec<IpNet>, InvalidNet> {
        input
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse_net)
            .collect()
    }

    /// Never connects to `addr` (IP and port), whatever the allow rules.
    pub fn never_connect(&mut self, addr: std::net::SocketAddr) {
        let addr = std::net::SocketAddr::new(canonical(addr.ip()), addr.port());
        if !self.never.contains(&addr) {
            self.never.push(addr);
        }
    }

    /// Checks one address for a connection to `port`: refused when it is one of the
    /// sockets named with [`AddressPolicy::never_connect`], else as [`AddressPolicy::check`].
    ///
    /// # Errors
    /// [`Refusal`] naming the rule.
    pub fn check_socket(&self, addr: IpAddr, port: u16) -> Result<(), Refusal> {
        let own = std::net::SocketAddr::new(canonical(addr), port);
        if self.never.contains(&own) {
            return Err(Refusal {
                addr,
                rule: OWN_SOCKET,
                via: None,
            });
        }
        self.check(addr)
    }

    /// The allow rules in force.
    pub fn allowed_nets(&self) -> &[IpNet] {
        &self.allow
    }

    /// Checks one address.
    ///
    /// # Errors
    /// [`Refusal`] naming the matching deny rule.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refusal> {
        let canonical = canonical(addr);
        if self.allow.iter().any(|n| n.contains(&canonical)) {
            return Ok(());
        }
        match deny_rule(canonical) {
            Some((rule, via)) => Err(Refusal { addr, rule, via }),
            None => Ok(()),
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address: normalise before anything else.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

fn deny_rule(addr: IpAddr) -> Option<(DenyRule, Option<&'static str>)> {
    match addr {
        IpAddr::V4(v4) => v4_rule(v4).map(|r| (r, None)),
        IpAddr::V6(v6) => {
            if let Some((form, v4)) = embedded_v4(v6)
                && let Some(rule) = v4_rule(v4)
            {
                return Some((rule, Some(form)));
            }
            v6_rule(v6).map(|r| (r, None))
        }
    }
}

fn v4_rule(addr: Ipv4Addr) -> Option<DenyRule> {
    if addr == Ipv4Addr::BROADCAST {
        return Some(DenyRule {
            name: "broadcast",
            range: "255.255.255.255/32",
        });
    }
    V4_RULES.iter().find_map(|&(name, range)| {
        let net: Ipv4Net = range.parse().ok()?;
        net.contains(&addr).then_some(DenyRule { name, range })
    })
}

fn v6_rule(addr: Ipv6Addr) -> Option<DenyRule> {
    V6_RULES.iter().find_map(|&(name, range)| {
        let net: Ipv6Net = range.parse().ok()?;
        net.contains(&addr).then_some(DenyRule { name, range })
    })
}

/// IPv4 addresses hidden inside IPv6 forms that a router would deliver to that IPv4 host.
fn embedded_v4(addr: Ipv6Addr) -> Option<(&'static str, Ipv4Addr)> {
    let seg = addr.segments();
    let low = Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    );
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !(seg[6] == 0 && seg[7] <= 1) {
        return Some(("IPv4-compatible", low));
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(("NAT64", low));
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return Some(("6to4", v4));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &AddressPolicy, addr: &str) -> Result<(), String> {
        policy
            .check(addr.parse().expect("test address"))
            .map_err(|r| r.rule.name.to_owned())
    }

    #[test]
    fn default_policy_refuses_every_non_public_range() {
        let p = AddressPolicy::new();
        let cases = [
            ("127.0.0.1", "loopback"),
            ("127.255.1.2", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.100.100.200", "carrier-grade NAT"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("192.0.2.7", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd12::1", "unique local (private)"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::10.0.0.1", "private"),
            ("64:ff9b::192.168.0.1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2001:0:4136:e378::1", "Teredo tunnel"),
        ];
        for (addr, rule) in cases {
            assert_eq!(check(&p, addr), Err(rule.to_owned()), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let p = AddressPolicy::new();
        for addr in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(check(&p, addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_rules_open_exactly_their_range() {
        let mut p = AddressPolicy::new();
        p.allow(AddressPolicy::parse_net("127.0.0.0/24").unwrap());
        assert_eq!(check(&p, "127.0.0.1"), Ok(()));
        assert_eq!(check(&p, "127.0.0.255"), Ok(()));
        assert_eq!(check(&p, "::ffff:127.0.0.9"), Ok(()));
        assert_eq!(check(&p, "127.0.1.0"), Err("loopback".into()));
        assert_eq!(check(&p, "::1"), Err("loopback".into()));
        p.allow(AddressPolicy::parse_net("[::1]").unwrap());
        assert_eq!(check(&p, "::1"), Ok(()));
    }

    #[test]
    fn allow_lists_parse_and_reject_garbage() {
        let nets = AddressPolicy::parse_net_list("127.0.0.0/8, ::1/128,,10.0.0.5").unwrap();
        assert_eq!(nets.len(), 3);
        let err = AddressPolicy::parse_net_list("127.0.0.0/8,localhost").unwrap_err();
        assert_eq!(err.input, "localhost");
        assert!(AddressPolicy::parse_net("10.0.0.0/33").is_err());
    }

    #[test]
    fn refusal_message_names_address_and_rule() {
        let err = AddressPolicy::new()
            .check("::ffff:10.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "address ::ffff:10.0.0.1 is refused by the rule private (10.0.0.0/8)"
        );
    }
}
