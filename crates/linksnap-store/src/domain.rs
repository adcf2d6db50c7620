//! Values with rules, parsed once: a link's normalised URL, a tag's name.

use std::fmt;

use url::Url;

/// Query parameters that only track the reader, removed during normalisation. A parameter
/// whose name starts with one of the prefixes (`utm_`) or equals one of the names goes.
pub const DEFAULT_TRACKING_PREFIXES: &[&str] = &["utm_", "mtm_", "pk_"];
/// See [`DEFAULT_TRACKING_PREFIXES`].
pub const DEFAULT_TRACKING_NAMES: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "ref_src",
];

/// Which query parameters normalisation removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingRules {
    /// Name prefixes.
    pub prefixes: Vec<String>,
    /// Whole names.
    pub names: Vec<String>,
}

impl Default for TrackingRules {
    fn default() -> Self {
        Self {
            prefixes: DEFAULT_TRACKING_PREFIXES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            names: DEFAULT_TRACKING_NAMES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

impl TrackingRules {
    fn is_tracking(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.prefixes.iter().any(|p| lower.starts_with(p.as_str()))
            || self.names.contains(&lower)
    }
}

/// A link's identity: an http(s) URL with the scheme and host lower-cased, the default
/// port and the fragment dropped, and tracking parameters removed. Two URLs a reader would
/// call the same page normalise to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedUrl(Url);

/// Why a URL cannot identify a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("invalid URL `{input}`: {reason}")]
    Invalid {
        /// What was given.
        input: String,
        /// Why.
        reason: String,
    },
    /// Not http or https.
    #[error("unsupported scheme `{scheme}:` in {input}: only http and https links can be saved")]
    Scheme {
        /// What was given.
        input: String,
        /// Its scheme.
        scheme: String,
    },
}

impl NormalizedUrl {
    /// Parses and normalises `input` (a bare `host/path` is taken as https).
    ///
    /// # Errors
    /// [`UrlError`] for anything that is not an http(s) URL.
    pub fn parse(input: &str, rules: &TrackingRules) -> Result<Self, UrlError> {
        let mut url = linksnap_capture::parse_url(input).map_err(|e| match e {
            linksnap_capture::CaptureError::UnsupportedScheme { scheme, .. } => UrlError::Scheme {
                input: input.to_owned(),
                scheme,
            },
            other => UrlError::Invalid {
                input: input.to_owned(),
                reason: match other {
                    linksnap_capture::CaptureError::InvalidUrl { reason, .. } => reason,
                    e => e.to_string(),
                },
            },
        })?;
        // The url crate already lower-cases scheme and host and drops a default port.
        url.set_fragment(None);
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| !rules.is_tracking(k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if url.query().is_some() {
            if kept.is_empty() {
                url.set_query(None);
            } else if kept.len() != url.query_pairs().count() {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        Ok(Self(url))
    }

    /// Trusts a value read back from the database (normalised when it was stored).
    pub fn from_stored(s: &str) -> Option<Self> {
        Url::parse(s).ok().map(Self)
    }

    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host, for domain filters.
    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or("")
    }
}

impl fmt::Display for NormalizedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Longest tag name, in bytes.
pub const MAX_TAG_BYTES: usize = 256;
/// Deepest nesting (`a/b/c` is 3).
pub const MAX_TAG_DEPTH: usize = 16;

/// A tag's name: trimmed, any Unicode, nested with `/` (`lang/rust`), compared without
/// regard to case. Each `/`-separated segment is trimmed and non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagName {
    /// As the user wrote it (segments trimmed).
    display: String,
    /// Case-folded: what identity and filtering use.
    key: String,
}

/// Why a tag name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Nothing but spaces and slashes.
    #[error("empty tag name")]
    Empty,
    /// Over [`MAX_TAG_BYTES`].
    #[error("tag name of {len} bytes is longer than the limit of {MAX_TAG_BYTES} bytes")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Over [`MAX_TAG_DEPTH`].
    #[error("tag `{prefix}…` is nested {depth} deep, more than the limit of {MAX_TAG_DEPTH}")]
    TooDeep {
        /// Its depth.
        depth: usize,
        /// The beginning of the name.
        prefix: String,
    },
    /// A segment between slashes is empty (`a//b`, `/a`).
    #[error("tag `{0}` has an empty level between slashes")]
    EmptyLevel(String),
    /// A control character.
    #[error("tag `{0}` contains a control character")]
    Control(String),
}

impl TagName {
    /// Parses a tag name.
    ///
    /// # Errors
    /// [`TagError`] for empty, too long, too deep or malformed names.
    pub fn parse(input: &str) -> Result<Self, TagError> {
        let trimmed = input.trim();
        if trimmed.len() > MAX_TAG_BYTES {
            return Err(TagError::TooLong { len: trimmed.len() });
        }
        if trimmed.trim_matches('/').trim().is_empty() {
            return Err(TagError::Empty);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(TagError::Control(trimmed.to_owned()));
        }
        let segments: Vec<&str> = trimmed.split('/').map(str::trim).collect();
        if segments.len() > MAX_TAG_DEPTH {
            return Err(TagError::TooDeep {
                depth: segments.len(),
                prefix: trimmed.chars().take(20).collect(),
            });
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(TagError::EmptyLevel(trimmed.to_owned()));
        }
        let display = segments.join("/");
        let key = display.to_lowercase();
        Ok(Self { display, key })
    }

    /// Trusts a pair read back from the database.
    pub fn from_stored(display: String, key: String) -> Self {
        Self { display, key }
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// Case-folded identity.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether `self` is `other` or nested under it (`lang/rust` is under `lang`).
    pub fn is_within(&self, other: &TagName) -> bool {
        self.key == other.key
            || (self.key.starts_with(&other.key) && self.key[other.key.len()..].starts_with('/'))
    }
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        NormalizedUrl::parse(s, &TrackingRules::default())
            .unwrap()
            .to_string()
    }

    #[test]
    fn urls_normalise_to_one_identity() {
        assert_eq!(
            norm("HTTP://Example.COM:80/a?b=1#frag"),
            "http://example.com/a?b=1"
        );
        assert_eq!(norm("https://example.com:443/"), "https://example.com/");
        assert_eq!(
            norm("https://example.com:8443/x"),
            "https://example.com:8443/x"
        );
        assert_eq!(
            norm("https://a.test/p?utm_source=x&id=7&fbclid=abc&UTM_Medium=y"),
            "https://a.test/p?id=7"
        );
        assert_eq!(norm("https://a.test/p?gclid=1"), "https://a.test/p");
        assert_eq!(
            norm("https://a.test/p?q=a%20b&x"),
            "https://a.test/p?q=a%20b&x"
        );
        assert_eq!(norm("example.com/path"), "https://example.com/path");
    }

    #[test]
    fn tracking_rules_are_configurable() {
        let rules = TrackingRules {
            prefixes: vec![],
            names: vec!["ref".into()],
        };
        let u = NormalizedUrl::parse("https://a.test/?ref=x&utm_source=y", &rules).unwrap();
        assert_eq!(u.as_str(), "https://a.test/?utm_source=y");
    }

    #[test]
    fn bad_urls_are_refused_with_reasons() {
        let r = TrackingRules::default();
        assert!(matches!(
            NormalizedUrl::parse("ftp://a.test/", &r),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            NormalizedUrl::parse("not a url", &r),
            Err(UrlError::Invalid { .. })
        ));
    }

    #[test]
    fn tag_names_are_trimmed_nested_and_case_insensitive() {
        let t = TagName::parse("  Lang / Rust ").unwrap();
        assert_eq!(t.as_str(), "Lang/Rust");
        assert_eq!(t.key(), "lang/rust");
        assert!(t.is_within(&TagName::parse("LANG").unwrap()));
        assert!(
            !TagName::parse("language")
                .unwrap()
                .is_within(&TagName::parse("lang").unwrap())
        );
        let zh = TagName::parse("编程/中文").unwrap();
        assert_eq!(zh.key(), "编程/中文");
    }

    #[test]
    fn bad_tag_names_are_refused_at_the_limits() {
        assert_eq!(TagName::parse("  / "), Err(TagError::Empty));
        assert!(matches!(
            TagName::parse("a//b"),
            Err(TagError::EmptyLevel(_))
        ));
        assert!(matches!(
            TagName::parse("a\u{7}"),
            Err(TagError::Control(_))
        ));
        assert!(TagName::parse(&"x".repeat(MAX_TAG_BYTES)).is_ok());
        assert!(matches!(
            TagName::parse(&"x".repeat(MAX_TAG_BYTES + 1)),
            Err(TagError::TooLong { .. })
        ));
        let deep = vec!["a"; MAX_TAG_DEPTH].join("/");
        assert!(TagName::parse(&deep).is_ok());
        assert!(matches!(
            TagName::parse(&format!("{deep}/a")),
            Err(TagError::TooDeep { .. })
        ));
        let very_deep = vec!["a"; 10_000].join("/");
        assert!(TagName::parse(&very_deep).is_err());
    }
}
