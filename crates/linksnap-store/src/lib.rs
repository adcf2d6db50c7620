//! The linksnap library: links, tags and snapshot versions in SQLite, snapshot content in a
//! content-addressed blob store.

pub mod accounts;
pub mod blob;
mod clock;
pub mod datadir;
pub mod domain;
mod error;
pub mod fault;
pub mod libraries;
pub mod library;
pub mod search;
pub mod secrets;

pub use accounts::Accounts;
pub use accounts::bans::{Ban, LiveBans};
pub use accounts::tokens::{Scope, Scopes, Token, TokenError};
pub use accounts::users::{NewSession, User, UserError};
pub use datadir::OpenError;
pub use domain::{NormalizedUrl, TagExpr, TagName, UrlRules};
pub use fault::Fault;
pub use libraries::{Libraries, LibraryError};
pub use library::filter::Filter;
pub use library::find::SearchResult;
pub use library::mail::{KeptMessage, MailOutcome, MailRecord, MailboxStatus};
pub use library::maintenance::{FsckReport, GcReport};
pub use library::queue::{Job, JobInfo, Outcome};
pub use library::shares::Share;
pub use library::tags::TagNode;
pub use library::versions::{Rendering, ResourceRow, Version};
pub use library::{EditLink, Library, Link, LinkId, LinkStatus, StoreError, now_ms};
pub use library::{filter, import, mail, maintenance, queue, tags, versions};
