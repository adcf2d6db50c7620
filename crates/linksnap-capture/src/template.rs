//! Snapshots as a template plus content-addressed parts.
//!
//! The inliner does not paste resources into the document: it writes a *placeholder* for
//! each one and registers the resource as a *part* named by its BLAKE3 hash. Expanding the
//! template gives the single self-contained file. Storing the parts instead of that file
//! lets a library keep a stylesheet, font or logo shared by a hundred pages once, and still
//! rebuild every page's file byte for byte; `linksnap snap` expands the same template, so
//! there is one way to produce a snapshot.
//!
//! A placeholder is `U+FDD0`, a kind letter, 64 lower-case hex digits, for `T` and `B` a
//! `;` and a media type, then `U+FDD1`:
//!
//! | kind | part | expands to |
//! |---|---|---|
//! | `R` | text | the part's expanded text, as is |
//! | `A` | text | the expanded text escaped for a double-quoted attribute (`srcdoc`) |
//! | `T` | text | a percent-encoded `data:` URI of the expanded text |
//! | `B` | binary | a `data:` URI of the bytes ([`datauri::encode`]) |
//!
//! Text parts are templates themselves. None of the expansions but `R` can produce `&`,
//! `"` or `<`, so a placeholder means the same wherever the inliner put it. A sequence that
//! looks like a placeholder but names no part of the snapshot is page text and is left
//! alone. A store loads all of a snapshot's parts (and reports a missing one) before
//! expanding, so expansion cannot fail.
//!
//! Pure.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use crate::datauri;

const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// The BLAKE3 hash of a part, as 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartHash(String);

impl PartHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().to_string())
    }

    /// Parses 64 lower-case hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PartHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot before expansion: the document and everything its placeholders name.
#[derive(Debug, Clone, Default)]
pub struct SnapshotParts {
    /// The document, with placeholders.
    pub root: String,
    /// Text parts (stylesheets, frame documents, scripts, sprites), themselves templates.
    pub texts: BTreeMap<PartHash, String>,
    /// Binary parts: resource bodies as fetched.
    pub binaries: BTreeMap<PartHash, Bytes>,
}

impl SnapshotParts {
    /// Registers a text part; returns its hash.
    pub fn add_text(&mut self, text: String) -> PartHash {
        let hash = PartHash::of(text.as_bytes());
        self.texts.entry(hash.clone()).or_insert(text);
        hash
    }

    /// Registers a binary part; returns its hash.
    pub fn add_binary(&mut self, bytes: &Bytes) -> PartHash {
        let hash = PartHash::of(bytes);
        self.binaries
            .entry(hash.clone())
            .or_insert_with(|| bytes.clone());
        hash
    }

    /// The single self-contained document.
    pub fn expand(&self) -> String {
        let mut memo = HashMap::new();
        self.expand_memo(&self.root, &mut memo)
    }

    fn expand_memo(&self, template: &str, memo: &mut HashMap<PartHash, String>) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len_utf8()..];
            let Some((kind, hash, media, len)) = parse_placeholder(after) else {
                out.push(OPEN);
                rest = after;
                continue;
            };
            match kind {
                Kind::BinaryData => match self.binaries.get(&hash) {
                    Some(bytes) => out.push_str(&datauri::encode(media, bytes)),
                    None => {
                        out.push(OPEN);
                        rest = after;
                        continue;
                    }
                },
                _ => {
                    let Some(text) = self.expanded_text(&hash, memo) else {
                        out.push(OPEN);
                        rest = after;
                        continue;
                    };
                    match kind {
                        Kind::Raw => out.push_str(&text),
                        Kind::Attribute => {
                            out.push_str(&text.replace('&', "&amp;").replace('"', "&quot;"))
                        }
                        Kind::TextData | Kind::BinaryData => {
                            out.push_str(&datauri::encode_text(media, &text))
                        }
                    }
                }
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    }

    fn expanded_text(
        &self,
        hash: &PartHash,
        memo: &mut HashMap<PartHash, String>,
    ) -> Option<String> {
        if let Some(done) = memo.get(hash) {
            return Some(done.clone());
        }
        let text = self.texts.get(hash)?;
        let expanded = self.expand_memo(text, memo);
        memo.insert(hash.clone(), expanded.clone());
        Some(expanded)
    }
}

