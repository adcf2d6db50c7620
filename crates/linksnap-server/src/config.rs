//! Server configuration: defaults, then a TOML file, then environment variables, then
//! flags (the binary applies those last). Every limit is named here with its default.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::addr::ListenAddr;

/// The default listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `listen(2)` backlog.
pub const DEFAULT_BACKLOG: i32 = 1024;
/// Connections served at once; `accept` waits for a free slot beyond this.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// TCP keepalive: idle time before the first probe, interval between probes, probes before
/// the peer is declared dead (the seed's values: 60 s / 5 s / 3).
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_KEEPALIVE_COUNT: u32 = 3;
/// TCP_DEFER_ACCEPT: how long the kernel holds a connection that has sent nothing.
pub const DEFAULT_DEFER_ACCEPT: Duration = Duration::from_secs(5);
/// Time a client has to send a request's headers (against slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection with no request in flight and no traffic is closed after this.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Largest request body of the routes that take files (imports, the CLI's standard
/// input): an import file is the largest thing anyone sends.
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;
/// Largest request body of every other route (forms, JSON, sign-in): a note at its cap
/// (64 KiB), percent-encoded, fits.
pub const DEFAULT_FORM_LIMIT: usize = 256 << 10;
/// Request-body bytes held at once across all connections: bodies beyond it wait for
/// earlier ones to finish instead of stacking up in memory.
pub const DEFAULT_BODY_BUDGET: usize = 256 << 20;
/// Exports and imports one library runs at once; more get 429.
pub const DEFAULT_TRANSFERS_PER_USER: usize = 2;
/// How long a request waits for room in the body budget before 503.
pub const DEFAULT_BODY_BUDGET_WAIT: Duration = Duration::from_secs(30);
/// Bytes the read caches keep: a page of 50 links is about 15 KB as JSON, so this holds
/// some thousands of recent lists and searches.
pub const DEFAULT_READ_CACHE: u64 = 32 << 20;
/// Capture workers inside `serve`.
pub const DEFAULT_WORKERS: usize = 2;
/// On SIGTERM/SIGINT: how long in-flight requests and captures get to finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Sign-in attempts allowed per client address and minute.
pub const DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;
/// The longest an account waits between sign-in attempts after repeated failures.
pub const DEFAULT_LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A comment on every event stream this often: finds browsers that vanished.
pub const DEFAULT_SSE_HEARTBEAT: Duration = Duration::from_secs(15);

/// Connections one client address (an IPv6 client: its prefix) may hold at once; more
/// are reset right after `accept`.
pub const DEFAULT_MAX_CONNS_PER_IP: u32 = 128;
/// IPv6 clients are grouped by this prefix for the per-address cap, rate limit and bans.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Requests per second one client address may make (and the burst above it).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 100,
    per: Duration::from_secs(1),
    burst: 200,
};
/// A client refused this many times by the per-address cap within the window is banned.
pub const DEFAULT_AUTOBAN: Autoban = Autoban {
    threshold: 100,
    window: Duration::from_secs(60),
    ban_for: Duration::from_secs(600),
};

/// The per-address request rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// `requests` every `per` (one second or one minute)…
    pub requests: u32,
    pub per: Duration,
    /// …with bursts of up to this many.
    pub burst: u32,
}

/// Automatic temporary bans for a client that keeps hitting the per-address cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autoban {
    /// Refusals…
    pub threshold: u32,
    /// …within this long…
    pub window: Duration,
    /// …ban the address for this long.
    pub ban_for: Duration,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Clients on loopback or the Unix sockets, no credentials.
    Loopback,
    /// Like the API: a token or an administrator's session (or the private socket).
    Token,
    Off,
}

impl FromStr for MetricsAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "loopback" => Ok(Self::Loopback),
            "token" => Ok(Self::Token),
            "off" => Ok(Self::Off),
            _ => Err(format!("`{s}`: expected loopback, token or off")),
        }
    }
}

