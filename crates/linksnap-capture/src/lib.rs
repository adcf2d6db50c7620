//! The linksnap capture engine: any link becomes one faithful, self-contained HTML snapshot
//! plus its readable text.
//!
//! Layers, each depending only on those above it:
//! - [`policy`]: which IP addresses may be contacted (pure).
//! - [`charset`], [`css`], [`datauri`], [`resource`]: decoding and encoding helpers (pure).
//! - [`template`]: a snapshot as a template plus content-addressed parts (pure).
//! - [`html`]: discovery of references and inlining into one document (pure).
//! - [`depth`]: how deep a page's element tree is, measured without recursion (pure).
//! - [`extract`]: readable text, only from pages within [`depth::MAX_DOM_DEPTH`] (pure,
//!   CPU-bound).
//! - [`dns`], `fetch`: name resolution checked against the policy, HTTP with limits (IO).
//! - [`capture`]: the orchestration, and the public entry point [`Capturer`].
//!
//! The crate knows nothing of storage, JSON or the command line.

pub mod capture;
pub mod charset;
pub mod css;
pub mod datauri;
pub mod depth;
pub mod dns;
pub mod extract;
mod fetch;
pub mod html;
pub mod policy;
pub mod resource;
pub mod template;

pub use capture::{
    Capture, CaptureEngine, CaptureError, CaptureOptions, CaptureSession, Capturer, Engine, Limits,
    Renderings, ResourceRecord, Snapshot, parse_url,
};
pub use dns::NameResolver;
pub use extract::Readable;
pub use fetch::{Exchange, Hop};
pub use html::InlineOptions;
pub use policy::AddressPolicy;
pub use resource::{Failure, Fetched, Redirected, ResourceKind, Wire};
pub use template::{PartHash, SnapshotParts};
