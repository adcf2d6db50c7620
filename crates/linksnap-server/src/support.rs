//! Small helpers that know nothing of requests: what names a library in events and caches
//! (`library_key`), and running work whose futures are not `Send` on a thread of its own
//! (`on_own_thread`).

use std::future::Future;
use std::sync::Arc;

use linksnap_store::Library;

/// What names a library in events: its directory.
#[must_use]
pub fn library_key(library: &Library) -> Arc<str> {
    Arc::from(library.data_dir().path.to_string_lossy().as_ref())
}

/// Runs `work` on a thread of its own with a single-threaded runtime and resolves to its
/// result (`None` if the thread could not start or panicked). For work whose futures are
/// not `Send` — a capture holds the HTML rewriter, an import the Netscape parser — so it
/// can neither be spawned on the server's runtime nor take its threads.
pub async fn on_own_thread<T, F, Fut>(name: &str, work: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let _ = tx.send(rt.block_on(work()));
        })
        .ok()?;
    rx.await.ok()
}