/// TCP options for listeners and the connections they accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    pub backlog: i32,
    pub nodelay: bool,
    /// `None`: TCP_DEFER_ACCEPT off.
    pub defer_accept: Option<Duration>,
    /// `None`: SO_KEEPALIVE off.
    pub keepalive: Option<Keepalive>,
}

/// SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Default for TcpOptions {
    fn default() -> Self {
        Self {
            backlog: DEFAULT_BACKLOG,
            nodelay: true,
            defer_accept: Some(DEFAULT_DEFER_ACCEPT),
            keepalive: Some(Keepalive {
                idle: DEFAULT_KEEPALIVE_IDLE,
                interval: DEFAULT_KEEPALIVE_INTERVAL,
                count: DEFAULT_KEEPALIVE_COUNT,
            }),
        }
    }
}

/// Everything `serve` needs besides the library.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<ListenAddr>,
    pub tcp: TcpOptions,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// Largest body of the upload routes (imports, the CLI's input).
    pub body_limit: usize,
    /// Largest body of every other route.
    pub form_limit: usize,
    /// Body bytes held at once across all connections.
    pub body_budget: usize,
    /// How long a body waits for room in the budget.
    pub body_budget_wait: Duration,
    /// Exports and imports one library runs at once.
    pub transfers_per_user: usize,
    /// Entries one import may hold.
    pub import_limit: usize,
    /// Bytes of responses kept by the read caches (0: none).
    pub read_cache: u64,
    pub workers: usize,
    pub shutdown_grace: Duration,
    /// Mark cookies `Secure` (served over TLS, directly or behind a proxy). `None`: yes
    /// when any listener is reachable beyond loopback, no on loopback alone.
    pub secure_cookies: Option<bool>,
    pub login_attempts_per_minute: u32,
    /// The longest per-account sign-in back-off (zero: none).
    pub login_backoff_max: Duration,
    pub sse_heartbeat: Duration,
    /// 0: no cap.
    pub max_conns_per_ip: u32,
    pub ipv6_prefix: u8,
    /// `None`: no request-rate limit.
    pub rate_limit: Option<RateLimit>,
    /// `None`: no automatic bans.
    pub autoban: Option<Autoban>,
    /// Proxies whose `Forwarded`/`X-Forwarded-For` name the real client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: MetricsAccess,
    /// Serve snapshots from this origin (`http(s)://host[:port]`, another name for this
    /// server) instead of the app's.
    pub snapshot_origin: Option<String>,
    /// Names (`host` or `host:port`) this server answers to besides IP addresses and
    /// `localhost`; requests for any other name are answered 421.
    pub public_names: Vec<String>,
    /// The `[[mail]]` mailboxes as written.
    pub mail: Vec<linksnap_mail::MailboxFile>,
    /// The mailboxes `serve` polls: [`ServerConfig::resolve_mail`] fills this (it reads
    /// the passwords, so the binary calls it, with the process environment).
    pub mailboxes: Vec<linksnap_mail::Mailbox>,
    /// Relative paths in `[[mail]]` are taken from here (the config file's directory).
    pub mail_base: std::path::PathBuf,
    /// How the library captures, as the file says (the binary weighs it against its
    /// flags and environment).
    pub capture: CaptureFile,
}

