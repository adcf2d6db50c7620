//! `linksnap serve` and `linksnap token`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use linksnap_server::ServerConfig;
use linksnap_server::json::rfc3339;
use linksnap_store::{Library, OpenError};

use crate::cli::FetchArgs;
use crate::exit::{Code, UsageError};
use crate::library_cmds::{Term, open_library};

/// Flags of `serve`; each overrides the config file and the environment.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen on ADDR: IP:PORT ([::]:8080 for IPv6) or unix:/path (repeatable; default
    /// 127.0.0.1:8080). A private socket for the CLI is always opened in the data directory.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<String>,
    /// A TOML configuration file (default: config.toml in the data directory, if present).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Capture workers (0: none; captures stay queued).
    #[arg(long, value_name = "N")]
    workers: Option<String>,
    /// Connections served at once.
    #[arg(long, value_name = "N")]
    max_connections: Option<String>,
    /// The listen backlog.
    #[arg(long, value_name = "N")]
    backlog: Option<String>,
    /// Time a client has to send a request's headers (e.g. 10s).
    #[arg(long, value_name = "DURATION")]
    header_read_timeout: Option<String>,
    /// Idle keep-alive connections are closed after this (e.g. 75s).
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// On SIGTERM/SIGINT, time for in-flight requests and captures (e.g. 20s).
    #[arg(long, value_name = "DURATION")]
    shutdown_grace: Option<String>,
    /// Largest request body of the upload routes (imports, the CLI's input), bytes.
    #[arg(long, value_name = "BYTES")]
    body_limit: Option<String>,
    /// Largest request body of every other route (forms, JSON, sign-in), bytes.
    #[arg(long, value_name = "BYTES")]
    form_limit: Option<String>,
    /// Request-body bytes held at once across all connections; more wait.
    #[arg(long, value_name = "BYTES")]
    body_budget: Option<String>,
    /// Exports and imports one library runs at once (more get 429).
    #[arg(long, value_name = "N")]
    transfers_per_user: Option<String>,
    /// Entries one import may hold.
    #[arg(long, value_name = "N")]
    import_limit: Option<String>,
    /// How long a body waits for room in the budget before 503 (e.g. 30s).
    #[arg(long, value_name = "DURATION")]
    body_budget_wait: Option<String>,
    /// Bytes of responses the read caches keep (lists, searches, list pages; 0: none).
    #[arg(long, value_name = "BYTES")]
    read_cache: Option<String>,
    /// TCP keepalive of accepted connections: `off`, or IDLE,INTERVAL,COUNT (default 60s,5s,3).
    #[arg(long, value_name = "SPEC")]
    keepalive: Option<String>,
    /// Mark cookies Secure: true, false, or auto (the default: true when listening beyond
    /// loopback; plain HTTP on a LAN needs false).
    #[arg(long, value_name = "BOOL")]
    secure_cookies: Option<String>,
    /// Sign-in attempts allowed per client address and minute.
    #[arg(long, value_name = "N")]
    login_attempts: Option<String>,
    /// The longest an account waits between sign-in attempts after 5 failures in a row
    /// (doubling from 1s; 0s: no per-account back-off).
    #[arg(long, value_name = "DURATION")]
    login_backoff_max: Option<String>,
    /// How often event streams send a heartbeat (e.g. 15s).
    #[arg(long, value_name = "DURATION")]
    sse_heartbeat: Option<String>,
    /// Connections one client address may hold (IPv6: per --ipv6-prefix; 0: no cap).
    #[arg(long, value_name = "N")]
    max_conns_per_ip: Option<String>,
    /// IPv6 clients are grouped by this prefix length (default 64).
    #[arg(long, value_name = "BITS")]
    ipv6_prefix: Option<String>,
    /// Requests per client address: `off` or RATE/s[,BURST] (default 100/s,200).
    #[arg(long, value_name = "SPEC")]
    rate_limit: Option<String>,
    /// Automatic bans for clients that keep hitting the cap: `off` or COUNT/WINDOW,BAN
    /// (default 100/60s,10m).
    #[arg(long, value_name = "SPEC")]
    autoban: Option<String>,
    /// A proxy whose Forwarded / X-Forwarded-For headers name the real client (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,
    /// Who may read /metrics: loopback (default), token, off.
    #[arg(long, value_name = "WHO")]
    metrics: Option<String>,
    /// Serve snapshots from this origin, another name of this server
    /// (http(s)://HOST[:PORT]); the app's origin then never serves one.
    #[arg(long, value_name = "ORIGIN")]
    snapshot_origin: Option<String>,
    /// A name this server answers to (HOST or HOST:PORT, repeatable) besides its IP
    /// addresses and localhost: requests for other names get 421 (against DNS rebinding).
    #[arg(long = "public-name", value_name = "NAME")]
    public_names: Vec<String>,
    #[command(flatten)]
    fetch: FetchArgs,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, &'static str, String)> {
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

