//! One capture from start to finish: fetch the page, discover and fetch what it needs
//! (in rounds, since stylesheets and frames reference more), inline, extract text.
//!
//! This is the IO edge of the crate; the decisions (what is a reference, how it is
//! inlined, which encoding) are made by the pure modules it calls.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use url::Url;

use crate::charset::{self, EncodingSource};
use crate::dns::{GuardedResolver, NameResolver};
use crate::extract::{self, Readable};
use crate::fetch::{Exchange, FetchSettings, Fetcher, Hop};
use crate::html::{InlineOptions, Inliner};
use crate::policy::AddressPolicy;
use crate::resource::{Failure, Fetched, ResourceKind, ResourceMap};
use crate::template::SnapshotParts;

/// The default `User-Agent`: a current desktop Chrome, because many sites serve a
/// degraded page to anything else.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Every limit of a capture. Each has a named default and a CLI flag of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The whole capture, page and assets (`--timeout`).
    pub timeout: Duration,
    /// One request, from sending to the last body byte (`--request-timeout`).
    pub request_timeout: Duration,
    /// Establishing one connection (`--connect-timeout`).
    pub connect_timeout: Duration,
    /// Redirects followed for one URL (`--max-redirects`).
    pub max_redirects: usize,
    /// The page body, after decompression (`--max-page-bytes`).
    pub max_page_bytes: u64,
    /// One asset body, after decompression (`--max-asset-bytes`).
    pub max_asset_bytes: u64,
    /// Everything fetched for one snapshot, page included, after decompression
    /// (`--max-total-bytes`).
    pub max_total_bytes: u64,
    /// Assets fetched at the same time (`--concurrency`).
    pub max_concurrency: usize,
    /// Distinct resources one capture may fetch (`--max-resources`).
    pub max_resources: usize,
}

/// Default for [`Limits::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default for [`Limits::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`Limits::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`Limits::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: usize = 10;
/// Default for [`Limits::max_page_bytes`]: 32 MiB, far above any real HTML page.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 32 << 20;
/// Default for [`Limits::max_asset_bytes`]: 16 MiB.
pub const DEFAULT_MAX_ASSET_BYTES: u64 = 16 << 20;
/// Default for [`Limits::max_total_bytes`]: 128 MiB. With the concurrency limit this keeps
/// a capture well under 512 MB of memory.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 128 << 20;
/// Default for [`Limits::max_concurrency`].
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Default for [`Limits::max_resources`].
pub const DEFAULT_MAX_RESOURCES: usize = 2000;

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
            max_asset_bytes: DEFAULT_MAX_ASSET_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_resources: DEFAULT_MAX_RESOURCES,
        }
    }
}

/// Everything that configures captures.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Which addresses may be contacted.
    pub policy: AddressPolicy,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The `Accept-Language` header.
    pub accept_language: String,
    /// Size, time and count limits.
    pub limits: Limits,
    /// What the snapshot keeps.
    pub inline: InlineOptions,
    /// Whether to extract readable text (costs a DOM parse of the page).
    pub extract_text: bool,
    /// Extra trusted root certificates (PEM), for sites behind a private CA. The
    /// system's roots stay trusted.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            policy: AddressPolicy::new(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            accept_language: "en-US,en;q=0.9".to_owned(),
            limits: Limits::default(),
            inline: InlineOptions::default(),
            extract_text: true,
            extra_roots_pem: Vec::new(),
        }
    }
}