/// The capture settings of the config file: `engine = "auto"|"browser"|"static"`,
/// `chromium = "/path"`, `browser_tabs = 2`, `pdf = true`. Read by every command that
/// captures into the library, not only `serve`; the binary, which knows the engines,
/// checks `engine`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CaptureFile {
    pub engine: Option<String>,
    pub chromium: Option<std::path::PathBuf>,
    pub browser_tabs: Option<usize>,
    pub pdf: Option<bool>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_LISTEN.parse().expect("the default address parses")],
            tcp: TcpOptions::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            form_limit: DEFAULT_FORM_LIMIT,
            body_budget: DEFAULT_BODY_BUDGET,
            body_budget_wait: DEFAULT_BODY_BUDGET_WAIT,
            transfers_per_user: DEFAULT_TRANSFERS_PER_USER,
            import_limit: linksnap_store::import::DEFAULT_MAX_IMPORT_ENTRIES,
            read_cache: DEFAULT_READ_CACHE,
            workers: DEFAULT_WORKERS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            secure_cookies: None,
            login_attempts_per_minute: DEFAULT_LOGIN_ATTEMPTS_PER_MINUTE,
            login_backoff_max: DEFAULT_LOGIN_BACKOFF_MAX,
            sse_heartbeat: DEFAULT_SSE_HEARTBEAT,
            max_conns_per_ip: DEFAULT_MAX_CONNS_PER_IP,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            autoban: Some(DEFAULT_AUTOBAN),
            trusted_proxies: Vec::new(),
            metrics: MetricsAccess::Loopback,
            snapshot_origin: None,
            public_names: Vec::new(),
            mail: Vec::new(),
            mailboxes: Vec::new(),
            mail_base: std::path::PathBuf::from("."),
            capture: CaptureFile::default(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{name}={value}: {message}")]
    Env {
        name: &'static str,
        value: String,
        message: String,
    },
}

/// The file's shape. Unknown keys are errors, so a misspelt setting is never silently
/// ignored. Durations are written like `60s`, `1m 30s`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Vec<String>>,
    backlog: Option<i32>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_limit: Option<usize>,
    form_limit: Option<usize>,
    body_budget: Option<usize>,
    body_budget_wait: Option<String>,
    transfers_per_user: Option<usize>,
    import_limit: Option<usize>,
    read_cache: Option<u64>,
    workers: Option<usize>,
    shutdown_grace: Option<String>,
    secure_cookies: Option<bool>,
    login_attempts_per_minute: Option<u32>,
    login_backoff_max: Option<String>,
    sse_heartbeat: Option<String>,
    tcp: Option<TcpFile>,
    max_conns_per_ip: Option<u32>,
    ipv6_prefix: Option<u8>,
    /// `"100/s,200"` (rate, burst) or `"off"`.
    rate_limit: Option<String>,
    /// `"100/60s,10m"` (refusals/window, ban time) or `"off"`.
    autoban: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    metrics: Option<String>,
    snapshot_origin: Option<String>,
    public_names: Option<Vec<String>>,
    mail: Option<Vec<linksnap_mail::MailboxFile>>,
    engine: Option<String>,
    chromium: Option<std::path::PathBuf>,
    browser_tabs: Option<usize>,
    pdf: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpFile {
    nodelay: Option<bool>,
    /// `"0s"` turns it off.
    defer_accept: Option<String>,
    keepalive: Option<bool>,
    keepalive_idle: Option<String>,
    keepalive_interval: Option<String>,
    keepalive_count: Option<u32>,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration: {e}"))
}

