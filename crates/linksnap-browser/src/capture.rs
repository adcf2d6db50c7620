//! One browser capture: a fresh browser context and page, every request answered by
//! the capture's own fetcher, the page settled (load, then network quiet, then lazy
//! content revealed by scrolling, then quiet again, all inside the capture's deadline),
//! its DOM serialised without scripts and handed to the static engine's walk, which
//! inlines what the browser received.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::{
    SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::fetch::EventRequestPaused;
use chromiumoxide::cdp::browser_protocol::page::{
    EventJavascriptDialogOpening, HandleJavaScriptDialogParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams, EventTargetCrashed,
};
use chromiumoxide::cdp::js_protocol::runtime::ExecutionContextId;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use linksnap_capture::{Capture, CaptureError, CaptureSession, Capturer, Failure, parse_url};
use tokio::time::Instant;
use url::Url;

use crate::chromium::{Chromium, LaunchError};
use crate::intercept::{Seen, answer};

/// Installed in every frame before the page's scripts.
const INIT_JS: &str = include_str!("init.js");
/// The page-side serialiser.
const SERIALIZE_JS: &str = include_str!("serialize.js");

/// How long no request may be in flight before the page counts as settled.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(500);
/// Most window heights scrolled to reveal lazy content.
pub const DEFAULT_MAX_SCROLLS: u32 = 20;
/// How long closing a page or its context may take (a hung renderer does not answer).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a browser capture failed.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// The page itself could not be had, as with the static engine.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Chromium did not start.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// Chromium failed during the capture (it crashed, or stopped answering).
    #[error("the browser failed during the capture: {0}")]
    Browser(String),
}

/// How a browser capture waits.
#[derive(Debug, Clone)]
pub struct BrowserSettings {
    /// See [`DEFAULT_QUIET`].
    pub quiet: Duration,
    /// See [`DEFAULT_MAX_SCROLLS`].
    pub max_scrolls: u32,
    /// See [`DEFAULT_HEAP_LIMIT_MIB`].
    pub heap_limit_mib: u32,
}

/// The most memory a page's scripts may hold (V8's old generation, MiB): a page that
/// wants more crashes its renderer, and its capture fails as over a limit.
pub const DEFAULT_HEAP_LIMIT_MIB: u32 = 1024;

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            quiet: DEFAULT_QUIET,
            max_scrolls: DEFAULT_MAX_SCROLLS,
            heap_limit_mib: DEFAULT_HEAP_LIMIT_MIB,
        }
    }
}

/// Makes captures through one running Chromium.
#[derive(Debug)]
pub struct BrowserCapturer {
    chromium: Chromium,
    capturer: Capturer,
    settings: BrowserSettings,
}

/// Tallest screenshot, in CSS pixels: a page taller than this is captured from its top
/// down to here (Chromium's own limit for one capture is 16,384).
pub const MAX_SCREENSHOT_HEIGHT: u32 = 16_384;

/// A4 in inches, the PDF's paper.
const A4_INCHES: (f64, f64) = (8.27, 11.69);

/// Width and height of a thumbnail: the top 1280×720 of the page at half size.
pub const THUMBNAIL_SIZE: (u32, u32) = (640, 360);

/// What a browser capture makes besides the snapshot, when asked (into
/// [`Capture::renderings`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// A full-page PNG at the window's width ([`crate::chromium::WINDOW_WIDTH`]), at most
    /// [`MAX_SCREENSHOT_HEIGHT`] tall.
    pub screenshot: bool,
    /// A JPEG of the page's top, [`THUMBNAIL_SIZE`].
    pub thumbnail: bool,
    /// The page printed to PDF (A4, backgrounds printed).
    pub pdf: bool,
}

/// What a browser capture made.
#[derive(Debug)]
pub struct BrowserCapture {
    /// The snapshot, as the static engine's, with the renderings asked for.
    pub capture: Capture,
    /// Whether the page still had requests in flight at the deadline (saved as it was).
    pub unsettled: bool,
    /// Whether the screenshot was cut at [`MAX_SCREENSHOT_HEIGHT`].
    pub screenshot_cut: bool,
}

