//! Answering the browser's requests: each one paused at the request stage is fetched by
//! the capture's own fetcher (one hop) and fulfilled with what came back, or failed with
//! why; every answer is kept for the snapshot (the single source of its bytes).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::fetch::{
    EventRequestPaused, FailRequestParams, FulfillRequestParams, HeaderEntry,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use linksnap_capture::{
    CaptureSession, Exchange, Failure, Fetched, Hop, Redirected, ResourceKind, ResourceRecord,
};
use tokio::time::Instant;
use url::Url;

/// What the interception has seen, shared by the tasks answering requests and the
/// capture waiting for the page to settle.
pub(crate) struct Seen {
    /// Requests being answered now.
    in_flight: AtomicUsize,
    /// Requests begun, ever.
    begun: AtomicUsize,
    /// When a request last began or ended.
    last_change: Mutex<Instant>,
    /// Every answer, in the order they came: the URL, what it was for, the response or
    /// why there is none. A URL asked for twice keeps its first answer (the set: the URLs
    /// answered, so a page of many resources is not scanned for each).
    answers: Mutex<(Vec<ResourceRecord>, HashSet<Url>)>,
    /// The main frame's documents by URL (the page, and where it navigated).
    documents: Mutex<HashMap<Url, Result<Fetched, Failure>>>,
    /// The main frame's redirects: where each hop was sent.
    redirects: Mutex<HashMap<Url, Url>>,
    /// Redirects answered and not yet followed, by where they point: the chain that led
    /// there (any frame's, any resource's), for the response at its end to keep.
    chains: Mutex<HashMap<Url, Vec<Redirected>>>,
}

impl Seen {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            begun: AtomicUsize::new(0),
            last_change: Mutex::new(Instant::now()),
            answers: Mutex::default(),
            documents: Mutex::default(),
            redirects: Mutex::default(),
            chains: Mutex::default(),
        }
    }

    /// How long no request has been in flight (zero while one is).
    pub(crate) fn quiet_for(&self) -> std::time::Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return std::time::Duration::ZERO;
        }
        lock(&self.last_change).elapsed()
    }

    /// How many requests have begun so far (a change means the page asked for more).
    pub(crate) fn activity(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }

    fn touch(&self) {
        *lock(&self.last_change) = Instant::now();
    }

    /// A request [`reply`] began is answered: no longer in flight.
    pub(crate) fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.touch();
    }

    /// Where the main frame's navigation to `url` ended up through the redirects it was
    /// answered (`url` itself when none), and that document as it was answered, if it was.
    pub(crate) fn landed(&self, url: &Url) -> (Url, Option<Result<Fetched, Failure>>) {
        let redirects = lock(&self.redirects);
        let mut at = url.clone();
        // A loop is the fetcher's to refuse; this only follows what was answered.
        for _ in 0..64 {
            match redirects.get(&at) {
                Some(next) if next != &at => at = next.clone(),
                _ => break,
            }
        }
        drop(redirects);
        let document = self.document(&at);
        (at, document)
    }

    /// The main frame's document at `url`, as it was answered.
    pub(crate) fn document(&self, url: &Url) -> Option<Result<Fetched, Failure>> {
        lock(&self.documents).get(url).cloned()
    }

    /// Everything answered, in order.
    pub(crate) fn take_answers(&self) -> Vec<ResourceRecord> {
        std::mem::take(&mut *lock(&self.answers)).0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a request of this type is for, in the snapshot's resource list.
fn kind_of(resource: &ResourceType, main_frame: bool) -> ResourceKind {
    match resource {
        ResourceType::Document if main_frame => ResourceKind::Page,
        ResourceType::Document => ResourceKind::Frame,
        ResourceType::Stylesheet => ResourceKind::Stylesheet,
        ResourceType::Image => ResourceKind::Image,
        ResourceType::Media | ResourceType::TextTrack => ResourceKind::Media,
        ResourceType::Font => ResourceKind::CssAsset,
        ResourceType::Script => ResourceKind::Script,
        _ => ResourceKind::Data,
    }
}

/// How Chromium is told a request failed.
fn error_reason(failure: &Failure) -> ErrorReason {
    match failure {
        Failure::Refused(_) => ErrorReason::BlockedByClient,
        Failure::TimedOut => ErrorReason::TimedOut,
        Failure::Connect(_) | Failure::HostFailed(_) => ErrorReason::ConnectionRefused,
        Failure::TooLarge(_) => ErrorReason::Aborted,
        _ => ErrorReason::Failed,
    }
}

/// Response headers the browser gets: the body it receives is decoded and whole, so the
/// ones describing the encoding and framing of the original go.
///
/// An HTML document is labelled with the encoding the static engine reads it in
/// (`charset::sniff_html`: a byte-order mark, then bytes that are valid UTF-8, then the
/// header, the `<meta>`, a guess), so that a page whose label is wrong (a `<meta>` that
/// says GB2312 over UTF-8 bytes) is rendered as the static engine decodes it, not as
/// mojibake.
fn headers_for_browser(fetched: &Fetched, is_document: bool) -> Vec<HeaderEntry> {
    let charset = (is_document && fetched.media_type == "text/html").then(|| {
        let host = fetched.final_url.host_str();
        let (encoding, _) = linksnap_capture::charset::sniff_html(
            &fetched.bytes,
            fetched.content_type.as_deref(),
            host,
        );
        encoding.name()
    });
    let mut headers: Vec<HeaderEntry> = fetched
        .headers
        .iter()
        .filter(|(name, _)| {
            let framing = matches!(
                name.as_str(),
                "content-encoding"
                    | "content-length"
                    | "transfer-encoding"
                    | "connection"
                    | "keep-alive"
            );
            let relabelled = charset.is_some() && name == "content-type";
            !framing && !relabelled
        })
        .map(|(name, value)| HeaderEntry::new(name.clone(), value.clone()))
        .collect();
    if let Some(charset) = charset {
        headers.push(HeaderEntry::new(
            "content-type",
            format!("text/html; charset={charset}"),
        ));
    }
    headers
}

/// The request a paused event describes.
fn exchange_of(event: &EventRequestPaused) -> Result<Exchange, Failure> {
    let raw = event.request.url.as_str();
    let url = Url::parse(raw).map_err(|e| Failure::Network(format!("bad URL {raw}: {e}")))?;
    let headers = event
        .request
        .headers
        .inner()
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let body = event.request.post_data_entries.as_ref().map(|entries| {
        let mut body = Vec::new();
        for e in entries {
            if let Some(b) = &e.bytes
                && let Ok(bytes) = BASE64.decode(AsRef::<str>::as_ref(b))
            {
                body.extend_from_slice(&bytes);
            }
        }
        bytes::Bytes::from(body)
    });
    Ok(Exchange {
        method: event.request.method.clone(),
        url,
        headers,
        body,
    })
}

/// How one paused request is to be answered: fulfilled, or failed.
pub(crate) enum Reply {
    Fulfil(FulfillRequestParams),
    Fail(FailRequestParams),
}

impl Reply {
    /// Sends the answer over the page's own session.
    pub(crate) async fn send_to_page(self, page: &Page) {
        let sent = match self {
            Self::Fulfil(p) => page.execute(p).await.map(|_| ()),
            Self::Fail(p) => page.execute(p).await.map(|_| ()),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "answering the browser");
        }
    }

    /// The answer as a DevTools command: its method and parameters.
    pub(crate) fn command(&self) -> (chromiumoxide::types::MethodId, serde_json::Value) {
        use chromiumoxide::types::Method as _;
        match self {
            Self::Fulfil(p) => (p.identifier(), serde_json::to_value(p).unwrap_or_default()),
            Self::Fail(p) => (p.identifier(), serde_json::to_value(p).unwrap_or_default()),
        }
    }
}

