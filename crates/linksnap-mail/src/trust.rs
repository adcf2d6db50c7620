//! Whether a message may add links: who it is from, and what proves it. `From:` alone
//! proves nothing (any sender writes any `From:`), so a mailbox can also ask for
//! - the receiving server's verdict: an `Authentication-Results` header (RFC 8601) whose
//!   authserv-id is the operator's own server, showing `dmarc=pass` for the sender's
//!   domain or `dkim=pass` with a signing domain aligned with it. A receiving server
//!   removes such headers carrying its own id from incoming mail (RFC 8601 §5), so only
//!   its own verdict carries that id;
//! - a secret: a recipient address `name+SECRET@…` or the secret in the subject.
//!
//! Pure.

use crate::message::Mail;

/// Why a message is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSenders,
    Sender(String),
    Unauthenticated(String),
    NoSecret,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoSenders => f.write_str(
                "no sender is allowed yet (set allowed_senders; \"*\" takes anyone's mail)",
            ),
            Self::Sender(s) => write!(f, "sender {s} is not allowed"),
            Self::Unauthenticated(s) => write!(
                f,
                "sender {s} is not authenticated by the receiving server (no dmarc or aligned dkim pass)"
            ),
            Self::NoSecret => f.write_str("the mailbox's secret is not in the address or subject"),
        }
    }
}

/// What a mailbox asks of a message before it takes its links.
#[derive(Debug, Clone, Default)]
pub struct Rules<'a> {
    /// `a@b.example`, `@b.example`, or `*`; empty: nobody.
    pub allowed_senders: &'a [String],
    /// The receiving server's authserv-id, when its verdict is required.
    pub authserv_id: Option<&'a str>,
    /// A secret the message must carry, when set.
    pub secret: Option<&'a str>,
}

/// `Ok` when `mail` may add links.
///
/// # Errors
/// The first rule it breaks.
pub fn check(rules: &Rules<'_>, mail: &Mail) -> Result<(), Refusal> {
    let shown = || {
        if mail.sender.is_empty() {
            "(none)".to_owned()
        } else {
            mail.sender.clone()
        }
    };
    if rules.allowed_senders.is_empty() {
        return Err(Refusal::NoSenders);
    }
    if !sender_allowed(rules.allowed_senders, &mail.sender) {
        return Err(Refusal::Sender(shown()));
    }
    if let Some(id) = rules.authserv_id {
        let domain = mail.sender.rsplit_once('@').map_or("", |(_, d)| d);
        if domain.is_empty() || !authenticated(&mail.auth_results, id, domain) {
            return Err(Refusal::Unauthenticated(shown()));
        }
    }
    if let Some(secret) = rules.secret
        && !carries_secret(mail, secret)
    {
        return Err(Refusal::NoSecret);
    }
    Ok(())
}

/// Whether `sender` is on the list (`*`: anyone with an address).
#[must_use]
pub fn sender_allowed(allowed: &[String], sender: &str) -> bool {
    let sender = sender.trim().to_lowercase();
    if sender.is_empty() {
        return false;
    }
    let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
    allowed.iter().any(|a| {
        if a == "*" {
            true
        } else if let Some(d) = a.strip_prefix('@') {
            d == domain
        } else {
            *a == sender
        }
    })
}

/// Removes RFC 5322 comments `( … )` (nested) from a header value.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether `domain` is `d` or under it (relaxed alignment).
fn aligned(domain: &str, d: &str) -> bool {
    let d = d.trim().trim_start_matches('@').to_lowercase();
    !d.is_empty() && (domain == d || domain.ends_with(&format!(".{d}")))
}

/// Whether one of `results` (`Authentication-Results` values) from `authserv_id` shows
/// `dmarc=pass` for `domain`, or `dkim=pass` signed by `domain` or a parent of it.
#[must_use]
pub fn authenticated(results: &[String], authserv_id: &str, domain: &str) -> bool {
    let domain = domain.to_lowercase();
    results.iter().any(|value| {
        let value = strip_comments(value);
        let mut parts = value.split(';');
        let id = parts
            .next()
            .and_then(|p| p.split_whitespace().next())
            .unwrap_or("");
        if !id.eq_ignore_ascii_case(authserv_id) {
            return false;
        }
        parts.any(|resinfo| {
            let mut words = resinfo.split_whitespace();
            let Some((method, result)) = words.next().and_then(|w| w.split_once('=')) else {
                return false;
            };
            if !result.eq_ignore_ascii_case("pass") {
                return false;
            }
            let props: Vec<(String, String)> = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim_matches('"').to_owned()))
                .collect();
            let prop = |k: &str| props.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            match method.to_ascii_lowercase().as_str() {
                "dmarc" => prop("header.from").is_some_and(|d| d.eq_ignore_ascii_case(&domain)),
                "dkim" => prop("header.d")
                    .or_else(|| prop("header.i").map(|i| i.rsplit_once('@').map_or(i, |(_, d)| d)))
                    .is_some_and(|d| aligned(&domain, d)),
                _ => false,
            }
        })
    })
}

