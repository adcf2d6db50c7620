//! JSON shapes printed by the CLI. Documented in the README; fields are only ever added.
//! Domain types stay free of serde: this module is where they become wire types.

use linksnap_capture::{Capture, Readable, ResourceRecord};
use serde::Serialize;

/// `linksnap snap --format json`.
#[derive(Debug, Serialize)]
pub struct SnapReport<'a> {
    /// The URL as requested (parsed).
    pub url: &'a str,
    /// The URL after redirects.
    pub final_url: &'a str,
    /// HTTP status of the page.
    pub status: u16,
    /// Media type of the page as served (sniffed when the header is missing or generic).
    pub media_type: &'a str,
    /// Size of the page body as received (after content decoding).
    pub page_bytes: usize,
    /// Response headers of the page, in order.
    pub headers: Vec<[&'a str; 2]>,
    /// The page's original encoding and how it was decided (HTML only).
    pub encoding: Option<EncodingReport>,
    /// What was saved.
    pub snapshot: SnapshotReport<'a>,
    /// Readable text and metadata (HTML only).
    pub text: Option<TextReport<'a>>,
    /// Every resource referenced, in document order.
    pub resources: Vec<ResourceReport<'a>>,
    /// Wall time of the capture in milliseconds.
    pub elapsed_ms: u128,
    /// `static` or `browser`: which engine made it.
    pub engine: &'static str,
    /// How the page was had.
    pub exchange: ExchangeReport,
}

/// How a response was had: when it was asked for, from where, over what, asked how,
/// and through which redirects.
#[derive(Debug, Serialize)]
pub struct ExchangeReport {
    /// When the request was sent (RFC 3339, UTC, microseconds).
    pub sent_at: Option<String>,
    /// The address connected to (`IP:PORT`).
    pub address: Option<String>,
    /// The response's protocol (`HTTP/1.1`, `HTTP/2.0`).
    pub http_version: Option<String>,
    /// The request's method.
    pub method: Option<String>,
    /// The request's headers as sent, `[name, value]`, cookies and credentials redacted.
    pub request_headers: Vec<[String; 2]>,
    /// The redirects answered on the way here, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<RedirectReport>,
}

/// One redirect on the way to a response.
#[derive(Debug, Serialize)]
pub struct RedirectReport {
    /// The URL asked for.
    pub url: String,
    /// Its status.
    pub status: u16,
    /// Its `Location` header.
    pub location: Option<String>,
    /// How it was had.
    pub exchange: ExchangeReport,
}

/// Request headers whose values are secrets, shown as `(redacted)`.
const SECRET_HEADERS: [&str; 3] = ["cookie", "authorization", "proxy-authorization"];

impl ExchangeReport {
    fn new(w: &linksnap_capture::Wire, redirects: &[linksnap_capture::Redirected]) -> Self {
        Self {
            sent_at: w
                .sent_at
                .map(|t| humantime::format_rfc3339_micros(t).to_string()),
            address: w.remote_addr.map(|a| a.to_string()),
            http_version: (!w.version.is_empty()).then(|| w.version.clone()),
            method: (!w.method.is_empty()).then(|| w.method.clone()),
            request_headers: w
                .request_headers
                .iter()
                .map(|(k, v)| {
                    let v = if SECRET_HEADERS.contains(&k.as_str()) {
                        "(redacted)".to_owned()
                    } else {
                        v.clone()
                    };
                    [k.clone(), v]
                })
                .collect(),
            redirects: redirects
                .iter()
                .map(|r| RedirectReport {
                    url: r.url.to_string(),
                    status: r.status,
                    location: r
                        .headers
                        .iter()
                        .find(|(k, _)| k == "location")
                        .map(|(_, v)| v.clone()),
                    exchange: Self::new(&r.wire, &[]),
                })
                .collect(),
        }
    }
}

/// The page's encoding.
#[derive(Debug, Serialize)]
pub struct EncodingReport {
    /// WHATWG encoding name, e.g. `GBK`, `Shift_JIS`.
    pub name: &'static str,
    /// `bom`, `utf-8-content`, `http-header`, `meta` or `detected`.
    pub source: &'static str,
}