fn off_if_zero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl ServerConfig {
    /// Whether cookies are marked `Secure`: as configured, else when a TCP listener is
    /// reachable beyond loopback (Unix sockets are local).
    #[must_use]
    pub fn cookies_secure(&self) -> bool {
        self.secure_cookies.unwrap_or_else(|| {
            self.listen
                .iter()
                .any(|l| matches!(l, ListenAddr::Tcp(a) if !a.ip().is_loopback()))
        })
    }

    /// Applies a TOML file's settings.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the bad setting.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            self.mail_base = dir.to_path_buf();
        }
        self.apply_toml(&text)
            .map_err(|message| ConfigError::Parse {
                path: shown,
                message,
            })
    }

    fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        if let Some(list) = f.listen {
            self.listen = list
                .iter()
                .map(|a| a.parse().map_err(|e| format!("listen: {e}")))
                .collect::<Result<_, String>>()?;
        }
        set(&mut self.tcp.backlog, f.backlog);
        set(&mut self.max_connections, f.max_connections);
        set(&mut self.body_limit, f.body_limit);
        set(&mut self.form_limit, f.form_limit);
        set(&mut self.body_budget, f.body_budget);
        set(&mut self.transfers_per_user, f.transfers_per_user);
        set(&mut self.import_limit, f.import_limit);
        if let Some(d) = f.body_budget_wait {
            self.body_budget_wait = duration(&d)?;
        }
        set(&mut self.read_cache, f.read_cache);
        set(&mut self.workers, f.workers);
        if let Some(d) = f.header_read_timeout {
            self.header_read_timeout = duration(&d)?;
        }
        if let Some(d) = f.idle_timeout {
            self.idle_timeout = duration(&d)?;
        }
        if let Some(d) = f.shutdown_grace {
            self.shutdown_grace = duration(&d)?;
        }
        if let Some(b) = f.secure_cookies {
            self.secure_cookies = Some(b);
        }
        set(
            &mut self.login_attempts_per_minute,
            f.login_attempts_per_minute,
        );
        if let Some(d) = f.login_backoff_max {
            self.login_backoff_max = duration(&d)?;
        }
        if let Some(d) = f.sse_heartbeat {
            self.sse_heartbeat = duration(&d)?;
        }
        if let Some(mail) = f.mail {
            self.mail = mail;
        }
        let capture = CaptureFile {
            engine: f.engine,
            chromium: f.chromium,
            browser_tabs: f.browser_tabs,
            pdf: f.pdf,
        };
        if capture.browser_tabs == Some(0) {
            return Err("browser_tabs: must be at least 1".to_owned());
        }
        self.capture = capture;
        set(&mut self.max_conns_per_ip, f.max_conns_per_ip);
        set(&mut self.ipv6_prefix, f.ipv6_prefix);
        if let Some(r) = f.rate_limit {
            self.rate_limit = parse_rate_limit(&r)?;
        }
        if let Some(a) = f.autoban {
            self.autoban = parse_autoban(&a)?;
        }
        if let Some(list) = f.trusted_proxies {
            self.trusted_proxies = parse_nets(list.iter().map(String::as_str))?;
        }
        if let Some(m) = f.metrics {
            self.metrics = m.parse()?;
        }
        if let Some(o) = f.snapshot_origin {
            self.snapshot_origin = Some(crate::addr::parse_origin(&o)?);
        }
        if let Some(names) = f.public_names {
            self.public_names = names
                .iter()
                .map(|n| crate::addr::parse_public_name(n))
                .collect::<Result<_, _>>()?;
        }
        if let Some(t) = f.tcp {
            set(&mut self.tcp.nodelay, t.nodelay);
            if let Some(d) = t.defer_accept {
                self.tcp.defer_accept = off_if_zero(duration(&d)?);
            }
            let mut ka = self.tcp.keepalive.unwrap_or(Keepalive {
                idle: DEFAULT_KEEPALIVE_IDLE,
                interval: DEFAULT_KEEPALIVE_INTERVAL,
                count: DEFAULT_KEEPALIVE_COUNT,
            });
            if let Some(d) = t.keepalive_idle {
                ka.idle = duration(&d)?;
            }
            if let Some(d) = t.keepalive_interval {
                ka.interval = duration(&d)?;
            }
            set(&mut ka.count, t.keepalive_count);
            let on = t.keepalive.unwrap_or(self.tcp.keepalive.is_some());
            self.tcp.keepalive = on.then_some(ka);
        }
        self.check()
    }

    /// Applies `LINKSNAP_*` environment variables (read through `var`, so tests need not
    /// touch the process environment). See [`ENV_VARS`].
    ///
    /// # Errors
    /// [`ConfigError::Env`] naming the variable.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for &(name, _) in ENV_VARS {
            let Some(value) = var(name) else { continue };
            self.apply_setting(name, &value)
                .map_err(|message| ConfigError::Env {
                    name,
                    value: value.clone(),
                    message,
                })?;
        }
        Ok(())
    }

    /// Applies one setting named like its environment variable (flags use this too).
    ///
    /// # Errors
    /// What is wrong with the value.
    pub fn apply_setting(&mut self, name: &str, value: &str) -> Result<(), String> {
        let num = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{e}"));
        match name {
            "LINKSNAP_LISTEN" => {
                self.listen = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|a| a.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "LINKSNAP_BACKLOG" => {
                self.tcp.backlog = i32::try_from(num(value)?).map_err(|e| e.to_string())?;
            }
            "LINKSNAP_MAX_CONNECTIONS" => self.max_connections = num(value)? as usize,
            "LINKSNAP_WORKERS" => self.workers = num(value)? as usize,
            "LINKSNAP_BODY_LIMIT" => self.body_limit = num(value)? as usize,
            "LINKSNAP_FORM_LIMIT" => self.form_limit = num(value)? as usize,
            "LINKSNAP_BODY_BUDGET" => self.body_budget = num(value)? as usize,
            "LINKSNAP_BODY_BUDGET_WAIT" => self.body_budget_wait = duration(value)?,
            "LINKSNAP_TRANSFERS_PER_USER" => self.transfers_per_user = num(value)? as usize,
            "LINKSNAP_IMPORT_LIMIT" => self.import_limit = num(value)? as usize,
            "LINKSNAP_READ_CACHE" => self.read_cache = num(value)?,
            "LINKSNAP_HEADER_READ_TIMEOUT" => self.header_read_timeout = duration(value)?,
            "LINKSNAP_IDLE_TIMEOUT" => self.idle_timeout = duration(value)?,
            "LINKSNAP_SHUTDOWN_GRACE" => self.shutdown_grace = duration(value)?,
            "LINKSNAP_SECURE_COOKIES" => {
                self.secure_cookies = match value.trim() {
                    "1" | "true" | "yes" => Some(true),
                    "0" | "false" | "no" => Some(false),
                    "auto" => None,
                    _ => return Err("expected true, false or auto".into()),
                };
            }
            "LINKSNAP_LOGIN_ATTEMPTS" => {
                self.login_attempts_per_minute =
                    u32::try_from(num(value)?).map_err(|e| e.to_string())?;
            }
            "LINKSNAP_SSE_HEARTBEAT" => self.sse_heartbeat = duration(value)?,
            "LINKSNAP_LOGIN_BACKOFF_MAX" => self.login_backoff_max = duration(value)?,
            "LINKSNAP_MAX_CONNS_PER_IP" => {
                self.max_conns_per_ip = u32::try_from(num(value)?).map_err(|e| e.to_string())?;
            }
            "LINKSNAP_IPV6_PREFIX" => {
                self.ipv6_prefix = u8::try_from(num(value)?).map_err(|e| e.to_string())?;
            }
            "LINKSNAP_RATE_LIMIT" => self.rate_limit = parse_rate_limit(value)?,
            "LINKSNAP_AUTOBAN" => self.autoban = parse_autoban(value)?,
            "LINKSNAP_TRUSTED_PROXIES" => {
                self.trusted_proxies =
                    parse_nets(value.split(',').filter(|s| !s.trim().is_empty()))?;
            }
            "LINKSNAP_METRICS" => self.metrics = value.parse()?,
            "LINKSNAP_SNAPSHOT_ORIGIN" => {
                self.snapshot_origin = match value.trim() {
                    "" | "off" => None,
                    o => Some(crate::addr::parse_origin(o)?),
                };
            }
            "LINKSNAP_PUBLIC_NAMES" => {
                self.public_names = value
                    .split(',')
                    .filter(|n| !n.trim().is_empty())
                    .map(crate::addr::parse_public_name)
                    .collect::<Result<_, _>>()?;
            }
            "LINKSNAP_KEEPALIVE" => {
                // "off", or IDLE,INTERVAL,COUNT like "60s,5s,3".
                if value.trim() == "off" {
                    self.tcp.keepalive = None;
                } else {
                    let parts: Vec<&str> = value.split(',').collect();
                    let [idle, interval, count] = parts[..] else {
                        return Err("expected `off` or IDLE,INTERVAL,COUNT (e.g. 60s,5s,3)".into());
                    };
                    self.tcp.keepalive = Some(Keepalive {
                        idle: duration(idle)?,
                        interval: duration(interval)?,
                        count: u32::try_from(num(count)?).map_err(|e| e.to_string())?,
                    });
                }
            }
            _ => {}
        }
        self.check()
    }

    /// The `[[mail]]` mailboxes checked, passwords read (`env` gives variables). Names must
    /// differ: the record of what was ingested is kept by name.
    ///
    /// # Errors
    /// The first mailbox that cannot be used.
    pub fn resolve_mail(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<linksnap_mail::Mailbox>, linksnap_mail::config::MailConfigError> {
        let mut out: Vec<linksnap_mail::Mailbox> = Vec::new();
        for file in &self.mail {
            let mailbox = file.resolve(&self.mail_base, &env)?;
            if out.iter().any(|m| m.name == mailbox.name) {
                return Err(linksnap_mail::config::MailConfigError::Invalid {
                    mailbox: mailbox.name,
                    message: "two [[mail]] tables have this name; give each its own `name`".into(),
                });
            }
            out.push(mailbox);
        }
        Ok(out)
    }

    /// Refuses settings that cannot work.
    fn check(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("at least one listen address is needed".into());
        }
        if self.tcp.backlog < 1 {
            return Err("backlog must be at least 1".into());
        }
        if self.max_connections < 1 {
            return Err("max_connections must be at least 1".into());
        }
        if self.login_attempts_per_minute == 0 {
            return Err("login_attempts_per_minute must be at least 1".into());
        }
        if self.sse_heartbeat.is_zero() {
            return Err("sse_heartbeat must be above zero".into());
        }
        if self.ipv6_prefix == 0 || self.ipv6_prefix > 128 {
            return Err("ipv6_prefix must be from 1 to 128".into());
        }
        if self.form_limit == 0 || self.body_limit == 0 {
            return Err("body_limit and form_limit must be above zero".into());
        }
        if self.body_budget < self.form_limit.max(self.body_limit) {
            return Err(format!(
                "body_budget ({}) must hold at least one largest body ({})",
                self.body_budget,
                self.form_limit.max(self.body_limit)
            ));
        }
        if self.transfers_per_user == 0 || self.import_limit == 0 {
            return Err("transfers_per_user and import_limit must be above zero".into());
        }
        if self.workers > 64 {
            return Err("workers must be at most 64".into());
        }
        if let Some(ka) = self.tcp.keepalive
            && (ka.idle.is_zero() || ka.interval.is_zero() || ka.count == 0)
        {
            return Err("keepalive idle, interval and count must be above zero".into());
        }
        Ok(())
    }
}

