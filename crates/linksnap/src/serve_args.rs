//! The flags of `linksnap serve`, each named like the setting it overrides. A leaf beside
//! `args`.

use std::path::PathBuf;

use clap::Args;

use crate::args::FetchArgs;

/// Flags of `serve`; each overrides the config file and the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on ADDR: IP:PORT ([::]:8080 for IPv6) or unix:/path (repeatable; default
    /// 127.0.0.1:8080). A private socket for the CLI is always opened in the data directory.
    #[arg(long = "listen", value_name = "ADDR")]
    pub(crate) listen: Vec<String>,
    /// A TOML configuration file (default: config.toml in the data directory, if present).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Capture workers (0: none; captures stay queued).
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<String>,
    /// Connections served at once.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<String>,
    /// The listen backlog.
    #[arg(long, value_name = "N")]
    pub(crate) backlog: Option<String>,
    /// Time a client has to send a request's headers (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) header_read_timeout: Option<String>,
    /// Idle keep-alive connections are closed after this (e.g. 75s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) idle_timeout: Option<String>,
    /// On SIGTERM/SIGINT, time for in-flight requests and captures (e.g. 20s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) shutdown_grace: Option<String>,
    /// Largest request body of the upload routes (imports, the CLI's input), bytes.
    #[arg(long, value_name = "BYTES")]
    pub(crate) body_limit: Option<String>,
    /// Largest request body of every other route (forms, JSON, sign-in), bytes.
    #[arg(long, value_name = "BYTES")]
    pub(crate) form_limit: Option<String>,
    /// Request-body bytes held at once across all connections; more wait.
    #[arg(long, value_name = "BYTES")]
    pub(crate) body_budget: Option<String>,
    /// Exports and imports one library runs at once (more get 429).
    #[arg(long, value_name = "N")]
    pub(crate) transfers_per_user: Option<String>,
    /// Entries one import may hold.
    #[arg(long, value_name = "N")]
    pub(crate) import_limit: Option<String>,
    /// How long a body waits for room in the budget before 503 (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) body_budget_wait: Option<String>,
    /// Bytes of responses the read caches keep (lists, searches, list pages; 0: none).
    #[arg(long, value_name = "BYTES")]
    pub(crate) read_cache: Option<String>,
    /// TCP keepalive of accepted connections: `off`, or IDLE,INTERVAL,COUNT (default 60s,5s,3).
    #[arg(long, value_name = "SPEC")]
    pub(crate) keepalive: Option<String>,
    /// Mark cookies Secure: true, false, or auto (the default: true when listening beyond
    /// loopback; plain HTTP on a LAN needs false).
    #[arg(long, value_name = "BOOL")]
    pub(crate) secure_cookies: Option<String>,
    /// Sign-in attempts allowed per client address and minute.
    #[arg(long, value_name = "N")]
    pub(crate) login_attempts: Option<String>,
    /// The longest an account waits between sign-in attempts after 5 failures in a row
    /// (doubling from 1s; 0s: no per-account back-off).
    #[arg(long, value_name = "DURATION")]
    pub(crate) login_backoff_max: Option<String>,
    /// How often event streams send a heartbeat (e.g. 15s).
    #[arg(long, value_name = "DURATION")]
    pub(crate) sse_heartbeat: Option<String>,
    /// Connections one client address may hold (IPv6: per --ipv6-prefix; 0: no cap).
    #[arg(long, value_name = "N")]
    pub(crate) max_conns_per_ip: Option<String>,
    /// IPv6 clients are grouped by this prefix length (default 64).
    #[arg(long, value_name = "BITS")]
    ipv6_prefix: Option<String>,
    /// Requests per client address: `off` or RATE/s[,BURST] (default 100/s,200).
    #[arg(long, value_name = "SPEC")]
    pub(crate) rate_limit: Option<String>,
    /// Automatic bans for clients that keep hitting the cap: `off` or COUNT/WINDOW,BAN
    /// (default 100/60s,10m).
    #[arg(long, value_name = "SPEC")]
    pub(crate) autoban: Option<String>,
    /// A proxy whose Forwarded / X-Forwarded-For headers name the real client (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub(crate) trusted_proxies: Vec<String>,
    /// Who may read /metrics: loopback (default), token, off.
    #[arg(long, value_name = "WHO")]
    pub(crate) metrics: Option<String>,
    /// Serve snapshots from this origin, another name of this server
    /// (http(s)://HOST[:PORT]); the app's origin then never serves one.
    #[arg(long, value_name = "ORIGIN")]
    pub(crate) snapshot_origin: Option<String>,
    /// A name this server answers to (HOST or HOST:PORT, repeatable) besides its IP
    /// addresses and localhost: requests for other names get 421 (against DNS rebinding).
    #[arg(long = "public-name", value_name = "NAME")]
    pub(crate) public_names: Vec<String>,
    #[command(flatten)]
    pub(crate) fetch: FetchArgs,
}

