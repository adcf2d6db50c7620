//! Exports and imports, bounded: an export is streamed from the database in pieces of
//! [`EXPORT_PIECE`] links (memory does not grow with the library), and each library runs
//! at most `transfers_per_user` exports and imports at once (more: 429 with
//! `Retry-After`), so one user cannot exhaust the server's memory with them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use linksnap_store::{Filter, Library, LinkId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::ApiError;
use crate::json::LinkJson;

/// Links read from the database per piece of an export.
pub const EXPORT_PIECE: usize = 500;

/// The per-library bound on exports and imports running at once.
#[derive(Debug)]
pub struct Transfers {
    per_library: usize,
    running: Mutex<HashMap<Arc<str>, Arc<Semaphore>>>,
}

impl Transfers {
    #[must_use]
    pub fn new(per_library: usize) -> Self {
        Self {
            per_library: per_library.max(1),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more export or import of `library`, or 429.
    ///
    /// # Errors
    /// 429 `busy` when the library runs as many as it may.
    pub fn permit(&self, library: &Library) -> Result<OwnedSemaphorePermit, ApiError> {
        self.permit_for(crate::library_key(library))
    }

    fn permit_for(&self, key: Arc<str>) -> Result<OwnedSemaphorePermit, ApiError> {
        let sem = {
            let mut map = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_library)))
                .clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!(
                    "{} exports or imports of this library are running (transfers_per_user); try again when one is done",
                    self.per_library
                ),
            );
            e.retry_after = Some(10);
            e
        })
    }
}

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Netscape,
}

struct Export {
    library: Arc<Library>,
    ids: Vec<LinkId>,
    next: usize,
    format: ExportFormat,
    started: bool,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

impl Export {
    /// The next piece of the body, `None` at the end.
    async fn piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            match self.format {
                ExportFormat::Json => out.push(b'['),
                ExportFormat::Netscape => {
                    if let Err(e) = linksnap_store::import::write_netscape_head(&mut out) {
                        return Some(Err(e));
                    }
                }
            }
        }
        if self.next >= self.ids.len() {
            self.done = true;
            match self.format {
                ExportFormat::Json => out.push(b']'),
                ExportFormat::Netscape => {
                    if let Err(e) = linksnap_store::import::write_netscape_tail(&mut out) {
                        return Some(Err(e));
                    }
                }
            }
            return Some(Ok(Bytes::from(out)));
        }
        let end = (self.next + EXPORT_PIECE).min(self.ids.len());
        let chunk = self.ids[self.next..end].to_vec();
        let first = self.next == 0;
        self.next = end;
        let filter = Filter {
            ids: Some(chunk.clone()),
            ..Filter::default()
        };
        let mut links = match self.library.list(&filter).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "an export stopped");
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        };
        // In the order of the ids (newest first); links removed meanwhile are left out.
        let order: HashMap<i64, usize> =
            chunk.iter().enumerate().map(|(i, id)| (id.0, i)).collect();
        links.sort_by_key(|l| order.get(&l.id.0).copied().unwrap_or(usize::MAX));
        let written = match self.format {
            ExportFormat::Json => {
                let mut r = Ok(());
                for (i, l) in links.iter().enumerate() {
                    if !(first && i == 0) {
                        out.push(b',');
                    }
                    if let Err(e) = serde_json::to_writer(&mut out, &LinkJson::with_snapshot_url(l))
                    {
                        r = Err(std::io::Error::other(e));
                        break;
                    }
                }
                r
            }
            ExportFormat::Netscape => {
                linksnap_store::import::write_netscape_entries(&links, &mut out)
            }
        };
        Some(written.map(|()| Bytes::from(out)))
    }
}

/// The export of every link `filter` selects, streamed; holds `permit` until it ends.
///
/// # Errors
/// The database's, before the first byte.
pub(crate) async fn export(
    library: Arc<Library>,
    filter: Filter,
    format: ExportFormat,
    permit: OwnedSemaphorePermit,
) -> Result<Response, ApiError> {
    let ids = library.list_ids(&filter).await?;
    let export = Export {
        library,
        ids,
        next: 0,
        format,
        started: false,
        done: false,
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(export, |mut e| async move {
        e.piece().await.map(|piece| (piece, e))
    });
    let mut r = Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    match format {
        ExportFormat::Json => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        ExportFormat::Netscape => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"linksnap-bookmarks.html\""),
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_library_runs_at_most_its_share_of_transfers() {
        let t = Transfers::new(2);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let one = t.permit_for(a.clone()).unwrap();
        let _two = t.permit_for(a.clone()).unwrap();
        let third = t.permit_for(a.clone()).unwrap_err();
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(third.retry_after, Some(10));
        // Another library is not held up; a finished transfer makes room.
        assert!(t.permit_for(b).is_ok());
        drop(one);
        assert!(t.permit_for(a).is_ok());
    }
}