/// Why a capture produced nothing. Each variant is one thing a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The input is not a URL.
    #[error("invalid URL `{input}`: {reason}")]
    InvalidUrl {
        /// What was given.
        input: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Not http or https.
    #[error("unsupported scheme `{scheme}:` in {url}: only http and https pages can be captured")]
    UnsupportedScheme {
        /// The scheme.
        scheme: String,
        /// The URL.
        url: String,
    },
    /// The page's address is refused by the policy.
    #[error("refused {url}: {reason}")]
    Refused {
        /// The page URL.
        url: Url,
        /// Names the address and the rule.
        reason: String,
    },
    /// A byte limit was exceeded by the page.
    #[error("{reason}")]
    TooLarge {
        /// Names the URL and the limit.
        reason: String,
    },
    /// The page did not arrive in time.
    #[error("{url}: timed out (request timeout {request_timeout:?}, capture timeout {timeout:?})")]
    TimedOut {
        /// The page URL.
        url: Url,
        /// The per-request limit in force.
        request_timeout: Duration,
        /// The whole-capture limit in force.
        timeout: Duration,
    },
    /// Too many redirects or a loop.
    #[error("{url}: {reason}")]
    Redirect {
        /// The page URL.
        url: Url,
        /// What went wrong.
        reason: String,
    },
    /// DNS, connection, TLS or HTTP failure.
    #[error("{url}: {reason}")]
    Network {
        /// The page URL.
        url: Url,
        /// The error chain.
        reason: String,
    },
    /// The server answered with nothing.
    #[error("{url}: the server sent an empty body (HTTP {status})")]
    EmptyBody {
        /// The final URL.
        url: Url,
        /// Its status.
        status: u16,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The page crashed the browser's renderer (scripts that wanted more memory than the
    /// browser engine's limit end so): trying again would do the same.
    #[error("{url}: the page crashed the browser's renderer ({reason})")]
    Crashed {
        /// The page URL.
        url: Url,
        /// What the browser said, and the limit that may have been reached.
        reason: String,
    },
    /// The engine itself failed (a browser that crashed or stopped answering): nothing
    /// the page did for certain, so worth another try.
    #[error("{0}")]
    Engine(String),
}

/// What makes captures: the static engine ([`Capturer`]) or a browser engine. Captures
/// are not `Send` (the rewriting holds non-`Send` state), so neither are these futures.
pub trait CaptureEngine {
    /// Captures `input`.
    fn capture_page<'a>(
        &'a self,
        input: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Capture, CaptureError>> + 'a>>;

    /// The options in force (the limits bound the whole capture).
    fn capture_options(&self) -> &CaptureOptions;
}

impl CaptureEngine for Capturer {
    fn capture_page<'a>(
        &'a self,
        input: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Capture, CaptureError>> + 'a>>
    {
        Box::pin(self.capture(input))
    }

    fn capture_options(&self) -> &CaptureOptions {
        &self.options
    }
}

/// What the snapshot is.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// One self-contained UTF-8 HTML document.
    Html(String),
    /// The page was not HTML (a PDF, an image…): it is kept as it came.
    Original,
}

/// What happened to one resource.
#[derive(Debug, Clone)]
pub struct ResourceRecord {
    /// As referenced (absolute, no fragment).
    pub url: Url,
    /// What it was used for.
    pub kind: ResourceKind,
    /// The response, or why there is none.
    pub result: Result<Fetched, Failure>,
}

/// A finished capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// The URL asked for, parsed.
    pub requested_url: Url,
    /// The page's response: final URL, status, headers, original bytes.
    pub page: Fetched,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// For HTML pages, the snapshot as a template and content-addressed parts, which
    /// [`SnapshotParts::expand`] turns into exactly [`Capture::snapshot`].
    pub parts: Option<SnapshotParts>,
    /// The page's encoding and how it was decided (HTML pages only).
    pub encoding: Option<(&'static str, EncodingSource)>,
    /// Every resource the page referenced, in the order met.
    pub resources: Vec<ResourceRecord>,
    /// Readable text (HTML pages, when extraction was asked for).
    pub readable: Option<Readable>,
    /// Wall time of the capture.
    pub elapsed: Duration,
    /// Which engine made it.
    pub engine: Engine,
    /// What a browser engine drew of the page (none for the static engine).
    pub renderings: Renderings,
}

