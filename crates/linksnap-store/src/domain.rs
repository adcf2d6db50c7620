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

/// Longest URL accepted, in bytes, by default: what common web servers accept in a
/// request line. Longer input is refused at every way in (API, forms, CLI, import, mail).
pub const DEFAULT_MAX_URL_BYTES: usize = 8 << 10;

/// What a saved URL may be: which query parameters normalisation removes (tracking), and
/// how long it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRules {
    /// Name prefixes.
    pub prefixes: Vec<String>,
    /// Whole names.
    pub names: Vec<String>,
    /// Longest URL accepted, in bytes (as given and after normalisation).
    pub max_url_bytes: usize,
}

impl Default for UrlRules {
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
            max_url_bytes: DEFAULT_MAX_URL_BYTES,
        }
    }
}

impl UrlRules {
    /// Parses a comma-separated list such as `utm_*,fbclid,ref`: a trailing `*` makes a
    /// prefix, anything else a whole name; matching ignores case.
    pub fn parse(list: &str) -> Self {
        let mut rules = Self {
            prefixes: Vec::new(),
            names: Vec::new(),
            max_url_bytes: DEFAULT_MAX_URL_BYTES,
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let item = item.to_ascii_lowercase();
            match item.strip_suffix('*') {
                Some(prefix) => rules.prefixes.push(prefix.to_owned()),
                None => rules.names.push(item),
            }
        }
        rules
    }

