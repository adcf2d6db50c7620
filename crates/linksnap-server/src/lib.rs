//! `linksnap serve`: the platform over HTTP.
//!
//! [`listen`] builds the sockets, [`conn`] accepts and serves connections and keeps the
//! connection table, [`api`] is the routes, [`cli`] the local CLI's way in, [`workers`] the
//! capture workers. [`serve`] puts them together and shuts them down gracefully.

pub mod access;
pub mod addr;
pub mod api;
pub mod bodies;
pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod i18n;
pub mod json;
pub mod middleware;
pub mod net;
pub mod netapi;
pub mod procmem;
pub mod snapview;
pub mod state;
pub mod support;
pub mod transfer;
pub mod web;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use linksnap_store::Libraries;

use access::{names, signin, snaporigin};
use net::{conn, guard, listen};
use tokio::sync::{Notify, broadcast, watch};

pub use addr::ListenAddr;
pub use config::ServerConfig;
pub use state::{AppState, LinkEvent, SseGuard};
pub use support::{library_key, on_own_thread};

/// The data directory's private socket, for the CLI.
pub const SOCKET_NAME: &str = "linksnap.sock";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot start the capture workers: {0}")]
    Workers(#[source] std::io::Error),
    /// A part of the server that could not be set up (a mailbox's owner, the snapshot
    /// origin's key).
    #[error("{0}")]
    Setup(String),
}

/// How a shutdown went.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Connections still open when the grace period ended (closed then).
    pub connections_cut: usize,
    /// Captures that did not finish in time and went back to the queue.
    pub captures_returned: u64,
}

