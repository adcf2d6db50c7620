//! The linksnap library: links, tags and snapshot versions in SQLite, snapshot content in a
//! content-addressed blob store.

pub mod auth;
pub mod bans;
pub mod blob;
pub mod datadir;
pub mod domain;
pub mod fault;
pub mod filter;
mod find;
pub mod import;
mod indexing;
pub mod libraries;
pub mod library;
pub mod mail;
pub mod maintenance;
pub mod queue;
pub mod search;
pub mod tags;
mod tagsql;
pub mod tokens;
pub mod versions;

pub use auth::{NewSession, Share, User, UserError};
pub use bans::{Ban, LiveBans};
pub use datadir::OpenError;
pub use domain::{NormalizedUrl, TagExpr, TagName, UrlRules};
pub use fault::Fault;
pub use filter::Filter;
pub use find::SearchResult;
pub use libraries::{Libraries, LibraryError};
pub use library::{EditLink, Library, Link, LinkId, LinkStatus, StoreError, now_ms};
pub use mail::{KeptMessage, MailOutcome, MailRecord, MailboxStatus};
pub use maintenance::{FsckReport, GcReport};
pub use queue::{Job, JobInfo, Outcome};
pub use tags::TagNode;
pub use tokens::{Scope, Scopes, Token, TokenError};
pub use versions::{ResourceRow, Version};