    fn is_tracking(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.prefixes.iter().any(|p| lower.starts_with(p.as_str())) || self.names.contains(&lower)
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
    /// Longer than [`UrlRules::max_url_bytes`].
    #[error("the URL is {len} bytes long, over the limit of {max} bytes (max_url_bytes)")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
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
    pub fn parse(input: &str, rules: &UrlRules) -> Result<Self, UrlError> {
        let too_long = |len: usize| UrlError::TooLong {
            len,
            max: rules.max_url_bytes,
        };
        if input.trim().len() > rules.max_url_bytes {
            return Err(too_long(input.trim().len()));
        }
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
        // Percent-encoding can lengthen what was given.
        if url.as_str().len() > rules.max_url_bytes {
            return Err(too_long(url.as_str().len()));
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

/// A link's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub i64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        NormalizedUrl::parse(s, &UrlRules::default())
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
    fn url_rules_parse_from_a_list() {
        let rules = UrlRules::parse(" utm_* , FBCLID,,ref");
        assert_eq!(rules.prefixes, ["utm_"]);
        assert_eq!(rules.names, ["fbclid", "ref"]);
    }

    #[test]
    fn url_rules_are_configurable() {
        let rules = UrlRules {
            prefixes: vec![],
            names: vec!["ref".into()],
            max_url_bytes: DEFAULT_MAX_URL_BYTES,
        };
        let u = NormalizedUrl::parse("https://a.test/?ref=x&utm_source=y", &rules).unwrap();
        assert_eq!(u.as_str(), "https://a.test/?utm_source=y");
    }

    #[test]
    fn a_url_longer_than_the_limit_is_refused_at_its_boundary() {
        let rules = UrlRules {
            max_url_bytes: 40,
            ..UrlRules::default()
        };
        let at = format!("https://a.test/{}", "x".repeat(40 - 15));
        assert_eq!(at.len(), 40);
        assert_eq!(NormalizedUrl::parse(&at, &rules).unwrap().as_str(), at);
        let over = format!("{at}y");
        let err = NormalizedUrl::parse(&over, &rules).unwrap_err();
        assert_eq!(err, UrlError::TooLong { len: 41, max: 40 });
        assert!(err.to_string().contains("max_url_bytes"), "{err}");
        // Lengthened by normalisation (percent-encoding) past the limit: refused too.
        let encoded = format!("https://a.test/a{}b", "é".repeat(6));
        assert!(encoded.len() <= 40);
        assert!(matches!(
            NormalizedUrl::parse(&encoded, &rules),
            Err(UrlError::TooLong { .. })
        ));
    }

    #[test]
    fn bad_urls_are_refused_with_reasons() {
        let r = UrlRules::default();
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

/// A tag filter: `rust AND NOT (old OR archived)`, `"reading list" OR UNTAGGED`.
/// Keywords are upper-case (`AND`, `OR`, `NOT`, `UNTAGGED`); two terms side by side mean
/// AND; a tag matches its nested tags; quote names that contain spaces or parentheses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExpr {
    /// Carries this tag or one nested under it.
    Tag(TagName),
    /// Carries no tag.
    Untagged,
    /// Negation.
    Not(Box<TagExpr>),
    /// All of.
    And(Vec<TagExpr>),
    /// Any of.
    Or(Vec<TagExpr>),
}

impl fmt::Display for TagExpr {
    /// The expression in the syntax [`TagExpr::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nested = |e: &TagExpr, f: &mut fmt::Formatter<'_>| match e {
            TagExpr::And(_) | TagExpr::Or(_) => write!(f, "({e})"),
            _ => write!(f, "{e}"),
        };
        match self {
            Self::Tag(t) => {
                let name = t.as_str();
                if name.contains([' ', '(', ')', '"'])
                    || matches!(name, "AND" | "OR" | "NOT" | "UNTAGGED")
                {
                    write!(f, "\"{name}\"")
                } else {
                    f.write_str(name)
                }
            }
            Self::Untagged => f.write_str("UNTAGGED"),
            Self::Not(e) => {
                f.write_str("NOT ")?;
                nested(e, f)
            }
            Self::And(all) | Self::Or(all) => {
                let op = if matches!(self, Self::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, e) in all.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    nested(e, f)?;
                }
                Ok(())
            }
        }
    }
}

/// A tag expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag expression `{input}`: {reason}")]
pub struct TagExprError {
    /// The expression.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

/// Deepest nesting of parentheses and NOTs in a tag expression.
pub const MAX_TAG_EXPR_DEPTH: usize = 32;

impl TagExpr {
    /// Parses an expression.
    ///
    /// # Errors
    /// [`TagExprError`] naming the problem.
    pub fn parse(input: &str) -> Result<Self, TagExprError> {
        let err = |reason: String| TagExprError {
            input: input.to_owned(),
            reason,
        };
        let tokens = tokenize(input).map_err(err)?;
        if tokens.is_empty() {
            return Err(err("empty".to_owned()));
        }
        let mut p = ExprParser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let e = p.or().map_err(err)?;
        if p.pos != p.tokens.len() {
            return Err(err(format!("unexpected `{}`", p.tokens[p.pos].text())));
        }
        Ok(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Word(String),
    Quoted(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Self::Open => "(",
            Self::Close => ")",
            Self::Word(w) | Self::Quoted(w) => w,
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("a quote is not closed".to_owned()),
                    }
                }
                out.push(Token::Quoted(s));
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
        }
    }
    Ok(out)
}

struct ExprParser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl ExprParser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(x)) if x == w)
    }

    fn or(&mut self) -> Result<TagExpr, String> {
        let mut terms = vec![self.and()?];
        while self.peek_word("OR") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            TagExpr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<TagExpr, String> {
        let mut terms = vec![self.not()?];
        loop {
            if self.peek_word("AND") {
                self.pos += 1;
            } else if self.pos >= self.tokens.len()
                || self.peek_word("OR")
                || self.tokens[self.pos] == Token::Close
            {
                break;
            }
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            TagExpr::And(terms)
        })
    }

    fn not(&mut self) -> Result<TagExpr, String> {
        if self.peek_word("NOT") {
            self.pos += 1;
            self.deeper()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(TagExpr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_TAG_EXPR_DEPTH {
            return Err(format!("nested deeper than {MAX_TAG_EXPR_DEPTH}"));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<TagExpr, String> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err("ends where a tag was expected".to_owned());
        };
        self.pos += 1;
        match tok {
            Token::Open => {
                self.deeper()?;
                let e = self.or()?;
                self.depth -= 1;
                if self.tokens.get(self.pos) != Some(&Token::Close) {
                    return Err("a parenthesis is not closed".to_owned());
                }
                self.pos += 1;
                Ok(e)
            }
            Token::Close => Err("unexpected `)`".to_owned()),
            Token::Word(w) if w == "UNTAGGED" => Ok(TagExpr::Untagged),
            Token::Word(w) if matches!(w.as_str(), "AND" | "OR" | "NOT") => {
                Err(format!("unexpected `{w}`"))
            }
            Token::Word(w) | Token::Quoted(w) => TagName::parse(&w)
                .map(TagExpr::Tag)
                .map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod expr_tests {
    use super::*;

    fn t(s: &str) -> TagExpr {
        TagExpr::Tag(TagName::parse(s).unwrap())
    }

    #[test]
    fn expressions_parse_with_precedence() {
        assert_eq!(TagExpr::parse("rust").unwrap(), t("rust"));
        assert_eq!(
            TagExpr::parse("a OR b c").unwrap(),
            TagExpr::Or(vec![t("a"), TagExpr::And(vec![t("b"), t("c")])])
        );
        assert_eq!(
            TagExpr::parse("NOT (a OR \"reading list\") AND UNTAGGED").unwrap(),
            TagExpr::And(vec![
                TagExpr::Not(Box::new(TagExpr::Or(vec![t("a"), t("reading list")]))),
                TagExpr::Untagged
            ])
        );
        assert_eq!(
            TagExpr::parse("编程/中文 AND lang/rust").unwrap(),
            TagExpr::And(vec![t("编程/中文"), t("lang/rust")])
        );
    }

    #[test]
    fn expressions_print_as_they_parse() {
        for input in [
            "rust",
            "a OR b AND c",
            "NOT (a OR \"reading list\") AND UNTAGGED",
            "编程/中文 AND NOT lang/rust",
            "\"OR\" OR (x AND y)",
        ] {
            let e = TagExpr::parse(input).unwrap();
            assert_eq!(TagExpr::parse(&e.to_string()).unwrap(), e, "{input} → {e}");
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        for (input, reason) in [
            ("", "empty"),
            ("(a", "a parenthesis is not closed"),
            ("a)", "unexpected `)`"),
            ("a AND", "ends where a tag was expected"),
            ("OR a", "unexpected `OR`"),
            ("\"open", "a quote is not closed"),
        ] {
            let e = TagExpr::parse(input).unwrap_err();
            assert_eq!(e.reason, reason, "{input}");
        }
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(
            TagExpr::parse(&deep)
                .unwrap_err()
                .reason
                .contains("nested deeper")
        );
        let nots = format!("{}a", "NOT ".repeat(10_000));
        assert!(TagExpr::parse(&nots).is_err());
    }
}