/// Equality whose time does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the secret is in a recipient's `+tag` or in the subject.
fn carries_secret(mail: &Mail, secret: &str) -> bool {
    let secret = secret.to_lowercase();
    mail.recipients.iter().any(|r| {
        let local = r.rsplit_once('@').map_or(r.as_str(), |(l, _)| l);
        local
            .split_once('+')
            .is_some_and(|(_, tag)| same(&tag.to_lowercase(), &secret))
    }) || mail.subject.to_lowercase().contains(&secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(sender: &str, results: &[&str]) -> Mail {
        Mail {
            sender: sender.into(),
            auth_results: results.iter().map(|s| (*s).to_owned()).collect(),
            ..Mail::default()
        }
    }

    #[test]
    fn only_the_receiving_servers_own_verdict_counts() {
        let ok = "mx.home.test; spf=pass smtp.mailfrom=ann@example.test; dkim=pass (good signature) header.d=example.test header.s=s1; dmarc=pass (p=reject) header.from=example.test";
        assert!(authenticated(&[ok.into()], "mx.home.test", "example.test"));
        // The same verdict under another id (written by the sender): not ours.
        assert!(!authenticated(
            &[ok.replace("mx.home.test", "mx.forger.test")],
            "mx.home.test",
            "example.test"
        ));
        // Failures, and passes for another domain.
        for bad in [
            "mx.home.test; spf=fail smtp.mailfrom=example.test; dkim=none; dmarc=fail header.from=example.test",
            "mx.home.test; dkim=pass header.d=attacker.test; dmarc=fail header.from=example.test",
            "mx.home.test; dkim=pass header.d=notexample.test",
            "mx.home.test; dmarc=pass header.from=example.test.attacker.test",
            "mx.home.test (dkim=pass header.d=example.test); none",
        ] {
            assert!(
                !authenticated(&[bad.into()], "mx.home.test", "example.test"),
                "{bad}"
            );
        }
        // Relaxed DKIM alignment: a parent domain's signature covers a subdomain sender.
        let parent = "mx.home.test 1; dkim=pass header.i=@example.test";
        assert!(authenticated(
            &[parent.into()],
            "MX.home.test",
            "news.example.test"
        ));
    }

    #[test]
    fn rules_refuse_by_default_and_check_sender_verdict_and_secret() {
        let m = mail(
            "ann@example.test",
            &["mx.home.test; dmarc=pass header.from=example.test"],
        );
        assert_eq!(check(&Rules::default(), &m), Err(Refusal::NoSenders));
        let anyone = ["*".to_owned()];
        let domain = ["@example.test".to_owned()];
        let other = ["bob@example.test".to_owned()];
        assert!(
            check(
                &Rules {
                    allowed_senders: &anyone,
                    ..Rules::default()
                },
                &m
            )
            .is_ok()
        );
        assert!(
            check(
                &Rules {
                    allowed_senders: &domain,
                    ..Rules::default()
                },
                &m
            )
            .is_ok()
        );
        assert!(matches!(
            check(
                &Rules {
                    allowed_senders: &other,
                    ..Rules::default()
                },
                &m
            ),
            Err(Refusal::Sender(_))
        ));
        let verdict = Rules {
            allowed_senders: &domain,
            authserv_id: Some("mx.home.test"),
            secret: None,
        };
        assert!(check(&verdict, &m).is_ok());
        let forged = mail(
            "ann@example.test",
            &["mx.home.test; spf=fail; dkim=none; dmarc=fail header.from=example.test"],
        );
        assert!(matches!(
            check(&verdict, &forged),
            Err(Refusal::Unauthenticated(_))
        ));
        let secret = Rules {
            allowed_senders: &anyone,
            authserv_id: None,
            secret: Some("k3y7"),
        };
        assert_eq!(check(&secret, &m), Err(Refusal::NoSecret));
        let mut to = m.clone();
        to.recipients = vec!["links+K3Y7@home.test".into()];
        assert!(check(&secret, &to).is_ok());
        let mut subject = m.clone();
        subject.subject = "read this k3y7".into();
        assert!(check(&secret, &subject).is_ok());
    }
}
