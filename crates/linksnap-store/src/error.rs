//! `StoreError`: why an operation of the library or of the accounts failed, and whether
//! the machine is at fault.

use crate::blob::BlobError;
use crate::domain::LinkId;

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No link with that id.
    #[error("no link with id {0}")]
    NoLink(LinkId),
    /// The link has no such version (or none at all).
    #[error("link {link} has no snapshot version {version}")]
    NoVersion {
        /// The link.
        link: LinkId,
        /// The version asked for (0: the latest).
        version: i64,
    },
    /// No tag by that name.
    #[error("no tag named `{0}`")]
    NoTag(String),
    /// Renaming onto a tag that exists.
    #[error("a tag named `{0}` exists already: merge instead")]
    TagExists(String),
    /// A snapshot's content is damaged or missing.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The search index failed.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// A note, title or tag list over its cap.
    #[error("{what} is over its limit of {limit}")]
    OverLimit { what: &'static str, limit: usize },
}

impl StoreError {
    /// The machine's fault behind this error (the database stayed locked, the disk is
    /// full, the directory is read-only), when it is one: nothing the request did, so
    /// callers answer "try again" rather than "failed".
    #[must_use]
    pub fn fault(&self) -> Option<crate::fault::Fault> {
        match self {
            Self::Db(e) => crate::fault::Fault::of_sqlx(e),
            Self::Blob(e) => e.fault(),
            Self::Search(e) => e.fault(),
            _ => None,
        }
    }
}