/// Defaults, then the file, then the environment, then the flags.
fn config(data: &Path, args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let mut config = ServerConfig::default();
    let file = args.config.clone().or_else(|| {
        let p = data.join("config.toml");
        p.exists().then_some(p)
    });
    if let Some(file) = file {
        config
            .apply_file(&file)
            .map_err(|e| UsageError(e.to_string()))?;
    }
    config
        .apply_env(|name| std::env::var(name).ok())
        .map_err(|e| UsageError(e.to_string()))?;
    for (flag, var, value) in args.flags() {
        config
            .apply_setting(var, &value)
            .map_err(|e| UsageError(format!("{flag} {value}: {e}")))?;
    }
    config.mailboxes = config
        .resolve_mail(|name| std::env::var(name).ok())
        .map_err(|e| UsageError(e.to_string()))?;
    Ok(config)
}

pub fn run(data: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<Code> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("linksnap-serve")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let library = match open_library(data.as_deref()).await {
            Ok(l) => l,
            Err(OpenError::Locked(dir)) => anyhow::bail!(
                "the library in {} is in use (a server is already running on it, or another linksnap command): one server per data directory",
                dir.display()
            ),
            Err(e) => return Err(e.into()),
        };
        let config = config(&library.data_dir().path, &args)?;
        for mailbox in &config.mailboxes {
            crate::mail_cmds::check_owner(&library, mailbox).await?;
        }
        // The fetch flags are checked now, so that a bad one stops `serve` at once.
        args.fetch.build(true)?;
        let fetch = args.fetch;
        let make: linksnap_server::workers::CapturerFactory = Box::new(move |own| {
            let (mut options, names) = fetch.build(true).map_err(|e| e.to_string())?;
            // Whatever --allow-net opens, never the server's own listeners.
            for addr in own {
                options.policy.never_connect(*addr);
            }
            linksnap_capture::Capturer::with_resolver(options, names).map_err(|e| e.to_string())
        });
        let dir = library.data_dir().path.clone();
        let library = Arc::new(library);
        let report = linksnap_server::serve(
            config,
            library,
            make,
            Some(Arc::new(crate::remote::Runner)),
            shutdown_signal(),
            |addrs| {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "linksnap: serving the library in {}", dir.display());
                for a in addrs {
                    let _ = match a {
                        linksnap_server::ListenAddr::Tcp(a) => {
                            writeln!(err, "linksnap: listening on http://{a}/")
                        }
                        linksnap_server::ListenAddr::Unix(_) => {
                            writeln!(err, "linksnap: listening on {a}")
                        }
                    };
                }
                let _ = err.flush();
            },
        )
        .await?;
        eprintln!(
            "linksnap: stopped ({} connection(s) cut at the deadline, {} capture(s) returned to the queue)",
            report.connections_cut, report.captures_returned
        );
        Ok(Code::Ok)
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token and print it (once: only a hash of it is kept).
    Create {
        /// A name to tell it apart (e.g. the client that uses it); unique per user.
        name: String,
        /// What it may do: read, write, share, admin (repeatable or comma-separated;
        /// default all four). `admin` matters for an administrator's or the operator's
        /// token: network operations and /metrics.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List tokens (names, first characters, use).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token (the operator's, or with --as, that user's): requests that carry it
    /// fail from now on.
    Revoke { name: String },
}

