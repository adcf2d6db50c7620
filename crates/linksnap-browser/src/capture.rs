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
    BrowserContextId, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::fetch::EventRequestPaused;
use chromiumoxide::cdp::browser_protocol::page::{
    EventJavascriptDialogOpening, HandleJavaScriptDialogParams,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams, EventTargetCrashed,
};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use linksnap_capture::{Capture, CaptureError, CaptureSession, Capturer, Failure, parse_url};
use tokio::time::Instant;
use url::Url;

use crate::chromium::Chromium;
use crate::error::BrowserError;
use crate::intercept::{Seen, answer};
use crate::page::{
    Extras, Taken, evaluate, evaluate_async, evaluate_until, is_page, serialise, take,
};
use crate::shared::SharedWorkers;

/// Installed in every frame before the page's scripts.
const INIT_JS: &str = include_str!("init.js");

/// How long no request may be in flight before the page counts as settled.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(500);
/// Most window heights scrolled to reveal lazy content.
pub const DEFAULT_MAX_SCROLLS: u32 = 20;
/// How long after a scrolling pass a request it caused may still be on its way.
const LATE_REQUEST: Duration = Duration::from_millis(120);
/// How long closing a page or its context may take (a hung renderer does not answer).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

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
/// wants more crashes its renderer, and its capture fails (`CaptureError::Crashed`).
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
                self.capture_in(&session, &page, &context, &url, extras),
            )
            .await
            .unwrap_or_else(|_| Err(session.page_error(&url, Failure::TimedOut).into()));
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, page.close()).await;
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
    /// to settle and serialises it. Returns the URL it shows, the document (none when it
    /// is no page the browser renders), what the interception saw, whether it never
    /// settled, and its renderings.
    async fn capture_in(
        &self,
        session: &CaptureSession<'_>,
        page: &Page,
        context: &BrowserContextId,
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
        let (init, agent, _, main_frame, shared) = tokio::join!(
            page.evaluate_on_new_document(INIT_JS),
            page.set_user_agent(session.options().user_agent.as_str()),
            page.execute(SetDownloadBehaviorParams::new(
                SetDownloadBehaviorBehavior::Deny,
            )),
            page.mainframe(),
            SharedWorkers::attach(self.chromium.browser.websocket_address(), context.clone()),
        );
        let shared = shared?;
        init.map_err(fail)?;
        agent.map_err(fail)?;
        let main_frame = main_frame.map_err(fail)?;
        let main_frame = main_frame.as_ref().map(|f| f.as_ref().to_owned());

        let deadline = session.deadline();
        // What the page does runs beside the interception, in this task: both borrow the
        // session, and the interception ends when the work does.
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
            tracing::debug!(elapsed = ?entered.elapsed(), "loaded");
            // Serialising and inlining need time of their own.
            let settle_by = deadline
                - (deadline.saturating_duration_since(Instant::now()) / 5)
                    .min(Duration::from_secs(10));
            let mut settled = self.wait_quiet(&seen, settle_by).await;
            tracing::debug!(elapsed = ?entered.elapsed(), settled, "quiet after load");
            if settled {
                self.reveal_lazy(page, &seen, settle_by).await;
                tracing::debug!(elapsed = ?entered.elapsed(), "scrolled");
                settled = self.wait_quiet(&seen, settle_by).await;
                tracing::debug!(elapsed = ?entered.elapsed(), settled, "quiet after scrolling");
            }
            // A page that navigates itself now (a redirect by script) has no context for
            // a moment: asked again until it has one.
            let shown: String = evaluate_until(page, "location.href", deadline).await?;
            let shown = Url::parse(&shown).map_err(|e| BrowserError::Browser(e.to_string()))?;
            let html = serialise(page, deadline).await?;
            tracing::debug!(elapsed = ?entered.elapsed(), bytes = html.len(), "serialised");
            let taken = take(page, extras).await?;
            Ok((
                linksnap_capture::resource::ResourceMap::key(&shown),
                Some(html),
                !settled,
                taken,
            ))
        };
        let workers = shared.intercept(session, &seen);
        let intercept = async {
            tokio::pin!(workers);
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
                    // The shared workers' connection ended: the browser is going.
                    () = &mut workers => break,
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
            // What the last step brought into view asks for its content a little after
            // the frames the pass waited for (an IntersectionObserver's callback, then the
            // request reaching the interception): given that long before it counts as
            // nothing.
            let asked_by = Instant::now() + LATE_REQUEST;
            while seen.activity() == before && Instant::now() < asked_by {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
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
