//! What a capture fetches, and what became of each fetch.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use url::Url;

/// What a referenced resource is used for, which decides how it is inlined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// The captured page itself.
    Page,
    /// A stylesheet (`<link rel=stylesheet>`, `@import`).
    Stylesheet,
    /// An image (`<img>`, `srcset`, `poster`, icons, SVG `<image>`).
    Image,
    /// Anything referenced by `url()` in CSS: images, fonts, cursors.
    CssAsset,
    /// A classic or module script.
    Script,
    /// A document shown in an `<iframe>` or `<frame>`.
    Frame,
    /// Audio, video or a text track.
    Media,
    /// An external SVG document referenced by `<use>`.
    SvgSprite,
    /// `<embed>` or `<object>` content.
    Embed,
    /// What a page's scripts fetched (fetch, XHR, event streams, beacons): seen by the
    /// browser engine only.
    Data,
}

impl ResourceKind {
    /// Stable lower-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Stylesheet => "stylesheet",
            Self::Image => "image",
            Self::CssAsset => "css-asset",
            Self::Script => "script",
            Self::Frame => "frame",
            Self::Media => "media",
            Self::SvgSprite => "svg-sprite",
            Self::Embed => "embed",
            Self::Data => "data",
        }
    }
}

/// A successful HTTP response, body read in full within the limits.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL after redirects.
    pub final_url: Url,
    /// HTTP status of the final response.
    pub status: u16,
    /// Response headers of the final response, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The media type we use: the header's essence, or sniffed from the bytes when the
    /// header is missing or generic.
    pub media_type: String,
    /// The body after content decoding (gzip, brotli…).
    pub bytes: Bytes,
    /// How the final response was had (when, from which address, over which protocol,
    /// asked how): what an archive of the exchange records besides the response.
    pub wire: Wire,
    /// The redirects that led here, in the order they were answered (empty when the
    /// first answer was this one).
    pub redirects: Vec<Redirected>,
}

impl Fetched {
    /// This response, as one redirect on the way to another.
    #[must_use]
    pub fn into_redirected(self) -> Redirected {
        Redirected {
            url: self.final_url,
            status: self.status,
            headers: self.headers,
            body: self.bytes,
            wire: self.wire,
        }
    }
}

/// One redirect answer on the way to a response, kept as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirected {
    /// The URL asked for.
    pub url: Url,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Its headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Its body (most are empty or a line of HTML), after content decoding.
    pub body: Bytes,
    /// How it was had.
    pub wire: Wire,
}

/// How a response was had, kept with it for the capture's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wire {
    /// When the request was sent.
    pub sent_at: Option<std::time::SystemTime>,
    /// The address connected to.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The response's protocol: `HTTP/1.1`, `HTTP/2.0`…
    pub version: String,
    /// The request's method.
    pub method: String,
    /// The request's headers as sent, names lower-cased, in order: those asked for and
    /// those the client adds (`user-agent`, `accept`, `accept-encoding`, the jar's
    /// `cookie`; `host` over HTTP/1.x, where it is a header).
    pub request_headers: Vec<(String, String)>,
}

/// Why a resource is not in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The address policy refused it; it was never contacted.
    Refused(String),
    /// Over a byte limit (the per-asset limit or the whole-snapshot budget).
    TooLarge(String),
    /// The request or the capture deadline ran out.
    TimedOut,
    /// The server answered with an error status.
    HttpStatus(u16),
    /// The host could not be reached: name resolution or connection failed.
    Connect(String),
    /// The connection broke or the server spoke bad HTTP after connecting.
    Network(String),
    /// Too many redirects, or a redirect loop.
    Redirect(String),
    /// A scheme we do not fetch.
    UnsupportedScheme(String),
    /// Another resource on the same host failed in a way that will not change (DNS,
    /// connect, policy); this one was not tried.
    HostFailed(String),
    /// The content could not be decoded for its use.
    Decode(String),
    /// Nested deeper than the frame or import depth limit.
    TooDeep,
}

