//! The browser engine: a page captured as a headless Chromium renders it, with scripts
//! run, then saved as the rendered document without its scripts, inlined by the same
//! walk as the static engine's (`linksnap-capture`).
//!
//! Chromium never touches the network. Every request it makes is paused at the request
//! stage and answered by the capture's own fetcher (`CaptureSession::exchange`: the
//! same resolver, address policy, limits, cookie jar and deadline as the static engine),
//! one redirect hop at a time; what the interception cannot see goes to a proxy that
//! refuses everything. What the browser received is the single source of the snapshot's
//! bytes: the walk takes its resources from those responses first.
//!
//! Layers, lowest first: `chromium` (finding and launching the browser, the refusing
//! proxy), `intercept` (answering its requests), `error`; `shared` (answering shared
//! workers' requests over a connection of its own) beside `page` (evaluating in a page,
//! serialising it, drawing it); `capture` (one capture: navigate, settle, serialise,
//! finish); `engine` (the library's engine over one Chromium).

pub mod capture;
pub mod chromium;
pub mod engine;
pub mod error;
mod intercept;
pub mod page;
mod shared;

pub use capture::{BrowserCapture, BrowserCapturer, BrowserSettings, DEFAULT_HEAP_LIMIT_MIB};
pub use chromium::{Chromium, find_chromium};
pub use engine::{BrowserEngine, DEFAULT_TABS};
pub use error::BrowserError;
pub use page::{Extras, MAX_SCREENSHOT_HEIGHT, THUMBNAIL_SIZE};