/// `100/s,200` (requests per second, then the burst), `30/m` (per minute; burst = 2 × rate)
/// or `off`.
fn parse_rate_limit(s: &str) -> Result<Option<RateLimit>, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(None);
    }
    let bad =
        || format!("`{s}`: expected off or RATE/s[,BURST] or RATE/m[,BURST] (e.g. 100/s,200)");
    let (rate, burst) = s.split_once(',').map_or((s, None), |(r, b)| (r, Some(b)));
    let rate = rate.trim();
    let (number, per) = if let Some(n) = rate.strip_suffix("/s") {
        (n, Duration::from_secs(1))
    } else if let Some(n) = rate.strip_suffix("/m") {
        (n, Duration::from_secs(60))
    } else {
        return Err(bad());
    };
    let requests: u32 = number
        .trim()
        .parse()
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(bad)?;
    let burst = match burst {
        Some(b) => b.trim().parse().ok().filter(|&b| b > 0).ok_or_else(bad)?,
        None => requests.saturating_mul(2),
    };
    Ok(Some(RateLimit {
        requests,
        per,
        burst,
    }))
}

/// `100/60s,10m` (refusals within a window, then a ban this long) or `off`.
fn parse_autoban(s: &str) -> Result<Option<Autoban>, String> {
    let s = s.trim();
    if s == "off" {
        return Ok(None);
    }
    let bad = || format!("`{s}`: expected off or COUNT/WINDOW,BAN (e.g. 100/60s,10m)");
    let (rule, ban) = s.split_once(',').ok_or_else(bad)?;
    let (count, window) = rule.split_once('/').ok_or_else(bad)?;
    let threshold: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(bad)?;
    let window = duration(window)?;
    let ban_for = duration(ban)?;
    if window.is_zero() || ban_for.is_zero() {
        return Err(bad());
    }
    Ok(Some(Autoban {
        threshold,
        window,
        ban_for,
    }))
}

