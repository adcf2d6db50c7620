//! `linksnap serve`: the platform over HTTP.
//!
//! [`listen`] builds the sockets, [`conn`] accepts and serves connections and keeps the
//! connection table, [`api`] is the routes, [`cli`] the local CLI's way in, [`workers`] the
//! capture workers. [`serve`] puts them together and shuts them down gracefully.

pub mod api;
pub mod cli;
pub mod config;
pub mod conn;
pub mod json;
pub mod listen;
pub mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use linksnap_store::Library;
use tokio::sync::{Notify, watch};

pub use config::ServerConfig;
pub use listen::ListenAddr;

/// The data directory's private socket, for the CLI.
pub const SOCKET_NAME: &str = "linksnap.sock";

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub library: Arc<Library>,
    /// Woken when a capture is queued.
    pub wake: Arc<Notify>,
    /// Runs forwarded CLI commands (none: the CLI route answers 403).
    pub cli: Option<Arc<dyn cli::CliRunner>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {0}")]
    Bind(#[source] std::io::Error),
    #[error("cannot start the capture workers: {0}")]
    Workers(#[source] std::io::Error),
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
    config: ServerConfig,
    library: Arc<Library>,
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
    let private = library.data_dir().path.join(SOCKET_NAME);
    listeners.push((
        listen::bind_private_unix(&private, config.tcp.backlog).map_err(ServeError::Bind)?,
        true,
    ));
    let bound: Vec<ListenAddr> = listeners.iter().map(|(l, _)| l.local_addr()).collect();

    let wake = Arc::new(Notify::new());
    let state = AppState {
        library: library.clone(),
        wake: wake.clone(),
        cli,
    };
    let router = api::router(state, config.body_limit);
    let grace = config.shutdown_grace;
    let worker_count = config.workers;
    let shared = Arc::new(conn::Shared::new(config, router));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = workers::Workers::start(
        library.clone(),
        capturer,
        worker_count,
        wake,
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
    ready(&bound);

    shutdown.await;
    let began = Instant::now();
    tracing::info!("shutting down: no new connections; in-flight work gets {grace:?}");
    let _ = stop_tx.send(true);
    // The accept loops end and drop their listeners (Unix socket files are removed).
    while loops.join_next().await.is_some() {}
    let drained = tokio::time::timeout(grace, shared.conns.drained())
        .await
        .is_ok();
    let mut report = ShutdownReport::default();
    if !drained {
        report.connections_cut = shared.conns.len();
    }
    let left = grace.saturating_sub(began.elapsed());
    if !workers.wait(left).await {
        report.captures_returned = library.return_running_jobs().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "returning unfinished captures to the queue failed");
            0
        });
    }
    Ok(report)
}