impl Failure {
    /// Stable short code for reports: `refused`, `too-large`, `timed-out`, `http-status`,
    /// `connect`, `network`, `redirect`, `unsupported-scheme`, `host-failed`, `decode`, `too-deep`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::TooLarge(_) => "too-large",
            Self::TimedOut => "timed-out",
            Self::HttpStatus(_) => "http-status",
            Self::Connect(_) => "connect",
            Self::Network(_) => "network",
            Self::Redirect(_) => "redirect",
            Self::UnsupportedScheme(_) => "unsupported-scheme",
            Self::HostFailed(_) => "host-failed",
            Self::Decode(_) => "decode",
            Self::TooDeep => "too-deep",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::TooLarge(why) => write!(f, "too large: {why}"),
            Self::TimedOut => write!(f, "timed out"),
            Self::HttpStatus(s) => write!(f, "HTTP status {s}"),
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::Network(why) => write!(f, "network error: {why}"),
            Self::Redirect(why) => write!(f, "redirect error: {why}"),
            Self::UnsupportedScheme(s) => write!(f, "unsupported scheme `{s}`"),
            Self::HostFailed(why) => write!(f, "not tried, the host failed before: {why}"),
            Self::Decode(why) => write!(f, "decode error: {why}"),
            Self::TooDeep => write!(f, "nested too deep"),
        }
    }
}

/// Everything fetched during one capture, by URL (fragment removed).
#[derive(Debug, Default)]
pub struct ResourceMap {
    entries: HashMap<Url, Result<Fetched, Failure>>,
}

impl ResourceMap {
    /// The key a URL is stored under: the fragment never reaches the server.
    pub fn key(url: &Url) -> Url {
        let mut k = url.clone();
        k.set_fragment(None);
        k
    }

    /// Records the result for `url`.
    pub fn insert(&mut self, url: &Url, result: Result<Fetched, Failure>) {
        self.entries.insert(Self::key(url), result);
    }

    /// Whether `url` was attempted already, successfully or not.
    pub fn contains(&self, url: &Url) -> bool {
        self.entries.contains_key(&Self::key(url))
    }

    /// The successful fetch of `url`, if any.
    pub fn get(&self, url: &Url) -> Option<&Fetched> {
        self.entries
            .get(&Self::key(url))
            .and_then(|r| r.as_ref().ok())
    }

    /// The recorded result for `url`, success or failure.
    pub fn result(&self, url: &Url) -> Option<&Result<Fetched, Failure>> {
        self.entries.get(&Self::key(url))
    }

    /// Every attempt, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Url, &Result<Fetched, Failure>)> {
        self.entries.iter()
    }

    /// Number of attempted URLs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was attempted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Guesses a media type from the first bytes, for responses without a useful
/// `Content-Type`. Only formats a page can embed are recognised.
pub fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"\x00\x00\x01\x00", "image/x-icon"),
        (b"BM", "image/bmp"),
        (b"wOFF", "font/woff"),
        (b"wOF2", "font/woff2"),
        (b"OTTO", "font/otf"),
        (b"\x00\x01\x00\x00", "font/ttf"),
        (b"%PDF-", "application/pdf"),
        (b"\x1aE\xdf\xa3", "video/webm"),
        (b"OggS", "audio/ogg"),
        (b"ID3", "audio/mpeg"),
    ];
    if let Some((_, t)) = SIGNATURES.iter().find(|(sig, _)| bytes.starts_with(sig)) {
        return Some(t);
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some(if &bytes[8..12] == b"avif" {
            "image/avif"
        } else {
            "video/mp4"
        });
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.contains("<svg") && !head.contains("<html") {
        return Some("image/svg+xml");
    }
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<head") {
        return Some("text/html");
    }
    None
}

/// The media type to use for a response: the header's essence unless it is missing or
/// generic, in which case the bytes decide.
pub fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| s.contains('/'));
    match essence.as_deref() {
        Some("application/octet-stream" | "text/plain" | "binary/octet-stream") | None => {
            sniff_media_type(bytes)
                .map(str::to_owned)
                .or(essence)
                .unwrap_or_else(|| "application/octet-stream".to_owned())
        }
        Some(_) => essence.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_types_are_sniffed_and_specific_types_kept() {
        assert_eq!(media_type_of(None, b"\x89PNG\r\n\x1a\nrest"), "image/png");
        assert_eq!(
            media_type_of(Some("application/octet-stream"), b"wOF2xxxx"),
            "font/woff2"
        );
        assert_eq!(
            media_type_of(Some("text/plain"), b"<?xml version='1.0'?><svg xmlns=''>"),
            "image/svg+xml"
        );
        assert_eq!(
            media_type_of(Some("Text/CSS; charset=utf-8"), b"p{}"),
            "text/css"
        );
        assert_eq!(media_type_of(Some("text/plain"), b"hello"), "text/plain");
        assert_eq!(media_type_of(None, b"hello"), "application/octet-stream");
    }

    #[test]
    fn keys_ignore_fragments() {
        let mut m = ResourceMap::default();
        let u = Url::parse("http://a.test/s.svg#icon").unwrap();
        m.insert(&u, Err(Failure::TimedOut));
        assert!(m.contains(&Url::parse("http://a.test/s.svg#other").unwrap()));
    }
}