/// Addresses or CIDR ranges (`10.0.0.1`, `10.0.0.0/8`, `::1`).
pub fn parse_nets<'a>(list: impl Iterator<Item = &'a str>) -> Result<Vec<ipnet::IpNet>, String> {
    list.map(|s| parse_net(s.trim())).collect()
}

/// A ban as asked for: the range, and when it ends (`for` is a duration like `1h`; empty
/// or absent: until lifted), as Unix milliseconds.
///
/// # Errors
/// What does not parse, naming it.
pub fn parse_ban(net: &str, how_long: Option<&str>) -> Result<(ipnet::IpNet, Option<i64>), String> {
    let net = parse_net(net.trim())?;
    let expires_at = match how_long.map(str::trim) {
        None | Some("") => None,
        Some(d) => {
            let d = duration(d).map_err(|e| format!("for: {e}"))?;
            Some(
                linksnap_store::now_ms()
                    .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            )
        }
    };
    Ok((net, expires_at))
}

/// An address or a CIDR range; an address is its own /32 or /128.
///
/// # Errors
/// What does not parse.
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(net) = s.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| format!("`{s}` is not an address or CIDR range"))
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// The environment variables `serve` reads, with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("LINKSNAP_LISTEN", "listen addresses, comma-separated"),
    ("LINKSNAP_BACKLOG", "listen backlog"),
    ("LINKSNAP_MAX_CONNECTIONS", "connections served at once"),
    ("LINKSNAP_WORKERS", "capture workers"),
    (
        "LINKSNAP_BODY_LIMIT",
        "largest request body of imports and the CLI, bytes",
    ),
    (
        "LINKSNAP_FORM_LIMIT",
        "largest request body of every other route, bytes",
    ),
    (
        "LINKSNAP_BODY_BUDGET",
        "request-body bytes held at once, all connections",
    ),
    (
        "LINKSNAP_TRANSFERS_PER_USER",
        "exports and imports one library runs at once",
    ),
    ("LINKSNAP_IMPORT_LIMIT", "entries one import may hold"),
    (
        "LINKSNAP_BODY_BUDGET_WAIT",
        "how long a body waits for the budget before 503",
    ),
    (
        "LINKSNAP_READ_CACHE",
        "bytes of responses the read caches keep (0: none)",
    ),
    (
        "LINKSNAP_HEADER_READ_TIMEOUT",
        "time to send request headers",
    ),
    (
        "LINKSNAP_IDLE_TIMEOUT",
        "idle keep-alive connections closed after",
    ),
    (
        "LINKSNAP_SHUTDOWN_GRACE",
        "time in-flight work gets on shutdown",
    ),
    ("LINKSNAP_KEEPALIVE", "`off` or IDLE,INTERVAL,COUNT"),
    (
        "LINKSNAP_PUBLIC_NAMES",
        "names the server answers to, comma-separated (others: 421)",
    ),
    (
        "LINKSNAP_SECURE_COOKIES",
        "mark cookies Secure: true, false, auto (beyond loopback)",
    ),
    (
        "LINKSNAP_LOGIN_ATTEMPTS",
        "sign-in attempts per address and minute",
    ),
    ("LINKSNAP_SSE_HEARTBEAT", "heartbeat of event streams"),
    (
        "LINKSNAP_LOGIN_BACKOFF_MAX",
        "longest per-account sign-in back-off (0s: none)",
    ),
    (
        "LINKSNAP_MAX_CONNS_PER_IP",
        "connections per client address (0: no cap)",
    ),
    (
        "LINKSNAP_IPV6_PREFIX",
        "IPv6 clients grouped by this prefix",
    ),
    ("LINKSNAP_RATE_LIMIT", "`off` or RATE/s[,BURST] per address"),
    ("LINKSNAP_AUTOBAN", "`off` or COUNT/WINDOW,BAN"),
    (
        "LINKSNAP_TRUSTED_PROXIES",
        "proxies whose Forwarded headers are believed",
    ),
    (
        "LINKSNAP_METRICS",
        "who reads /metrics: loopback, token, off",
    ),
];