/// The images and prints of a settled page.
#[derive(Debug, Default)]
struct Taken {
    renderings: linksnap_capture::Renderings,
    screenshot_cut: bool,
}

impl BrowserCapturer {
    /// Starts the Chromium at `chromium` for captures made with `capturer`'s options.
    ///
    /// # Errors
    /// [`BrowserError::Launch`].
    pub async fn launch(
        chromium: &Path,
        capturer: Capturer,
        settings: BrowserSettings,
    ) -> Result<Self, BrowserError> {
        let chromium = Chromium::launch(chromium, settings.heap_limit_mib).await?;
        Ok(Self {
            chromium,
            capturer,
            settings,
        })
    }

    /// Connections that got past the interception (each refused by the proxy).
    #[must_use]
    pub fn escaped(&self) -> usize {
        self.chromium.escaped()
    }

    /// Closes the browser.
    pub async fn close(self) {
        self.chromium.close().await;
    }

    /// Captures `input` as the browser renders it.
    ///
    /// # Errors
    /// [`BrowserError`]: the page's own failure (refused, timed out…) as
    /// [`BrowserError::Capture`], or the browser's.
    pub async fn capture(
        &self,
        input: &str,
        extras: Extras,
    ) -> Result<BrowserCapture, BrowserError> {
        let url = parse_url(input)?;
        let session = self.capturer.session()?;
        let browser = &self.chromium.browser;
        let fail = |e: chromiumoxide::error::CdpError| BrowserError::Browser(e.to_string());
        let t0 = Instant::now();
        let context = browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(fail)?;
        let result = async {
            let target = CreateTargetParams::builder()
                .url("about:blank")
                .browser_context_id(context.clone())
                .build()
                .map_err(BrowserError::Browser)?;
            let page = browser.new_page(target).await.map_err(fail)?;
            tracing::debug!(elapsed = ?t0.elapsed(), "page opened");
            // Nothing the page does (a script that never yields, dialogs without end, a
            // renderer that hangs) keeps the capture past its deadline.
            let outcome = tokio::time::timeout_at(
                session.deadline(),
                self.capture_in(&session, &page, &url, extras),
            )
            .await
            .unwrap_or_else(|_| Err(session.page_error(&url, Failure::TimedOut).into()));
            tracing::debug!(elapsed = ?t0.elapsed(), "page done");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, page.close()).await;
            tracing::debug!(elapsed = ?t0.elapsed(), "page closed");
            outcome
        }
        .await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, browser.dispose_browser_context(context)).await;
        tracing::debug!(elapsed = ?t0.elapsed(), "context disposed");
        let (page_url, rendered, seen, unsettled, taken) = result?;
        let page = match seen.document(&page_url) {
            Some(Ok(page)) => page,
            Some(Err(failure)) => return Err(session.page_error(&page_url, failure).into()),
            None => {
                return Err(BrowserError::Browser(format!(
                    "the browser shows {page_url}, which it never received"
                )));
            }
        };
        let mut capture = session
            .finish(url, page, rendered, seen.take_answers())
            .await?;
        capture.renderings = taken.renderings;
        Ok(BrowserCapture {
            capture,
            unsettled,
            screenshot_cut: taken.screenshot_cut,
        })
    }

    /// Navigates `page` to `url` with every request answered by `session`, waits for it
    /// to settle and serialises it. Returns the URL it shows, the document (none when it is no page the browser renders), what the
    /// interception saw, and whether it never settled.
    async fn capture_in(
        &self,
        session: &CaptureSession<'_>,
        page: &Page,
        url: &Url,
        extras: Extras,
    ) -> Result<(Url, Option<String>, Arc<Seen>, bool, Taken), BrowserError> {
        let fail = |e: chromiumoxide::error::CdpError| BrowserError::Browser(e.to_string());
        let entered = Instant::now();
        let seen = Arc::new(Seen::new());
        let mut paused = page
            .event_listener::<EventRequestPaused>()
            .await
            .map_err(fail)?;
        let mut dialogs = page
            .event_listener::<EventJavascriptDialogOpening>()
            .await
            .map_err(fail)?;
        let mut crashes = self
            .chromium
            .browser
            .event_listener::<EventTargetCrashed>()
            .await
            .map_err(fail)?;
        let target = page.target_id().clone();
        // Asked at once: each is a round trip to the browser.
        let (init, agent, _, main_frame) = tokio::join!(
            page.evaluate_on_new_document(INIT_JS),
            page.set_user_agent(session.options().user_agent.as_str()),
            page.execute(SetDownloadBehaviorParams::new(
                SetDownloadBehaviorBehavior::Deny,
            )),
            page.mainframe(),
        );
        init.map_err(fail)?;
        agent.map_err(fail)?;
        let main_frame = main_frame.map_err(fail)?;
        tracing::debug!(elapsed = ?entered.elapsed(), "page set up");
        let main_frame = main_frame.as_ref().map(|f| f.as_ref().to_owned());

        let deadline = session.deadline();
        // What the page does runs beside the interception, in this task: both borrow the
        // session, and the interception ends when the work does.
        let started = Instant::now();
        let work = async {
            // Navigated by the page itself (not Page.navigate, whose completion the
            // driver tracks and would wait on for ever if the page navigates again by
            // script and that navigation is refused): then polled until loaded.
            let target = serde_json::to_string(url.as_str())
                .map_err(|e| BrowserError::Browser(e.to_string()))?;
            // The navigation may replace the page's context before this call answers:
            // whether it started is seen below.
            let _ = evaluate::<serde_json::Value>(page, &format!("location.href = {target}")).await;
            let key = linksnap_capture::resource::ResourceMap::key(url);
            loop {
                // The page, or where its redirects led, could not be had (refused, failed):
                // the browser shows nothing of it, and the capture fails as the static
                // engine's would, naming the address.
                match seen.landed(&key) {
                    (at, Some(Err(failure))) => {
                        return Err(session.page_error(&at, failure).into());
                    }
                    // Not a page the browser renders (a PDF, an image, a file it would
                    // download): kept as it was answered, as the static engine keeps it.
                    (at, Some(Ok(document))) if !is_page(&document.media_type) => {
                        return Ok((at, None, false, Taken::default()));
                    }
                    _ => {}
                }
                // Between two documents there is no context to ask: not loaded yet.
                if let Ok((href, state)) =
                    evaluate::<(String, String)>(page, "[location.href, document.readyState]").await
                    && href != "about:blank"
                    && state == "complete"
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(session.page_error(url, Failure::TimedOut).into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::debug!(elapsed = ?started.elapsed(), "loaded");
            // Serialising and inlining need time of their own.
            let settle_by = deadline
                - (deadline.saturating_duration_since(Instant::now()) / 5)
                    .min(Duration::from_secs(10));
            let mut settled = self.wait_quiet(&seen, settle_by).await;
            tracing::debug!(elapsed = ?started.elapsed(), settled, "quiet after load");
            if settled {
                self.reveal_lazy(page, &seen, settle_by).await;
                tracing::debug!(elapsed = ?started.elapsed(), "scrolled");
                settled = self.wait_quiet(&seen, settle_by).await;
                tracing::debug!(elapsed = ?started.elapsed(), settled, "quiet after scrolling");
            }
            // A page that navigates itself now (a redirect by script) has no context for
            // a moment: asked again until it has one.
            let shown: String = evaluate_until(page, "location.href", deadline).await?;
            let shown = Url::parse(&shown).map_err(|e| BrowserError::Browser(e.to_string()))?;
            let nonce = nonce();
            let top = format!("({SERIALIZE_JS})(\"{nonce}\", false)");
            let html: String = evaluate_until(page, &top, deadline).await?;
            let html = with_frames(page, html, None, &nonce, 1).await;
            tracing::debug!(elapsed = ?started.elapsed(), bytes = html.len(), "serialised");
            let taken = take(page, extras).await?;
            Ok((
                linksnap_capture::resource::ResourceMap::key(&shown),
                Some(html),
                !settled,
                taken,
            ))
        };
        let intercept = async {
            let mut answering = FuturesUnordered::new();
            loop {
                tokio::select! {
                    Some(event) = paused.next() => {
                        let (seen, main_frame) = (&seen, main_frame.as_deref());
                        answering.push(async move { answer(session, page, seen, main_frame, &event).await });
                    }
                    Some(dialog) = dialogs.next() => {
                        tracing::debug!(message = %dialog.message, "a dialog dismissed");
                        let _ = page.execute(HandleJavaScriptDialogParams::new(false)).await;
                    }
                    Some(()) = answering.next(), if !answering.is_empty() => {}
                    else => break,
                }
            }
        };
        // The page's renderer dying (a script that wanted more memory than the limit, or
        // a crash) ends the capture at once.
        let crashed = async {
            while let Some(crash) = crashes.next().await {
                if crash.target_id == target {
                    return Some((crash.status.clone(), crash.error_code));
                }
            }
            None
        };
        tokio::pin!(work);
        tokio::pin!(intercept);
        tokio::pin!(crashed);
        let finished = tokio::select! {
            r = &mut work => r,
            () = &mut intercept => Err(BrowserError::Browser("the browser went away".to_owned())),
            Some((status, code)) = &mut crashed => Err(self.crash_error(url, &status, code)),
        };
        let (shown, html, unsettled, taken) = finished?;
        Ok((shown, html, seen.clone(), unsettled, taken))
    }

    /// Why a capture whose renderer ended (`status`, `code`: what Chromium said) failed.
    fn crash_error(&self, url: &Url, status: &str, code: i64) -> BrowserError {
        CaptureError::Crashed {
            url: url.clone(),
            reason: format!(
                "{status}, code {code}; a page whose scripts want more memory than the limit of {} MiB (--browser-heap-limit) ends so",
                self.settings.heap_limit_mib
            ),
        }
        .into()
    }

    /// Waits until no request has been in flight for the quiet window, or `by`.
    /// Returns whether the page went quiet.
    async fn wait_quiet(&self, seen: &Seen, by: Instant) -> bool {
        loop {
            if seen.quiet_for() >= self.settings.quiet {
                return true;
            }
            if Instant::now() >= by {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Scrolls down a window at a time, at most `max_scrolls` windows in all: each pass
    /// runs in the page (a window, then two animation frames for what comes into view to
    /// ask for its content) down to the page's end as it is; when that brought requests,
    /// they are let finish and, the page having grown, the next pass goes on from there.
    /// Then back to the top.
    async fn reveal_lazy(&self, page: &Page, seen: &Seen, by: Instant) {
        let mut left = self.settings.max_scrolls;
        while left > 0 && Instant::now() < by {
            let before = seen.activity();
            let pass = format!(
                "(async (max) => {{ \
                   const frames = () => new Promise((r) => {{ \
                     setTimeout(r, 100); requestAnimationFrame(() => requestAnimationFrame(r)); }}); \
                   let steps = 0; \
                   while (steps < max) {{ \
                     const was = scrollY; scrollBy(0, innerHeight); steps++; await frames(); \
                     if (scrollY === was || scrollY + innerHeight >= document.documentElement.scrollHeight) break; \
                   }} \
                   return steps; }})({left})"
            );
            let Ok(steps) = evaluate_async::<u32>(page, &pass).await else {
                break;
            };
            left = left.saturating_sub(steps.max(1));
            if seen.activity() == before {
                break;
            }
            // What came into view is loading: let it finish, then see whether the page
            // grew below.
            self.wait_quiet(seen, by.min(Instant::now() + self.settings.quiet * 4))
                .await;
        }
        let _ = evaluate::<serde_json::Value>(page, "scrollTo(0, 0)").await;
    }
}

/// The screenshot and the PDF of the settled page, as asked.
async fn take(page: &Page, extras: Extras) -> Result<Taken, BrowserError> {
    use base64::Engine as _;
    use chromiumoxide::cdp::browser_protocol::page::{
        CaptureScreenshotFormat, CaptureScreenshotParams, PrintToPdfParams, Viewport,
    };
    let fail = |e: chromiumoxide::error::CdpError| BrowserError::Browser(e.to_string());
    let decode = |data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| BrowserError::Browser(e.to_string()))
    };
    // The page from its top, `width` × `height` CSS pixels, drawn at `scale`.
    let shot = |format, quality, width, height, scale| CaptureScreenshotParams {
        format: Some(format),
        quality,
        clip: Some(Viewport {
            x: 0.0,
            y: 0.0,
            width,
            height,
            scale,
        }),
        from_surface: Some(true),
        capture_beyond_viewport: Some(true),
        optimize_for_speed: None,
    };
    let mut taken = Taken::default();
    if extras.screenshot {
        let height: f64 = evaluate(
            page,
            "Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0, innerHeight)",
        )
        .await?;
        let max = f64::from(MAX_SCREENSHOT_HEIGHT);
        taken.screenshot_cut = height > max;
        let png = CaptureScreenshotFormat::Png;
        let (width, height) = (
            f64::from(crate::chromium::WINDOW_WIDTH),
            height.min(max).max(1.0),
        );
        let shot = page
            .execute(shot(png, None, width, height, 1.0))
            .await
            .map_err(fail)?;
        taken.renderings.screenshot = Some(decode(shot.result.data.as_ref())?.into());
    }
    if extras.thumbnail {
        // The top 1280×720 of the page at half size.
        let (w, h) = THUMBNAIL_SIZE;
        let jpeg = CaptureScreenshotFormat::Jpeg;
        let params = shot(jpeg, Some(80), f64::from(w * 2), f64::from(h * 2), 0.5);
        let shot = page.execute(params).await.map_err(fail)?;
        taken.renderings.thumbnail = Some(decode(shot.result.data.as_ref())?.into());
    }
    if extras.pdf {
        let params = PrintToPdfParams::builder()
            .print_background(true)
            .paper_width(A4_INCHES.0)
            .paper_height(A4_INCHES.1)
            .build();
        let pdf = page.execute(params).await.map_err(fail)?;
        taken.renderings.pdf = Some(decode(pdf.result.data.as_ref())?.into());
    }
    Ok(taken)
}

/// Whether a document of `media_type` is a page the browser renders and the serialiser
/// writes (HTML, XHTML); anything else is kept as it was answered.
fn is_page(media_type: &str) -> bool {
    matches!(media_type, "text/html" | "application/xhtml+xml")
}

/// Frames inside frames written in, at most (deeper ones keep what their address
/// answered, inlined by the static walk).
const MAX_FRAME_DEPTH: usize = 5;

/// A new random word, for names the page cannot guess.
fn nonce() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    format!("{:016x}", h.finish())
}

/// `html`, serialised in `context` (the page's main world when `None`), with each frame
/// of another origin it marked (see serialize.js) written in as a `srcdoc`: each
/// serialised in its own frame's context, its own frames likewise, to
/// [`MAX_FRAME_DEPTH`]. A frame that cannot be serialised keeps its address.
fn with_frames<'a>(
    page: &'a Page,
    html: String,
    context: Option<ExecutionContextId>,
    nonce: &'a str,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + 'a>> {
    Box::pin(async move {
        let marker = format!("data-linksnap-frame-{nonce}");
        if !html.contains(&marker) {
            return html;
        }
        let mut html = html;
        let count: usize = evaluate_in(
            page,
            &format!("window.__linksnapFrames{nonce}.length"),
            context,
            false,
        )
        .await
        .unwrap_or(0);
        for i in 0..count {
            let written = match frame_html(page, context, nonce, i, depth).await {
                Some((inner, inner_context)) => {
                    let inner =
                        with_frames(page, inner, Some(inner_context), nonce, depth + 1).await;
                    format!(
                        " srcdoc=\"{}\"",
                        inner.replace('&', "&amp;").replace('"', "&quot;")
                    )
                }
                None => String::new(),
            };
            html = html.replacen(&format!(" {marker}=\"{i}\""), &written, 1);
        }
        html
    })
}

/// The document of the `i`th frame of another origin listed in `context`, serialised in
/// that frame's own context (returned with it), if it can be.
async fn frame_html(
    page: &Page,
    context: Option<ExecutionContextId>,
    nonce: &str,
    i: usize,
    depth: usize,
) -> Option<(String, ExecutionContextId)> {
    use chromiumoxide::cdp::browser_protocol::dom::DescribeNodeParams;
    use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
    if depth > MAX_FRAME_DEPTH {
        return None;
    }
    let mut element = EvaluateParams::builder()
        .expression(format!("window.__linksnapFrames{nonce}[{i}]"))
        .return_by_value(false);
    if let Some(context) = context {
        element = element.context_id(context);
    }
    let element = page.execute(element.build().ok()?).await.ok()?;
    let object = element.result.result.object_id.clone()?;
    let node = page
        .execute(DescribeNodeParams::builder().object_id(object).build())
        .await
        .ok()?;
    let frame = node.result.node.frame_id.clone()?;
    let frame_context = page.frame_execution_context(frame).await.ok()??;
    let js = format!("({SERIALIZE_JS})(\"{nonce}\", true)");
    let html = evaluate_in(page, &js, Some(frame_context), false)
        .await
        .ok()?;
    Some((html, frame_context))
}

/// How [`evaluate`] reports an exception thrown by the evaluated script.
const SCRIPT_FAILED: &str = "the page's serialiser failed";

/// [`evaluate`], asked again every 100 ms while the page has no context to answer in
/// (between two documents), until `by`.
async fn evaluate_until<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
    by: Instant,
) -> Result<T, BrowserError> {
    loop {
        match evaluate(page, js).await {
            Ok(v) => return Ok(v),
            // The script itself failed: asking again gives the same answer.
            Err(e) if e.to_string().starts_with(SCRIPT_FAILED) => return Err(e),
            Err(e) if Instant::now() >= by => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Evaluates `js` in the page's main world as it is now (not waiting for a navigation
/// the page may have attempted), returning its value.
async fn evaluate<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
) -> Result<T, BrowserError> {
    evaluate_in(page, js, None, false).await
}

/// [`evaluate`] of a script whose value is a promise: its settled value.
async fn evaluate_async<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
) -> Result<T, BrowserError> {
    evaluate_in(page, js, None, true).await
}

/// [`evaluate`] in `context` (the page's main world when `None`), awaiting the value when
/// it is a promise if `await_promise`.
async fn evaluate_in<T: serde::de::DeserializeOwned>(
    page: &Page,
    js: &str,
    context: Option<ExecutionContextId>,
    await_promise: bool,
) -> Result<T, BrowserError> {
    use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
    let mut params = EvaluateParams::builder()
        .expression(js)
        .return_by_value(true)
        .await_promise(await_promise);
    if let Some(context) = context {
        params = params.context_id(context);
    }
    let params = params.build().map_err(BrowserError::Browser)?;
    let response = page
        .execute(params)
        .await
        .map_err(|e| BrowserError::Browser(e.to_string()))?;
    if let Some(exception) = &response.result.exception_details {
        return Err(BrowserError::Browser(format!(
            "{SCRIPT_FAILED}: {}",
            exception.text
        )));
    }
    let value = response
        .result
        .result
        .value
        .clone()
        .unwrap_or(serde_json::Value::Null);
    serde_json::from_value(value).map_err(|e| BrowserError::Browser(e.to_string()))
}

impl From<Failure> for BrowserError {
    fn from(f: Failure) -> Self {
        Self::Browser(f.to_string())
    }
}

/// Tabs one browser engine captures in at once, by default (sized for two cores).
pub const DEFAULT_TABS: usize = 2;
/// Captures one Chromium makes before it is replaced by a fresh one, by default.
pub const DEFAULT_CAPTURES_PER_BROWSER: usize = 200;

/// The browser engine for the library: one Chromium for the process, started at the
/// first capture, at most `tabs` captures at once, replaced after
/// [`DEFAULT_CAPTURES_PER_BROWSER`] captures or when it fails (the capture it failed is
/// [`CaptureError::Engine`], which the queue retries; the process goes on).
pub struct BrowserEngine {
    chromium: std::path::PathBuf,
    capturer: Capturer,
    settings: BrowserSettings,
    /// What every capture also keeps: a screenshot and a thumbnail, a PDF when asked.
    extras: Extras,
    tabs: tokio::sync::Semaphore,
    running: tokio::sync::Mutex<Option<(Arc<BrowserCapturer>, usize)>>,
}

impl BrowserEngine {
    /// An engine that will run the Chromium at `chromium`; every capture keeps a
    /// screenshot and a thumbnail, and with `pdf` a PDF.
    #[must_use]
    pub fn new(
        chromium: std::path::PathBuf,
        capturer: Capturer,
        settings: BrowserSettings,
        tabs: usize,
        pdf: bool,
    ) -> Self {
        Self {
            chromium,
            capturer,
            settings,
            extras: Extras {
                screenshot: true,
                thumbnail: true,
                pdf,
            },
            tabs: tokio::sync::Semaphore::new(tabs.max(1)),
            running: tokio::sync::Mutex::new(None),
        }
    }

    /// The running browser (started, or replaced, when needed).
    async fn browser(&self) -> Result<Arc<BrowserCapturer>, BrowserError> {
        let mut running = self.running.lock().await;
        if let Some((browser, used)) = running.as_mut()
            && *used < DEFAULT_CAPTURES_PER_BROWSER
        {
            *used += 1;
            return Ok(browser.clone());
        }
        let browser = Arc::new(
            BrowserCapturer::launch(&self.chromium, self.capturer.clone(), self.settings.clone())
                .await?,
        );
        *running = Some((browser.clone(), 1));
        Ok(browser)
    }

    async fn capture(&self, input: &str) -> Result<Capture, CaptureError> {
        let _tab = self
            .tabs
            .acquire()
            .await
            .map_err(|e| CaptureError::Engine(e.to_string()))?;
        let browser = self
            .browser()
            .await
            .map_err(|e| CaptureError::Engine(e.to_string()))?;
        match browser.capture(input, self.extras).await {
            Ok(done) => Ok(done.capture),
            Err(BrowserError::Capture(e)) => Err(e),
            Err(e) => {
                // The browser is not to be trusted again: the next capture starts a new one.
                let mut running = self.running.lock().await;
                if running
                    .as_ref()
                    .is_some_and(|(b, _)| Arc::ptr_eq(b, &browser))
                {
                    *running = None;
                }
                Err(CaptureError::Engine(e.to_string()))
            }
        }
    }
}

impl std::fmt::Debug for BrowserEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserEngine")
            .field("chromium", &self.chromium)
            .finish_non_exhaustive()
    }
}

impl linksnap_capture::CaptureEngine for BrowserEngine {
    fn capture_page<'a>(
        &'a self,
        input: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Capture, CaptureError>> + 'a>>
    {
        Box::pin(self.capture(input))
    }

    fn capture_options(&self) -> &linksnap_capture::CaptureOptions {
        self.capturer.options()
    }
}