/// Answers one paused request of the page (its frames, its dedicated workers).
pub(crate) async fn answer(
    session: &CaptureSession<'_>,
    page: &Page,
    seen: &Seen,
    main_frame: Option<&str>,
    event: &EventRequestPaused,
) {
    let reply = reply(session, seen, main_frame, event).await;
    reply.send_to_page(page).await;
    seen.answered();
}

/// Fetches what one paused request asks for and says how to answer it; keeps the answer.
/// The request counts as in flight from here until [`Seen::answered`].
pub(crate) async fn reply(
    session: &CaptureSession<'_>,
    seen: &Seen,
    main_frame: Option<&str>,
    event: &EventRequestPaused,
) -> Reply {
    seen.in_flight.fetch_add(1, Ordering::SeqCst);
    seen.begun.fetch_add(1, Ordering::SeqCst);
    seen.touch();
    let is_main = main_frame == Some(event.frame_id.as_ref())
        && matches!(event.resource_type, ResourceType::Document);
    let kind = kind_of(&event.resource_type, is_main);
    let exchange = exchange_of(event);
    let result = match &exchange {
        Ok(x) => session.exchange(x, is_main).await,
        Err(f) => Err(f.clone()),
    };
    let reply = match &result {
        Ok(Hop::Redirect { location, response }) => {
            let mut fulfil = FulfillRequestParams::new(event.request_id.clone(), response.status);
            fulfil.response_headers = Some(vec![HeaderEntry::new("location", location.as_str())]);
            Reply::Fulfil(fulfil)
        }
        Ok(Hop::Done(fetched)) => {
            let mut fulfil = FulfillRequestParams::new(event.request_id.clone(), fetched.status);
            fulfil.response_headers = Some(headers_for_browser(
                fetched,
                matches!(event.resource_type, ResourceType::Document),
            ));
            fulfil.body = Some(BASE64.encode(&fetched.bytes).into());
            Reply::Fulfil(fulfil)
        }
        // A main-frame document that cannot be had is aborted: the page stays as it
        // was (a refused navigation by script does not replace it with an error page).
        Err(failure) => Reply::Fail(FailRequestParams::new(
            event.request_id.clone(),
            if is_main {
                ErrorReason::Aborted
            } else {
                error_reason(failure)
            },
        )),
    };
    if let Ok(x) = &exchange {
        let key = linksnap_capture::resource::ResourceMap::key(&x.url);
        let kept = match result {
            Ok(Hop::Done(mut f)) => {
                f.redirects = lock(&seen.chains).remove(&key).unwrap_or_default();
                Some(Ok(*f))
            }
            Ok(Hop::Redirect { location, response }) => {
                let to = linksnap_capture::resource::ResourceMap::key(&location);
                if is_main {
                    lock(&seen.redirects).insert(key.clone(), to.clone());
                }
                let mut chains = lock(&seen.chains);
                let mut chain = chains.remove(&key).unwrap_or_default();
                chain.push(*response);
                chains.insert(to, chain);
                None
            }
            Err(f) => Some(Err(f)),
        };
        if let Some(kept) = kept {
            if is_main {
                lock(&seen.documents).insert(key.clone(), kept.clone());
            }
            let mut answers = lock(&seen.answers);
            let (records, answered) = &mut *answers;
            if answered.insert(key.clone()) {
                records.push(ResourceRecord {
                    url: key,
                    kind,
                    result: kept,
                });
            }
        }
    }
    reply
}