/// Runs the server until `shutdown` completes, then stops accepting, lets in-flight
/// requests and captures finish within the configured grace period, and returns unfinished
/// captures to the queue. `ready` is called with the bound addresses once every listener is
/// up (port 0 resolved).
///
/// # Errors
/// [`ServeError`] when a listener or the workers cannot start.
pub async fn serve(
    mut config: ServerConfig,
    libs: Arc<Libraries>,
    capturer: workers::CapturerFactory,
    cli: Option<Arc<dyn cli::CliRunner>>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&[ListenAddr]),
) -> Result<ShutdownReport, ServeError> {
    let mut listeners = Vec::new();
    for addr in &config.listen {
        listeners.push((
            listen::bind(addr, &config.tcp).map_err(ServeError::Bind)?,
            false,
        ));
    }
    let library = libs.main().clone();
    let accounts = libs.accounts().clone();
    let private = library.data_dir().path.join(SOCKET_NAME);
    listeners.push((
        listen::bind_private_unix(&private, config.tcp.backlog).map_err(ServeError::Bind)?,
        true,
    ));
    let bound: Vec<ListenAddr> = listeners.iter().map(|(l, _)| l.local_addr()).collect();

    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    // The bans in force were loaded when the library opened; ban and unban keep them.
    let guard = Arc::new(guard::Guard::new(&config, accounts.live_bans()));
    let (new_bans, mut new_bans_rx) = tokio::sync::mpsc::unbounded_channel::<linksnap_store::Ban>();
    let (events, _) = broadcast::channel(1024);
    let per_minute = std::num::NonZeroU32::new(config.login_attempts_per_minute)
        .unwrap_or(std::num::NonZeroU32::MIN);
    // Every user's library is opened now, on this runtime: their queued captures are
    // found, and later requests find them open.
    let opened = libs.all().await.len();
    tracing::info!(libraries = opened, "libraries open");
    if config.secure_cookies.is_none() && config.cookies_secure() {
        tracing::warn!(
            "cookies are marked Secure because a listener is reachable beyond loopback: serve \
             linksnap over HTTPS (directly or behind a TLS proxy), or start with \
             --secure-cookies false to sign in over plain HTTP on a trusted network"
        );
    }
    let state = AppState {
        library: library.clone(),
        accounts: accounts.clone(),
        libs: libs.clone(),
        wake: wake.clone(),
        cli,
        events: events.clone(),
        login_backoff: Arc::new(signin::Backoff::new(config.login_backoff_max)),
        login_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        ))),
        secure_cookies: config.cookies_secure(),
        body_limit: config.body_limit,
        bodies: Arc::new(bodies::Bodies::new(&config)),
        sse_heartbeat: config.sse_heartbeat,
        sse_streams: Arc::new(AtomicUsize::new(0)),
        stopping: stop_rx.clone(),
        conns: Arc::new(conn::ConnTable::default()),
        started: Instant::now(),
        guard: guard.clone(),
        listeners: Arc::new(bound.clone()),
        max_connections: config.max_connections,
        metrics: config.metrics,
        read_cache: Arc::new(cache::ReadCache::new(config.read_cache)),
        transfers: Arc::new(transfer::Transfers::new(config.transfers_per_user)),
        import_limit: config.import_limit,
        names: Arc::new(names::ServerNames::new(
            &config.public_names,
            config.snapshot_origin.as_deref(),
            &bound,
        )),
        snapshot_origin: match &config.snapshot_origin {
            Some(origin) => Some(Arc::new(snaporigin::SnapshotOrigin::new(
                origin,
                accounts
                    .server_secret("snapshot-urls")
                    .await
                    .map_err(|e| ServeError::Setup(format!("the snapshot origin's key: {e}")))?,
            ))),
            None => None,
        },
    };
    let conns = state.conns.clone();
    let router = api::router(state, config.body_limit);
    let grace = config.shutdown_grace;
    let worker_count = config.workers;
    let mailboxes = std::mem::take(&mut config.mailboxes);
    let shared = Arc::new(conn::Shared::new(
        config,
        router,
        conns,
        guard.clone(),
        new_bans,
    ));
    // Automatic bans are persisted (they hold in memory at once); rate-limit state of
    // quiet clients is dropped now and then.
    let mut stop_bans = stop_rx.clone();
    let (ban_lib, ban_guard) = (accounts.clone(), guard.clone());
    let bans_task = tokio::spawn(async move {
        let mut tidy = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                Some(ban) = new_bans_rx.recv() => {
                    if let Err(e) = ban_lib.ban(ban.net, ban.expires_at, &ban.reason, true).await {
                        tracing::error!(error = %e, "cannot save an automatic ban");
                    }
                }
                _ = tidy.tick() => ban_guard.tidy(),
                () = async { let _ = stop_bans.wait_for(|s| *s).await; } => return,
            }
        }
    });
    let mut workers = workers::Workers::start(
        libs.clone(),
        capturer,
        listen::own_sockets(&bound),
        worker_count,
        wake.clone(),
        events,
        stop_rx.clone(),
    )
    .map_err(ServeError::Workers)?;
    let mut loops = tokio::task::JoinSet::new();
    for (listener, local) in listeners {
        loops.spawn(conn::accept_loop(
            listener,
            shared.clone(),
            local,
            stop_rx.clone(),
        ));
    }
    // Mail ingest: one polling task per mailbox. Stopping cancels a poll mid-way, which
    // is safe: deletions happen only at QUIT, and a message's links and record commit
    // together or not at all.
    let mut mail = tokio::task::JoinSet::new();
    for mailbox in mailboxes {
        // A mailbox's links go to its owner's library (the serve command checked that the
        // owner exists).
        let library = match &mailbox.owner {
            Some(owner) => libs
                .of_user_name(owner)
                .await
                .map_err(|e| ServeError::Setup(format!("mailbox {}: {e}", mailbox.name)))?,
            None => library.clone(),
        };
        let (stop, wake) = (stop_rx.clone(), wake.clone());
        mail.spawn(async move {
            linksnap_mail::poll_loop(&library, &mailbox, stop, |result| {
                if result.as_ref().is_ok_and(|r| r.links_added > 0) {
                    wake.notify_waiters();
                }
            })
            .await;
        });
    }
    ready(&bound);

    shutdown.await;
    let began = Instant::now();
    tracing::info!("shutting down: no new connections; in-flight work gets {grace:?}");
    let _ = stop_tx.send(true);
    // The accept loops end and drop their listeners (Unix socket files are removed).
    while loops.join_next().await.is_some() {}
    while mail.join_next().await.is_some() {}
    let _ = bans_task.await;
    let drained = tokio::time::timeout(grace, shared.conns.drained())
        .await
        .is_ok();
    let mut report = ShutdownReport::default();
    if !drained {
        report.connections_cut = shared.conns.len();
    }
    let left = grace.saturating_sub(began.elapsed());
    if !workers.wait(left).await {
        for lib in libs.all().await {
            report.captures_returned += lib.return_running_jobs(false).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "returning unfinished captures to the queue failed");
                0
            });
        }
    }
    Ok(report)
}
