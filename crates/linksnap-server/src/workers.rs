//! Capture workers inside `serve`. They run on their own thread and runtime, so that a
//! flood of captures (HTML parsing and inlining are CPU work) never takes the threads that
//! answer the API.

use std::sync::Arc;
use std::time::Duration;

use linksnap_capture::CaptureEngine;
use linksnap_store::{Libraries, Outcome};
use tokio::sync::{Notify, watch};

/// Builds the capture engine on the workers' runtime (its HTTP client, resolver and
/// browser belong there).
///
/// It is given the server's own sockets, which captures must never connect to (see
/// `AddressPolicy::never_connect`).
pub type CapturerFactory =
    Box<dyn FnOnce(&[std::net::SocketAddr]) -> Result<Box<dyn CaptureEngine>, String> + Send>;

/// How often idle workers look for jobs that became due (retries wait for a time).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the first worker looks after the libraries: a search index that fell behind
/// catches up, and jobs `running` with nobody running them go back to the queue.
pub const MAINTAIN_INTERVAL: Duration = Duration::from_secs(5);

/// The worker thread.
pub(crate) struct Workers {
    thread: Option<std::thread::JoinHandle<()>>,
    finished: watch::Receiver<bool>,
}

impl Workers {
    /// Starts `count` workers (none for 0).
    pub(crate) fn start(
        libs: Arc<Libraries>,
        make: CapturerFactory,
        own_sockets: Vec<std::net::SocketAddr>,
        count: usize,
        wake: Arc<Notify>,
        events: tokio::sync::broadcast::Sender<crate::state::LinkEvent>,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<Self> {
        let (finished_tx, finished) = watch::channel(count == 0);
        if count == 0 {
            return Ok(Self {
                thread: None,
                finished,
            });
        }
        let thread = std::thread::Builder::new()
            .name("capture-workers".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "capture workers: no runtime");
                        let _ = finished_tx.send(true);
                        return;
                    }
                };
                rt.block_on(async move {
                    let capturer = match make(&own_sockets) {
                        Ok(c) => std::rc::Rc::<dyn CaptureEngine>::from(c),
                        Err(e) => {
                            tracing::error!(error = %e, "capture workers cannot start");
                            let _ = finished_tx.send(true);
                            return;
                        }
                    };
                    // Captures hold the HTML rewriter (not Send) across awaits: the workers
                    // are local tasks of this thread.
                    let local = tokio::task::LocalSet::new();
                    for n in 0..count {
                        local.spawn_local(work(
                            n,
                            libs.clone(),
                            capturer.clone(),
                            wake.clone(),
                            events.clone(),
                            stop.clone(),
                        ));
                    }
                    local.await;
                    let _ = finished_tx.send(true);
                });
            })?;
        Ok(Self {
            thread: Some(thread),
            finished,
        })
    }

    /// Waits until every worker has finished its capture and stopped (after the stop
    /// signal), or `deadline` passes. Returns whether they all stopped.
    pub(crate) async fn wait(&mut self, deadline: Duration) -> bool {
        let stopped = tokio::time::timeout(deadline, self.finished.wait_for(|f| *f))
            .await
            .is_ok();
        if stopped && let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        stopped
    }
}

async fn work(
    n: usize,
    libs: Arc<Libraries>,
    capturer: std::rc::Rc<dyn CaptureEngine>,
    wake: Arc<Notify>,
    events: tokio::sync::broadcast::Sender<crate::state::LinkEvent>,
    mut stop: watch::Receiver<bool>,
) {
    // Which library to look at first: turns advance, so no user's queue starves another's.
    let mut turn = n;
    let mut maintained = tokio::time::Instant::now();
    // No capture of this process runs longer (see `run_job`): a job running for longer
    // was abandoned (its result could not be recorded, nor the job put back).
    let stale_after = capturer.capture_options().limits.timeout
        + linksnap_store::queue::CAPTURE_DEADLINE_GRACE * 2;
    loop {
        if *stop.borrow() {
            return;
        }
        if n == 0 && maintained.elapsed() >= MAINTAIN_INTERVAL {
            maintained = tokio::time::Instant::now();
            for library in libs.all().await {
                if let Err(e) = library.maintain_index().await {
                    tracing::warn!(error = %e, "the search index could not catch up yet");
                }
                match library.return_stale_jobs(stale_after).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "abandoned captures queued again"),
                    Err(e) => tracing::warn!(error = %e, "abandoned captures not yet queued again"),
                }
            }
        }
        // Registered before looking, so a job queued in between still wakes this worker.
        let woken = wake.notified();
        let all = libs.all().await;
        let mut claimed = None;
        let mut failed = false;
        for i in 0..all.len() {
            let library = &all[(turn + i) % all.len()];
            match library.claim(None).await {
                Ok(Some(job)) => {
                    claimed = Some((library.clone(), job));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(worker = n, error = %e, "claiming a job failed");
                    failed = true;
                }
            }
        }
        turn = turn.wrapping_add(1);
        let Some((library, job)) = claimed else {
            let wait = if failed { None } else { Some(woken) };
            tokio::select! {
                () = async { if let Some(w) = wait { w.await } else { std::future::pending().await } } => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        };
        let key = crate::support::library_key(&library);
        let tell = |id: i64, status: &'static str| {
            let _ = events.send(crate::state::LinkEvent {
                library: key.clone(),
                id,
                status,
            });
        };
        tell(job.link.0, "capturing");
        match library.run_job(&*capturer, job).await {
            Ok(Outcome::Saved {
                version,
                http_status,
            }) => {
                tracing::info!(worker = n, link = %job.link, version, http_status, "captured");
                tell(job.link.0, "ok");
            }
            Ok(Outcome::Retrying(why)) => {
                tracing::info!(worker = n, link = %job.link, %why, "capture failed; will retry");
                tell(job.link.0, "queued");
            }
            Ok(Outcome::Failed(why)) => {
                tracing::info!(worker = n, link = %job.link, %why, "capture failed");
                tell(job.link.0, "failed");
            }
            Err(e) => {
                tracing::error!(worker = n, link = %job.link, error = %e, "recording a capture failed; it is queued again");
                tell(job.link.0, "queued");
            }
        }
    }
}