/// What a browser engine drew of a captured page.
#[derive(Debug, Clone, Default)]
pub struct Renderings {
    /// The whole page as a PNG.
    pub screenshot: Option<bytes::Bytes>,
    /// The top of the page, small, as a JPEG (for lists).
    pub thumbnail: Option<bytes::Bytes>,
    /// The page printed to PDF.
    pub pdf: Option<bytes::Bytes>,
}

/// Which engine made a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// What the server sent, scripts not run.
    Static,
    /// The page as a headless browser rendered it.
    Browser,
}

impl Engine {
    /// `static` or `browser`, as stored and printed.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Browser => "browser",
        }
    }
}

impl Capture {
    /// The bytes a user saves: the HTML document, or the original file.
    pub fn snapshot_bytes(&self) -> &[u8] {
        match &self.snapshot {
            Snapshot::Html(html) => html.as_bytes(),
            Snapshot::Original => &self.page.bytes,
        }
    }

    /// The snapshot's media type.
    pub fn snapshot_media_type(&self) -> &str {
        match &self.snapshot {
            Snapshot::Html(_) => "text/html; charset=utf-8",
            Snapshot::Original => &self.page.media_type,
        }
    }

    /// Whether the server answered the page with 4xx or 5xx (the page is still saved).
    pub fn is_http_error(&self) -> bool {
        self.page.status >= 400
    }
}