/// The saved file.
#[derive(Debug, Serialize)]
pub struct SnapshotReport<'a> {
    /// Its media type.
    pub media_type: &'a str,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Readable text and metadata.
#[derive(Debug, Serialize)]
pub struct TextReport<'a> {
    pub title: &'a str,
    pub byline: Option<&'a str>,
    pub excerpt: Option<&'a str>,
    pub lang: Option<&'a str>,
    pub site_name: Option<&'a str>,
    pub published_time: Option<&'a str>,
    pub text: &'a str,
}

/// One resource and its outcome.
#[derive(Debug, Serialize)]
pub struct ResourceReport<'a> {
    /// As referenced, absolute.
    pub url: &'a str,
    /// `stylesheet`, `image`, `css-asset`, `script`, `frame`, `media`, `svg-sprite`, `embed`.
    pub kind: &'static str,
    /// `inlined`, or a failure code: `refused`, `too-large`, `timed-out`, `http-status`,
    /// `connect`, `network`, `redirect`, `unsupported-scheme`, `host-failed`, `decode`,
    /// `too-deep`.
    pub outcome: &'static str,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    /// Media type, when inlined.
    pub media_type: Option<&'a str>,
    /// Body size, when inlined.
    pub bytes: Option<usize>,
    /// Final URL, when it differs from `url`.
    pub final_url: Option<&'a str>,
    /// Why it failed, in words.
    pub error: Option<String>,
    /// How it was had, when inlined.
    pub exchange: Option<ExchangeReport>,
}

impl<'a> SnapReport<'a> {
    /// The report of a capture.
    pub fn new(c: &'a Capture) -> Self {
        Self {
            url: c.requested_url.as_str(),
            final_url: c.page.final_url.as_str(),
            status: c.page.status,
            media_type: &c.page.media_type,
            page_bytes: c.page.bytes.len(),
            headers: c
                .page
                .headers
                .iter()
                .map(|(k, v)| [k.as_str(), v.as_str()])
                .collect(),
            encoding: c.encoding.map(|(name, source)| EncodingReport {
                name,
                source: source.as_str(),
            }),
            snapshot: SnapshotReport {
                media_type: c.snapshot_media_type(),
                bytes: c.snapshot_bytes().len(),
            },
            text: c.readable.as_ref().map(TextReport::new),
            resources: c.resources.iter().map(ResourceReport::new).collect(),
            elapsed_ms: c.elapsed.as_millis(),
            engine: c.engine.as_str(),
            exchange: ExchangeReport::new(&c.page.wire, &c.page.redirects),
        }
    }
}

impl<'a> TextReport<'a> {
    fn new(r: &'a Readable) -> Self {
        Self {
            title: &r.title,
            byline: r.byline.as_deref(),
            excerpt: r.excerpt.as_deref(),
            lang: r.lang.as_deref(),
            site_name: r.site_name.as_deref(),
            published_time: r.published_time.as_deref(),
            text: &r.text,
        }
    }
}

impl<'a> ResourceReport<'a> {
    fn new(r: &'a ResourceRecord) -> Self {
        match &r.result {
            Ok(f) => Self {
                url: r.url.as_str(),
                kind: r.kind.as_str(),
                outcome: "inlined",
                status: Some(f.status),
                media_type: Some(&f.media_type),
                bytes: Some(f.bytes.len()),
                final_url: (f.final_url != r.url).then_some(f.final_url.as_str()),
                error: None,
                exchange: Some(ExchangeReport::new(&f.wire, &f.redirects)),
            },
            Err(failure) => Self {
                url: r.url.as_str(),
                kind: r.kind.as_str(),
                outcome: failure.code(),
                status: match failure {
                    linksnap_capture::Failure::HttpStatus(s) => Some(*s),
                    _ => None,
                },
                media_type: None,
                bytes: None,
                final_url: None,
                error: Some(failure.to_string()),
                exchange: None,
            },
        }
    }
}