impl ServeArgs {
    pub(crate) fn flags(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut v = Vec::new();
        if !self.listen.is_empty() {
            v.push(("--listen", "LINKSNAP_LISTEN", self.listen.join(",")));
        }
        if !self.public_names.is_empty() {
            v.push((
                "--public-name",
                "LINKSNAP_PUBLIC_NAMES",
                self.public_names.join(","),
            ));
        }
        if !self.trusted_proxies.is_empty() {
            v.push((
                "--trusted-proxy",
                "LINKSNAP_TRUSTED_PROXIES",
                self.trusted_proxies.join(","),
            ));
        }
        for (flag, var, value) in [
            ("--workers", "LINKSNAP_WORKERS", &self.workers),
            (
                "--max-connections",
                "LINKSNAP_MAX_CONNECTIONS",
                &self.max_connections,
            ),
            ("--backlog", "LINKSNAP_BACKLOG", &self.backlog),
            (
                "--header-read-timeout",
                "LINKSNAP_HEADER_READ_TIMEOUT",
                &self.header_read_timeout,
            ),
            (
                "--idle-timeout",
                "LINKSNAP_IDLE_TIMEOUT",
                &self.idle_timeout,
            ),
            (
                "--shutdown-grace",
                "LINKSNAP_SHUTDOWN_GRACE",
                &self.shutdown_grace,
            ),
            ("--body-limit", "LINKSNAP_BODY_LIMIT", &self.body_limit),
            ("--form-limit", "LINKSNAP_FORM_LIMIT", &self.form_limit),
            ("--body-budget", "LINKSNAP_BODY_BUDGET", &self.body_budget),
            (
                "--transfers-per-user",
                "LINKSNAP_TRANSFERS_PER_USER",
                &self.transfers_per_user,
            ),
            (
                "--import-limit",
                "LINKSNAP_IMPORT_LIMIT",
                &self.import_limit,
            ),
            (
                "--body-budget-wait",
                "LINKSNAP_BODY_BUDGET_WAIT",
                &self.body_budget_wait,
            ),
            ("--read-cache", "LINKSNAP_READ_CACHE", &self.read_cache),
            ("--keepalive", "LINKSNAP_KEEPALIVE", &self.keepalive),
            (
                "--secure-cookies",
                "LINKSNAP_SECURE_COOKIES",
                &self.secure_cookies,
            ),
            (
                "--login-attempts",
                "LINKSNAP_LOGIN_ATTEMPTS",
                &self.login_attempts,
            ),
            (
                "--login-backoff-max",
                "LINKSNAP_LOGIN_BACKOFF_MAX",
                &self.login_backoff_max,
            ),
            (
                "--sse-heartbeat",
                "LINKSNAP_SSE_HEARTBEAT",
                &self.sse_heartbeat,
            ),
            (
                "--max-conns-per-ip",
                "LINKSNAP_MAX_CONNS_PER_IP",
                &self.max_conns_per_ip,
            ),
            ("--ipv6-prefix", "LINKSNAP_IPV6_PREFIX", &self.ipv6_prefix),
            ("--rate-limit", "LINKSNAP_RATE_LIMIT", &self.rate_limit),
            ("--autoban", "LINKSNAP_AUTOBAN", &self.autoban),
            ("--metrics", "LINKSNAP_METRICS", &self.metrics),
            (
                "--snapshot-origin",
                "LINKSNAP_SNAPSHOT_ORIGIN",
                &self.snapshot_origin,
            ),
        ] {
            if let Some(value) = value {
                v.push((flag, var, value.clone()));
            }
        }
        v
    }
}