/// Parses what a user typed as a URL. A bare `host/path` is taken as https.
///
/// # Errors
/// [`CaptureError::InvalidUrl`] or [`CaptureError::UnsupportedScheme`].
pub fn parse_url(input: &str) -> Result<Url, CaptureError> {
    let trimmed = input.trim();
    let invalid = |reason: String| CaptureError::InvalidUrl {
        input: input.to_owned(),
        reason,
    };
    // `host:port/path` would otherwise parse as a URL whose scheme is the host.
    let bare = looks_like_bare_host(trimmed);
    let url = match Url::parse(trimmed) {
        _ if bare => {
            Url::parse(&format!("https://{trimmed}")).map_err(|e| invalid(e.to_string()))?
        }
        Ok(u) => u,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(invalid(
                "not a URL: give an address starting with http:// or https:// (or a bare host name such as example.com/page)".to_owned(),
            ));
        }
        Err(e) => return Err(invalid(e.to_string())),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CaptureError::UnsupportedScheme {
            scheme: url.scheme().to_owned(),
            url: url.to_string(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    Ok(url)
}

/// Whether `s` (which has no scheme) reads as `host[:port][/path][?query][#fragment]`, so
/// that completing it with `https://` keeps what was meant. Anything else (`ht!tp://x`, a
/// sentence) is refused rather than "repaired" into another URL.
fn looks_like_bare_host(s: &str) -> bool {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    let authority = &s[..end];
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && !host.starts_with(['.', '-'])
        && host.contains('.')
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok && !s.contains(char::is_whitespace)
}

/// Makes captures. Cheap to share; each capture gets its own HTTP client and cookie jar.
#[derive(Debug, Clone)]
pub struct Capturer {
    /// Process-wide name resolver (and its cache).
    names: Arc<NameResolver>,
    options: Arc<CaptureOptions>,
    /// Built once: root certificates are parsed at construction, not per capture.
    tls: Arc<rustls::ClientConfig>,
}

impl Capturer {
    /// A capturer with the system resolver.
    ///
    /// # Errors
    /// [`CaptureError::Client`] when an extra root certificate is invalid.
    pub fn new(options: CaptureOptions) -> Result<Self, CaptureError> {
        Self::with_resolver(options, NameResolver::system())
    }

    /// A capturer with a given resolver (fixed answers for tests and `--resolve`).
    ///
    /// # Errors
    /// [`CaptureError::Client`] when an extra root certificate is invalid.
    pub fn with_resolver(
        options: CaptureOptions,
        names: NameResolver,
    ) -> Result<Self, CaptureError> {
        let tls =
            crate::fetch::tls_config(&options.extra_roots_pem).map_err(CaptureError::Client)?;
        Ok(Self {
            names: Arc::new(names),
            options: Arc::new(options),
            tls: Arc::new(tls),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &CaptureOptions {
        &self.options
    }

    /// Captures `input`.
    ///
    /// # Errors
    /// A [`CaptureError`] when the page itself cannot be had; assets that fail are
    /// recorded in [`Capture::resources`] instead.
    pub async fn capture(&self, input: &str) -> Result<Capture, CaptureError> {
        let url = parse_url(input)?;
        let session = self.session()?;
        let page = session.fetch_page(&url).await?;
        session.finish(url, page, None, Vec::new()).await
    }

    /// Starts a capture: its own HTTP client and cookie jar, its deadline
    /// ([`Limits::timeout`] from now) and byte budget. The static engine is
    /// [`Capturer::capture`]; a browser engine answers the browser's requests with
    /// [`CaptureSession::exchange`] and ends with [`CaptureSession::finish`].
    ///
    /// # Errors
    /// [`CaptureError::Client`].
    pub fn session(&self) -> Result<CaptureSession<'_>, CaptureError> {
        let started = Instant::now();
        let limits = &self.options.limits;
        let resolver =
            GuardedResolver::new(self.names.clone(), Arc::new(self.options.policy.clone()));
        let fetcher = Fetcher::new(
            resolver,
            &self.tls,
            FetchSettings {
                user_agent: self.options.user_agent.clone(),
                accept_language: self.options.accept_language.clone(),
                connect_timeout: limits.connect_timeout,
                request_timeout: limits.request_timeout,
                max_redirects: limits.max_redirects,
                deadline: started + limits.timeout,
            },
        )
        .map_err(CaptureError::Client)?;
        Ok(CaptureSession {
            capturer: self,
            fetcher,
            started,
            budget: AtomicU64::new(0),
        })
    }

    /// Fetches `wanted`, at most `max_concurrency` at a time. A stylesheet's own
    /// references are queued as soon as it arrives, so an `@import` chain and its fonts do
    /// not each wait for the next walk of the document (one round trip per level on a real
    /// network). The walks that follow remain the authority on what the snapshot needs.
    async fn fetch_round(
        &self,
        fetcher: &Fetcher,
        budget: &AtomicU64,
        wanted: Vec<(Url, ResourceKind, usize)>,
        encoding: &'static encoding_rs::Encoding,
        resources: &mut ResourceMap,
        order: &mut Vec<(Url, ResourceKind)>,
    ) {
        let limits = &self.options.limits;
        let mut queued: HashSet<Url> = wanted.iter().map(|(u, _, _)| u.clone()).collect();
        let mut queue: VecDeque<(Url, ResourceKind, usize)> = wanted.into();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < limits.max_concurrency.max(1)
                && let Some((url, kind, depth)) = queue.pop_front()
            {
                order.push((url.clone(), kind));
                if resources.len() + in_flight.len() >= limits.max_resources {
                    let why = format!(
                        "more than {} resources, the limit (max_resources)",
                        limits.max_resources
                    );
                    resources.insert(&url, Err(Failure::TooLarge(why)));
                    continue;
                }
                in_flight.push(async move {
                    let result = self.fetch_asset(fetcher, budget, &url).await;
                    (url, kind, depth, result)
                });
            }
            let Some((url, kind, depth, result)) = in_flight.next().await else {
                break;
            };
            if kind == ResourceKind::Stylesheet
                && let Ok(sheet) = &result
            {
                for child in stylesheet_children(sheet, depth, encoding, &self.options.inline) {
                    if !resources.contains(&child.0) && queued.insert(child.0.clone()) {
                        queue.push_back(child);
                    }
                }
            }
            resources.insert(&url, result);
        }
    }

    async fn fetch_asset(
        &self,
        fetcher: &Fetcher,
        budget: &AtomicU64,
        url: &Url,
    ) -> Result<Fetched, Failure> {
        let limits = &self.options.limits;
        let over_budget = || {
            Failure::TooLarge(format!(
                "the snapshot would exceed its limit of {} bytes (max_total_bytes)",
                limits.max_total_bytes
            ))
        };
        let used = budget.load(Ordering::Relaxed);
        let remaining = limits.max_total_bytes.saturating_sub(used);
        if remaining == 0 {
            return Err(over_budget());
        }
        let fetched = fetcher
            .fetch(url, limits.max_asset_bytes.min(remaining), false)
            .await?;
        if fetched.status >= 400 {
            return Err(Failure::HttpStatus(fetched.status));
        }
        let len = fetched.bytes.len() as u64;
        if budget.fetch_add(len, Ordering::Relaxed) + len > limits.max_total_bytes {
            budget.fetch_sub(len, Ordering::Relaxed);
            return Err(over_budget());
        }
        Ok(fetched)
    }

    fn page_error(&self, url: &Url, failure: Failure) -> CaptureError {
        let url = url.clone();
        match failure {
            Failure::Refused(reason) => CaptureError::Refused { url, reason },
            Failure::TooLarge(reason) => CaptureError::TooLarge { reason },
            Failure::TimedOut => CaptureError::TimedOut {
                url,
                request_timeout: self.options.limits.request_timeout,
                timeout: self.options.limits.timeout,
            },
            Failure::Redirect(reason) => CaptureError::Redirect { url, reason },
            Failure::UnsupportedScheme(scheme) => CaptureError::UnsupportedScheme {
                scheme,
                url: url.to_string(),
            },
            other => CaptureError::Network {
                url,
                reason: other.to_string(),
            },
        }
    }
}

/// One capture in progress (see [`Capturer::session`]).
pub struct CaptureSession<'c> {
    capturer: &'c Capturer,
    fetcher: Fetcher,
    started: Instant,
    /// Bytes fetched so far, against [`Limits::max_total_bytes`].
    budget: AtomicU64,
}

impl CaptureSession<'_> {
    /// When the capture must be done.
    pub fn deadline(&self) -> Instant {
        self.started + self.capturer.options.limits.timeout
    }

    /// The options in force.
    pub fn options(&self) -> &CaptureOptions {
        &self.capturer.options
    }

    /// The [`CaptureError`] of a page that could not be had for `failure`.
    pub fn page_error(&self, url: &Url, failure: Failure) -> CaptureError {
        self.capturer.page_error(url, failure)
    }

    /// Fetches the page (following redirects, each hop checked).
    ///
    /// # Errors
    /// The page's [`CaptureError`]; [`CaptureError::EmptyBody`].
    pub async fn fetch_page(&self, url: &Url) -> Result<Fetched, CaptureError> {
        let limits = &self.capturer.options.limits;
        let page = self
            .fetcher
            .fetch(url, limits.max_page_bytes.min(limits.max_total_bytes), true)
            .await
            .map_err(|f| self.capturer.page_error(url, f))?;
        if page.bytes.is_empty() {
            return Err(CaptureError::EmptyBody {
                url: page.final_url,
                status: page.status,
            });
        }
        self.budget
            .fetch_add(page.bytes.len() as u64, Ordering::Relaxed);
        Ok(page)
    }

    /// One request of a browser, one hop, under the same policy, client, cookie jar,
    /// deadline and byte limits as every fetch of this capture (`is_page`: the page's
    /// own document, under [`Limits::max_page_bytes`]).
    ///
    /// # Errors
    /// Why it was not answered: refused, too large, timed out, the network.
    pub async fn exchange(&self, request: &Exchange, is_page: bool) -> Result<Hop, Failure> {
        let limits = &self.capturer.options.limits;
        let remaining = limits
            .max_total_bytes
            .saturating_sub(self.budget.load(Ordering::Relaxed));
        let over_budget = || {
            Failure::TooLarge(format!(
                "the snapshot would exceed its limit of {} bytes (max_total_bytes)",
                limits.max_total_bytes
            ))
        };
        if remaining == 0 {
            return Err(over_budget());
        }
        let max = if is_page {
            limits.max_page_bytes
        } else {
            limits.max_asset_bytes
        };
        let hop = self.fetcher.exchange(request, max.min(remaining)).await?;
        if let Hop::Done(f) = &hop {
            let len = f.bytes.len() as u64;
            if self.budget.fetch_add(len, Ordering::Relaxed) + len > limits.max_total_bytes {
                return Err(over_budget());
            }
        }
        Ok(hop)
    }

    /// Makes the snapshot of `page`: of its own bytes, or of `rendered` (the document a
    /// browser rendered, as HTML). `seen` are the responses the browser received (and
    /// the requests refused): the walk takes its resources from them first, so nothing
    /// the browser saw is fetched twice, and fetches only what they lack.
    ///
    /// # Errors
    /// None yet beyond the page's own (kept for the browser engine's failures).
    pub async fn finish(
        self,
        url: Url,
        page: Fetched,
        rendered: Option<String>,
        seen: Vec<ResourceRecord>,
    ) -> Result<Capture, CaptureError> {
        let capturer = self.capturer;
        let started = self.started;
        let engine = if rendered.is_some() {
            Engine::Browser
        } else {
            Engine::Static
        };
        if !matches!(
            page.media_type.as_str(),
            "text/html" | "application/xhtml+xml"
        ) {
            return Ok(Capture {
                requested_url: url,
                page,
                snapshot: Snapshot::Original,
                parts: None,
                encoding: None,
                resources: Vec::new(),
                readable: None,
                elapsed: started.elapsed(),
                engine,
                renderings: Renderings::default(),
            });
        }

        let mut decoded = charset::decode_html(
            &page.bytes,
            page.content_type.as_deref(),
            page.final_url.host_str(),
        );
        if let Some(html) = rendered {
            decoded.text = html;
        }
        let extraction = capturer.options.extract_text.then(|| {
            let (text, final_url) = (decoded.text.clone(), page.final_url.clone());
            tokio::task::spawn_blocking(move || extract::extract_isolated(text, final_url))
        });

        let mut resources = ResourceMap::default();
        let mut order: Vec<(Url, ResourceKind)> = Vec::new();
        let mut kinds: HashMap<Url, ResourceKind> = HashMap::new();
        let page_key = ResourceMap::key(&page.final_url);
        for record in seen {
            let key = ResourceMap::key(&record.url);
            if key == page_key || resources.contains(&key) {
                continue;
            }
            kinds.insert(key.clone(), record.kind);
            resources.insert(&key, record.result);
        }
        let (parts, referenced) = loop {
            // Walk with what we have; whatever is referenced but not yet attempted is the
            // next round. When nothing is new, this walk's output is the snapshot.
            let inliner = Inliner::new(&resources, &capturer.options.inline);
            let root = inliner.inline_document(&decoded.text, &page.final_url, decoded.encoding);
            let all = inliner.references_with_depth();
            let wanted: Vec<(Url, ResourceKind, usize)> = all
                .iter()
                .filter(|(u, _, _)| !resources.contains(u))
                .cloned()
                .collect();
            let skipped = inliner.skipped();
            if wanted.is_empty() {
                break (inliner.into_parts(root), all);
            }
            drop(inliner);
            for (url, kind) in skipped {
                if !resources.contains(&url) {
                    resources.insert(&url, Err(Failure::TooDeep));
                    order.push((url, kind));
                }
            }
            capturer
                .fetch_round(
                    &self.fetcher,
                    &self.budget,
                    wanted,
                    decoded.encoding,
                    &mut resources,
                    &mut order,
                )
                .await;
        };
        // What the browser received and the snapshot uses, then what it asked for and
        // was refused or failed (kept on record, like a refused asset).
        if !kinds.is_empty() {
            let mut listed: HashSet<Url> = order.iter().map(|(u, _)| u.clone()).collect();
            for (url, kind, _) in referenced {
                if kinds.contains_key(&url) && listed.insert(url.clone()) {
                    order.push((url, kind));
                }
            }
            let mut rest: Vec<(Url, ResourceKind)> = kinds
                .into_iter()
                .filter(|(u, _)| {
                    !listed.contains(u) && resources.result(u).is_some_and(Result::is_err)
                })
                .collect();
            rest.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            order.extend(rest);
        }

        let records = order
            .into_iter()
            .map(|(url, kind)| {
                let result = resources
                    .result(&url)
                    .cloned()
                    .unwrap_or(Err(Failure::TooDeep));
                ResourceRecord { url, kind, result }
            })
            .collect();
        let readable = match extraction {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        Ok(Capture {
            requested_url: url,
            encoding: Some((decoded.encoding.name(), decoded.source)),
            page,
            snapshot: Snapshot::Html(parts.expand()),
            parts: Some(parts),
            resources: records,
            readable,
            elapsed: started.elapsed(),
            engine,
            renderings: Renderings::default(),
        })
    }
}

/// What a fetched stylesheet references, as the walk would find it: imports one level
/// deeper (none past the import-depth limit) and every `url()` asset.
fn stylesheet_children(
    sheet: &Fetched,
    depth: usize,
    encoding: &'static encoding_rs::Encoding,
    inline: &InlineOptions,
) -> Vec<(Url, ResourceKind, usize)> {
    let text = charset::decode_css(&sheet.bytes, sheet.content_type.as_deref(), encoding).text;
    crate::css::references(&text)
        .into_iter()
        .filter_map(|r| {
            let url = sheet.final_url.join(r.url.trim()).ok()?;
            if !matches!(url.scheme(), "http" | "https") {
                return None;
            }
            let url = ResourceMap::key(&url);
            match r.kind {
                crate::css::CssRefKind::Import if depth < inline.max_import_depth => {
                    Some((url, ResourceKind::Stylesheet, depth + 1))
                }
                crate::css::CssRefKind::Import => None,
                crate::css::CssRefKind::Asset => Some((url, ResourceKind::CssAsset, 0)),
            }
        })
        .collect()
}

/// Counts resources by outcome code, for summaries.
pub fn outcome_counts(records: &[ResourceRecord]) -> HashMap<&'static str, usize> {
    let mut counts = HashMap::new();
    for r in records {
        let code = match &r.result {
            Ok(_) => "inlined",
            Err(f) => f.code(),
        };
        *counts.entry(code).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_with_clear_errors() {
        assert_eq!(
            parse_url("example.com/a").unwrap().as_str(),
            "https://example.com/a"
        );
        assert_eq!(
            parse_url(" http://A.test/ ").unwrap().as_str(),
            "http://a.test/"
        );
        for (bare, full) in [
            ("a.test:8080/x?q=1#f", "https://a.test:8080/x?q=1#f"),
            ("例子.测试/页", "https://xn--fsqu00a.xn--0zwm56d/%E9%A1%B5"),
            (
                "a.test?to=https://b.test/",
                "https://a.test/?to=https://b.test/",
            ),
        ] {
            assert_eq!(parse_url(bare).unwrap().as_str(), full, "{bare}");
        }
        for (input, msg) in [
            ("file:///etc/passwd", "unsupported scheme `file:`"),
            ("ftp://a.test/x", "unsupported scheme `ftp:`"),
            ("javascript:alert(1)", "unsupported scheme `javascript:`"),
            ("http://", "invalid URL `http://`"),
            ("not a url", "invalid URL `not a url`"),
            ("", "invalid URL ``"),
            // Never "repaired" into another URL (https://ht!tp//nope).
            ("ht!tp://nope", "invalid URL `ht!tp://nope`: not a URL"),
            ("nope", "invalid URL `nope`: not a URL"),
        ] {
            let err = parse_url(input).unwrap_err().to_string();
            assert!(err.starts_with(msg), "{input}: {err}");
        }
    }
}
