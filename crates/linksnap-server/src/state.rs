//! The state every request handler shares (`AppState`): the libraries, the connection
//! table, the guards and limits, the caches, the snapshot origin, the capture event
//! channel; and `SseGuard`, which counts the open event streams.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use linksnap_store::{Accounts, Library};
use tokio::sync::{Notify, broadcast, watch};

use crate::access::{names, signin, snaporigin};
use crate::addr::ListenAddr;
use crate::net::{conn, guard};
use crate::{bodies, cache, cli, config, transfer};

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The library a request works on: the principal's (see [`session::Scoped`]); outside
    /// a signed-in request, the data directory's own.
    pub library: Arc<Library>,
    /// The accounts: users, sessions, tokens, bans.
    pub accounts: Arc<Accounts>,
    /// Every library of the data directory (one per user).
    pub libs: Arc<linksnap_store::Libraries>,
    /// Woken when a capture is queued.
    pub wake: Arc<Notify>,
    /// Runs forwarded CLI commands (none: the CLI route answers 403).
    pub cli: Option<Arc<dyn cli::CliRunner>>,
    /// Capture progress, for the event streams.
    pub events: broadcast::Sender<LinkEvent>,
    /// Sign-in back-off per account.
    pub login_backoff: Arc<signin::Backoff>,
    /// Sign-in attempts per client address.
    pub login_limiter: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
    pub secure_cookies: bool,
    pub body_limit: usize,
    /// Request-body limits per route and the budget of body bytes in flight.
    pub bodies: Arc<bodies::Bodies>,
    pub sse_heartbeat: Duration,
    /// Event streams open now.
    pub sse_streams: Arc<AtomicUsize>,
    /// Turns true when the server shuts down: endless responses (event streams) end.
    pub stopping: watch::Receiver<bool>,
    /// Every live connection.
    pub conns: Arc<conn::ConnTable>,
    pub started: Instant,
    /// Bans, the per-address cap and rate limit, trusted proxies.
    pub guard: Arc<guard::Guard>,
    /// The addresses listened on (ports resolved).
    pub listeners: Arc<Vec<ListenAddr>>,
    pub max_connections: usize,
    pub metrics: config::MetricsAccess,
    /// Exports and imports running per library.
    pub transfers: Arc<transfer::Transfers>,
    /// Entries one import may hold.
    pub import_limit: usize,
    /// The names this server answers to (others: 421).
    pub names: Arc<names::ServerNames>,
    /// Snapshots on an origin of their own, when configured.
    pub snapshot_origin: Option<Arc<snaporigin::SnapshotOrigin>>,
    /// Responses of the busiest read routes, per library generation.
    pub read_cache: Arc<cache::ReadCache>,
}

impl AppState {
    /// Where an import into the request's library goes.
    pub(crate) fn import_into(&self) -> transfer::ImportInto<'_> {
        transfer::ImportInto {
            library: self.library.clone(),
            transfers: &self.transfers,
            max_entries: self.import_limit,
            wake: &self.wake,
        }
    }

    /// Tells the event streams that a link's capture state changed.
    pub fn notify(&self, id: i64, status: &'static str) {
        let _ = self.events.send(LinkEvent {
            library: crate::support::library_key(&self.library),
            id,
            status,
        });
    }
}

/// Counts an open event stream while it lives.
pub struct SseGuard(Arc<AtomicUsize>);

impl SseGuard {
    pub fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A link's capture state changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkEvent {
    /// Whose library (`library_key`): a stream only shows its own principal's.
    #[serde(skip)]
    pub library: std::sync::Arc<str>,
    pub id: i64,
    pub status: &'static str,
}
