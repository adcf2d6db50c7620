//! Why a browser capture fails.

use linksnap_capture::{CaptureError, Failure};

use crate::chromium::LaunchError;

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

impl From<Failure> for BrowserError {
    fn from(f: Failure) -> Self {
        Self::Browser(f.to_string())
    }
}