pub async fn token(
    scope: &crate::cli::Scope<'_>,
    t: &mut Term,
    args: TokenArgs,
) -> anyhow::Result<Code> {
    let library = scope.accounts();
    let user = scope.user.as_ref().map(|u| u.id);
    use linksnap_store::TokenError;
    let usage = |e: TokenError| -> anyhow::Error {
        match e {
            TokenError::Store(e) => e.into(),
            other => UsageError(other.to_string()).into(),
        }
    };
    match args.action {
        TokenAction::Create { name, scopes } => {
            let scopes = if scopes.is_empty() {
                linksnap_store::Scopes::ALL
            } else {
                linksnap_store::Scopes::parse(&scopes.join(",")).map_err(usage)?
            };
            let (token, secret) = library
                .create_token(&name, user, scopes)
                .await
                .map_err(usage)?;
            writeln!(t.out, "{secret}")?;
            writeln!(
                t.err,
                "linksnap: created token `{}` ({}); copy it now, it is not shown again",
                token.name,
                token.scopes.names().join(", ")
            )?;
        }
        TokenAction::List { json } => {
            // With --as, that user's tokens; else all.
            let tokens: Vec<_> = library
                .tokens()
                .await?
                .into_iter()
                .filter(|k| user.is_none() || k.user_id == user)
                .collect();
            let names: std::collections::HashMap<i64, String> = library
                .users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect();
            let owner =
                |k: &linksnap_store::Token| k.user_id.and_then(|id| names.get(&id).cloned());
            if json {
                let v: Vec<_> = tokens
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name, "prefix": k.prefix, "user": owner(k),
                            "scopes": k.scopes.names(),
                            "created_at": rfc3339(k.created_at),
                            "last_used_at": k.last_used_at.map(rfc3339),
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut t.out, &v)?;
                writeln!(t.out)?;
            } else {
                for k in &tokens {
                    writeln!(
                        t.out,
                        "{:<24} {}…  {}  for {}  created {}  last used {}",
                        k.name,
                        k.prefix,
                        k.scopes.names().join(","),
                        owner(k).unwrap_or_else(|| "the data directory's library".to_owned()),
                        rfc3339(k.created_at),
                        k.last_used_at.map_or_else(|| "never".to_owned(), rfc3339)
                    )?;
                }
            }
        }
        TokenAction::Revoke { name } => {
            library.revoke_token(&name, user).await.map_err(usage)?;
            writeln!(t.err, "linksnap: revoked token `{}`", name.trim())?;
        }
    }
    Ok(Code::Ok)
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user (asks for the password, or reads it from standard input).
    Add {
        name: String,
        /// May manage users.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (their sessions end).
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Also revoke the user's API tokens (their sessions end in any case).
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove { name: String },
}

impl UserArgs {
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self.action,
            UserAction::Add {
                password_stdin: true,
                ..
            } | UserAction::Passwd {
                password_stdin: true,
                ..
            }
        )
    }

    /// Asks for the password twice on the terminal, when one is needed and not read from
    /// standard input.
    pub fn prompt(&mut self) -> anyhow::Result<Option<String>> {
        let (UserAction::Add { password_stdin, .. } | UserAction::Passwd { password_stdin, .. }) =
            &mut self.action
        else {
            return Ok(None);
        };
        if *password_stdin {
            return Ok(None);
        }
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(
                "no terminal to ask for the password on: pass it with --password-stdin".into(),
            )
            .into());
        }
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err(UsageError("the passwords differ".into()).into());
        }
        *password_stdin = true;
        Ok(Some(first))
    }
}

fn read_password(t: &mut Term) -> anyhow::Result<String> {
    let mut all = String::new();
    std::io::Read::read_to_string(&mut t.stdin, &mut all).context("reading the password")?;
    Ok(all.lines().next().unwrap_or("").to_owned())
}

pub async fn user(library: &Library, t: &mut Term, args: UserArgs) -> anyhow::Result<Code> {
    use linksnap_store::UserError;
    let usage = |e: UserError| -> anyhow::Error {
        match e {
            UserError::Store(e) => e.into(),
            other => UsageError(other.to_string()).into(),
        }
    };
    match args.action {
        UserAction::Add { name, admin, .. } => {
            let password = read_password(t)?;
            let user = library
                .create_user(&name, &password, admin)
                .await
                .map_err(usage)?;
            writeln!(
                t.err,
                "linksnap: added {}user `{}`",
                if user.is_admin { "admin " } else { "" },
                user.name
            )?;
        }
        UserAction::Passwd {
            name,
            revoke_tokens,
            ..
        } => {
            let password = read_password(t)?;
            library
                .set_password(&name, &password)
                .await
                .map_err(usage)?;
            let tokens = if revoke_tokens {
                let id = library
                    .users()
                    .await?
                    .into_iter()
                    .find(|u| u.name == name.trim())
                    .map(|u| u.id);
                let n = match id {
                    Some(id) => library.revoke_tokens_of(id).await?,
                    None => 0,
                };
                format!("{n} API token(s) revoked")
            } else {
                "their API tokens still work (--revoke-tokens ends them too)".to_owned()
            };
            writeln!(
                t.err,
                "linksnap: changed the password of `{}`; their sessions ended; {tokens}",
                name.trim()
            )?;
        }
        UserAction::List { json } => {
            let users = library.users().await?;
            if json {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name, "admin": u.is_admin,
                            "created_at": rfc3339(u.created_at),
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut t.out, &v)?;
                writeln!(t.out)?;
            } else {
                for u in &users {
                    writeln!(
                        t.out,
                        "{:<24} {}  added {}",
                        u.name,
                        if u.is_admin { "admin" } else { "user " },
                        rfc3339(u.created_at)
                    )?;
                }
            }
        }
        UserAction::Remove { name } => {
            library.remove_user(&name).await.map_err(usage)?;
            writeln!(t.err, "linksnap: removed user `{}`", name.trim())?;
        }
    }
    Ok(Code::Ok)
}