impl FromStr for ServerConfig {
    type Err = String;

    /// A configuration from TOML text over the defaults.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut c = Self::default();
        c.apply_toml(text)?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_beyond_loopback_unless_told() {
        let at = |listen: &[&str], setting: Option<bool>| {
            ServerConfig {
                listen: listen.iter().map(|l| l.parse().unwrap()).collect(),
                secure_cookies: setting,
                ..ServerConfig::default()
            }
            .cookies_secure()
        };
        assert!(!at(&["127.0.0.1:8080"], None));
        assert!(!at(&["[::1]:8080", "unix:/run/linksnap.sock"], None));
        assert!(at(&["0.0.0.0:8080"], None));
        assert!(at(&["127.0.0.1:8080", "192.0.2.1:8080"], None));
        assert!(!at(&["0.0.0.0:8080"], Some(false)));
        assert!(at(&["127.0.0.1:8080"], Some(true)));
    }

    #[test]
    fn file_then_environment_each_override_the_defaults() {
        let c: ServerConfig = r#"
            listen = ["[::1]:9000", "unix:/tmp/x.sock"]
            workers = 4
            idle_timeout = "2m"
            [tcp]
            keepalive_idle = "30s"
            defer_accept = "0s"
        "#
        .parse()
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.workers, 4);
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.tcp.keepalive.unwrap().idle, Duration::from_secs(30));
        assert_eq!(c.tcp.keepalive.unwrap().count, DEFAULT_KEEPALIVE_COUNT);
        assert_eq!(c.tcp.defer_accept, None);
        let mut c = c;
        c.apply_env(|k| match k {
            "LINKSNAP_WORKERS" => Some("1".into()),
            "LINKSNAP_KEEPALIVE" => Some("10s,2s,4".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.workers, 1);
        assert_eq!(
            c.tcp.keepalive,
            Some(Keepalive {
                idle: Duration::from_secs(10),
                interval: Duration::from_secs(2),
                count: 4
            })
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let e = "listen = [\"nowhere\"]"
            .parse::<ServerConfig>()
            .unwrap_err();
        assert!(e.contains("listen"), "{e}");
        let e = "workerz = 3".parse::<ServerConfig>().unwrap_err();
        assert!(e.contains("workerz"), "{e}");
        let e = "idle_timeout = \"soon\""
            .parse::<ServerConfig>()
            .unwrap_err();
        assert!(e.contains("soon"), "{e}");
        let mut c = ServerConfig::default();
        let e = c
            .apply_env(|k| (k == "LINKSNAP_BACKLOG").then(|| "0".into()))
            .unwrap_err();
        assert!(e.to_string().contains("LINKSNAP_BACKLOG"), "{e}");
    }
}
