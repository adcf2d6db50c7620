//! Exports and imports, bounded: an export is streamed from the database in pieces of
//! [`EXPORT_PIECE`] links, an import is parsed as its body arrives (never held whole), and
//! each library runs at most `transfers_per_user` exports and imports at once (more: 429
//! with `Retry-After`), so one user cannot exhaust the server's memory with them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use linksnap_store::{Filter, Library, LinkId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::json::LinkJson;

/// Pieces of an import's body buffered between the connection and the parser.
const IMPORT_PIECES_IN_FLIGHT: usize = 8;

/// A request body read as a blocking `Read` (the import parser runs on a thread of its
/// own): pieces arrive through a bounded channel, so the body is never held whole.
struct BodyReader {
    rx: std::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(Ok(piece)) => self.current = piece,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Starts reading `body` into a [`BodyReader`]; the task ends with whether the body was
/// cut at its size limit.
fn read_body(body: Body) -> (BodyReader, tokio::task::JoinHandle<bool>) {
    use futures_util::StreamExt as _;
    let (tx, rx) = std::sync::mpsc::sync_channel(IMPORT_PIECES_IN_FLIGHT);
    let pump = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        while let Some(piece) = stream.next().await {
            let (piece, too_large) = match piece {
                Ok(b) => (Ok(b), false),
                Err(e) => {
                    let too_large = std::error::Error::source(&e)
                        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                        || e.to_string().contains("length limit");
                    (Err(std::io::Error::other(e.to_string())), too_large)
                }
            };
            let failed = piece.is_err();
            let tx = tx.clone();
            // The channel is bounded: wait for the parser off the runtime's threads.
            let sent = tokio::task::spawn_blocking(move || tx.send(piece).is_ok())
                .await
                .unwrap_or(false);
            if failed || !sent {
                return too_large;
            }
        }
        false
    });
    (
        BodyReader {
            rx,
            current: Bytes::new(),
        },
        pump,
    )
}

/// Where an import goes: the library, the per-library bound, the entries limit, and the
/// workers to wake for new captures.
pub(crate) struct ImportInto<'a> {
    pub library: Arc<Library>,
    pub transfers: &'a Transfers,
    pub max_entries: usize,
    pub wake: &'a tokio::sync::Notify,
}

/// Imports `body` into the request's library on a thread of its own (the Netscape parser
/// is not `Send`), parsing it as it arrives, reporting bytes read to `progress`; wakes the
/// workers for new captures. A file that does not parse is `bad_import` (400) and imports
/// nothing; a body over the upload limit is 413 and imports nothing.
///
/// # Errors
/// 429 when the library runs its share of transfers; 400, 413; the store's.
pub(crate) async fn import_body(
    into: ImportInto<'_>,
    body: Body,
    format: Option<linksnap_store::import::Format>,
    capture: bool,
    folders: bool,
    mut progress: Box<dyn FnMut(u64) + Send>,
) -> Result<linksnap_store::import::ImportReport, ApiError> {
    use linksnap_store::import::ImportError;
    let permit = into.transfers.permit(&into.library)?;
    let library = into.library.clone();
    let max_entries = into.max_entries;
    let (reader, pump) = read_body(body);
    let result = crate::support::on_own_thread("import", move || async move {
        let r = library
            .import_from(
                Box::new(reader),
                format,
                capture,
                folders,
                max_entries,
                &mut *progress,
            )
            .await;
        drop(permit);
        r
    })
    .await;
    let too_large = pump.await.unwrap_or(false);
    match result {
        _ if too_large => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the file is larger than the server takes (body_limit); nothing was imported",
        )),
        Some(Ok(report)) => {
            if report.added > 0 && capture {
                into.wake.notify_waiters();
            }
            Ok(report)
        }
        Some(Err(ImportError::Format(m))) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_import",
            format!("{m}; nothing was imported"),
        )),
        Some(Err(ImportError::Store(e))) => Err(e.into()),
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the import stopped",
        )),
    }
}

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
        self.permit_for(crate::support::library_key(library))
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
