//! The library's browser engine: one Chromium for the process, a bounded number of tabs,
//! replaced when it fails or has made enough captures.

use std::sync::Arc;

use linksnap_capture::{Capture, CaptureError, Capturer};

use crate::capture::{BrowserCapturer, BrowserSettings};
use crate::error::BrowserError;
use crate::page::Extras;

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