/// How a placeholder expands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `R`: text as is.
    Raw,
    /// `A`: text escaped for a double-quoted attribute.
    Attribute,
    /// `T`: text as a `data:` URI.
    TextData,
    /// `B`: bytes as a `data:` URI.
    BinaryData,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Self::Raw => 'R',
            Self::Attribute => 'A',
            Self::TextData => 'T',
            Self::BinaryData => 'B',
        }
    }

    fn from_letter(c: char) -> Option<Self> {
        Some(match c {
            'R' => Self::Raw,
            'A' => Self::Attribute,
            'T' => Self::TextData,
            'B' => Self::BinaryData,
            _ => return None,
        })
    }
}

/// The placeholder for `hash` expanded as `kind`; `media` is required for the two `data:`
/// kinds and ignored otherwise.
pub fn placeholder(kind: Kind, hash: &PartHash, media: &str) -> String {
    let mut s = String::with_capacity(80);
    s.push(OPEN);
    s.push(kind.letter());
    s.push_str(hash.as_str());
    if matches!(kind, Kind::TextData | Kind::BinaryData) {
        s.push(';');
        s.push_str(&datauri::sanitize_media_type(media));
    }
    s.push(CLOSE);
    s
}

/// Parses `K<64 hex>[;media]` + CLOSE at the start of `s`; returns the kind, hash, media
/// and the length consumed (CLOSE included).
fn parse_placeholder(s: &str) -> Option<(Kind, PartHash, &str, usize)> {
    let kind = Kind::from_letter(s.chars().next()?)?;
    let hash = PartHash::parse(s.get(1..65)?)?;
    let tail = &s[65..];
    let close = tail.find(CLOSE)?;
    let media = match kind {
        Kind::TextData | Kind::BinaryData => {
            let m = tail[..close].strip_prefix(';')?;
            if m.is_empty() || m.len() > 255 || m.contains(OPEN) {
                return None;
            }
            m
        }
        _ if close == 0 => "",
        _ => return None,
    };
    Some((kind, hash, media, 65 + close + CLOSE.len_utf8()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_expands_like_the_direct_encoding() {
        let mut parts = SnapshotParts::default();
        let png = Bytes::from_static(b"\x89PNG\r\n\x1a\n");
        let img = parts.add_binary(&png);
        let css = parts.add_text(format!(
            "a{{background:url(\"{}\")}} b::after{{content:\"&\"}}",
            placeholder(Kind::BinaryData, &img, "image/png")
        ));
        let frame = parts.add_text(format!(
            "<style>{}</style><p title=\"x\">&amp;</p>",
            placeholder(Kind::Raw, &css, "")
        ));
        parts.root = format!(
            "<style>{}</style><iframe srcdoc=\"{}\"></iframe><link href=\"{}\">",
            placeholder(Kind::Raw, &css, ""),
            placeholder(Kind::Attribute, &frame, ""),
            placeholder(Kind::TextData, &css, "text/css"),
        );
        let css_text =
            "a{background:url(\"data:image/png;base64,iVBORw0KGgo=\")} b::after{content:\"&\"}";
        let frame_text = format!("<style>{css_text}</style><p title=\"x\">&amp;</p>");
        let expected = format!(
            "<style>{css_text}</style><iframe srcdoc=\"{}\"></iframe><link href=\"{}\">",
            frame_text.replace('&', "&amp;").replace('"', "&quot;"),
            datauri::encode_text("text/css", css_text),
        );
        assert_eq!(parts.expand(), expected);
    }

    #[test]
    fn page_text_that_looks_like_a_placeholder_is_kept() {
        let mut parts = SnapshotParts::default();
        let unknown = PartHash::of(b"not a part");
        parts.root = format!(
            "x{}y \u{FDD0} z \u{FDD0}Rshort\u{FDD1}",
            placeholder(Kind::Raw, &unknown, "")
        );
        assert_eq!(parts.expand(), parts.root);
    }

    #[test]
    fn identical_content_is_one_part() {
        let mut parts = SnapshotParts::default();
        let a = parts.add_text("p{}".into());
        let b = parts.add_text("p{}".into());
        assert_eq!(a, b);
        assert_eq!(parts.texts.len(), 1);
        assert_eq!(a.as_str(), blake3::hash(b"p{}").to_hex().as_str());
    }
}
