//! Command-line definitions and dispatch.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use linksnap_capture::capture::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESOURCES, DEFAULT_USER_AGENT,
};
use linksnap_capture::html::{DEFAULT_MAX_FRAME_DEPTH, DEFAULT_MAX_IMPORT_DEPTH};
use linksnap_capture::{AddressPolicy, CaptureOptions, InlineOptions, Limits, NameResolver};

use crate::exit::{Code, UsageError};

const EXIT_CODES: &str = "Exit codes: 0 done; 1 failed; 2 bad input (usage, URL, scheme); \
3 saved, but the server answered 4xx/5xx; 4 refused by the address policy; \
5 a size or time limit was reached.";

/// linksnap: a self-hosted link snapshot platform.
#[derive(Debug, Parser)]
#[command(name = "linksnap", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The library's data directory (default: $LINKSNAP_DATA, else
    /// $XDG_DATA_HOME/linksnap, else ~/.local/share/linksnap).
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Act as this user: on their library (links, tags, snapshots); tokens made are
    /// theirs. Default: the data directory's own library, which the first user owns.
    #[arg(long = "as", global = true, value_name = "USER", env = "LINKSNAP_AS")]
    pub as_user: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Capture one URL into a single self-contained HTML file (or its text, or a JSON report).
    Snap(SnapArgs),
    /// Save links to the library (prints their ids); captured now with --wait, else queued.
    Add(crate::library_cmds::AddArgs),
    /// List links, newest first.
    Ls(crate::library_cmds::LsArgs),
    /// Show one link.
    Show(crate::library_cmds::ShowArgs),
    /// Full-text search: best first, with snippets.
    Search(crate::library_cmds::SearchArgs),
    /// Import bookmarks: Netscape HTML, JSON or a list of URLs (`-` reads standard input).
    Import(crate::library_cmds::ImportArgs),
    /// Export every link to standard output.
    Export(crate::library_cmds::ExportArgs),
    /// Rebuild the search index from the database.
    Reindex,
    /// Edit a link's title, note and flags.
    Edit(crate::library_cmds::EditArgs),
    /// Add (+name) and remove (-name) tags on links: `tag 3 7 +lang/rust -todo`.
    Tag(crate::library_cmds::TagArgs),
    /// List tags with their counts, or rename, merge or delete them.
    Tags(crate::library_cmds::TagsArgs),
    /// Capture a link again as a new version.
    Recapture(crate::library_cmds::RecaptureArgs),
    /// Capture queued links (until none is due with --once).
    Work(crate::library_cmds::WorkArgs),
    /// Show what changed in a page's text between two versions (default: the last two).
    Diff(crate::library_cmds::DiffArgs),
    /// List a link's snapshot versions.
    Versions(crate::library_cmds::VersionsArgs),
    /// Remove links.
    Rm(crate::library_cmds::RmArgs),
    /// Write a link's snapshot to a file and print its path.
    Open(crate::library_cmds::OpenArgs),
    /// Re-hash every blob and check every reference; exit 1 on damage.
    Fsck,
    /// Remove blobs nothing references.
    Gc(crate::library_cmds::GcArgs),
    /// Run the platform: the web UI and REST API, capture workers, the CLI's socket.
    Serve(Box<crate::serve::ServeArgs>),
    /// Create, list and revoke API tokens.
    Token(crate::serve::TokenArgs),
    /// Add, list and remove the people who sign in to the web UI.
    User(crate::serve::UserArgs),
    /// Save links mailed to a mailbox (POP3), and see how the polls went.
    Mail(crate::mail_cmds::MailArgs),
    /// The running server's connections (like ss), and bans.
    Net(crate::net_cmds::NetArgs),
}

/// Arguments of `linksnap snap`.
#[derive(Debug, Args)]
pub struct SnapArgs {
    /// The page to capture (http or https; a bare host/path is taken as https).
    pub url: String,
    /// Write to FILE instead of standard output (written atomically: all or nothing).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Html)]
    pub format: Format,
    /// Print no summary line on standard error.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// Output formats of `snap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The single self-contained HTML file (for non-HTML pages, the file as served).
    Html,
    /// The readable text: the title, a blank line, then the main text.
    Text,
    /// Metadata, readable text and every resource with its outcome.
    Json,
}

/// How a command that fetches may fetch. Shared by every such command.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Open an address range the policy refuses by default (loopback, private…).
    /// Repeatable; adds to LINKSNAP_ALLOW_NET (comma-separated).
    #[arg(long = "allow-net", value_name = "CIDR")]
    pub allow_net: Vec<String>,
    /// Answer HOST with ADDR instead of asking DNS (the policy still applies). Repeatable.
    #[arg(long, value_name = "HOST:ADDR")]
    pub resolve: Vec<String>,
    /// Ask this DNS server (ADDR:PORT) instead of the system's. Repeatable.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        env = "LINKSNAP_DNS_SERVER",
        value_delimiter = ','
    )]
    pub dns_server: Vec<SocketAddr>,
    /// Also trust the CA certificates in FILE (PEM), e.g. a private CA. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Remove scripts and event handlers; show <noscript> content.
    #[arg(long)]
    pub no_js: bool,
    /// The User-Agent header.
    #[arg(long, env = "LINKSNAP_USER_AGENT", default_value = DEFAULT_USER_AGENT, hide_default_value = true)]
    pub user_agent: String,
    /// Seconds the whole capture may take.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "120")]
    pub timeout: Duration,
    /// Seconds one request may take, first byte to last.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
    pub request_timeout: Duration,
    /// Seconds to establish one connection.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub connect_timeout: Duration,
    /// Redirects followed for one URL.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REDIRECTS)]
    pub max_redirects: usize,
    /// Largest page body, after decompression (bytes; K, M, G suffixes are KiB, MiB, GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32M")]
    pub max_page_bytes: u64,
    /// Largest asset body, after decompression.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "16M")]
    pub max_asset_bytes: u64,
    /// Everything one snapshot may fetch, page included, after decompression.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "128M")]
    pub max_total_bytes: u64,
    /// Assets fetched at the same time.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENCY, value_parser = parse_concurrency)]
    pub concurrency: usize,
    /// Distinct resources one capture may fetch.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RESOURCES)]
    pub max_resources: usize,
    /// How deep frames inside frames are inlined.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FRAME_DEPTH)]
    pub max_frame_depth: usize,
    /// How long an @import chain may be.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_IMPORT_DEPTH)]
    pub max_import_depth: usize,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v.is_finite() && v <= 86_400.0) {
        return Err(format!("`{s}`: seconds must be above 0 and at most 86400"));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_concurrency(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(format!(
            "`{s}`: concurrency is a whole number from 1 to 256"
        )),
    }
}

/// Parses `1048576`, `512K`, `10M`, `1G` (binary multiples, optional `B`/`iB`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        _ => (body, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 1048576, 512K, 10M, 1G)"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(|| format!("`{s}` is too large"))
}

impl FetchArgs {
    /// Capture options and resolver from flags and environment.
    ///
    /// # Errors
    /// [`UsageError`] for an allow rule or `--resolve` entry that does not parse.
    pub fn build(&self, extract_text: bool) -> anyhow::Result<(CaptureOptions, NameResolver)> {
        let mut policy = AddressPolicy::new();
        if let Ok(env) = std::env::var("LINKSNAP_ALLOW_NET") {
            for net in AddressPolicy::parse_net_list(&env)
                .map_err(|e| UsageError(format!("LINKSNAP_ALLOW_NET: {e}")))?
            {
                policy.allow(net);
            }
        }
        for raw in &self.allow_net {
            let net = AddressPolicy::parse_net(raw)
                .map_err(|e| UsageError(format!("--allow-net: {e}")))?;
            policy.allow(net);
        }
        let mut names = if self.dns_server.is_empty() {
            NameResolver::system()
        } else {
            NameResolver::with_servers(&self.dns_server)
                .map_err(|e| UsageError(format!("--dns-server: {e}")))?
        };
        for entry in &self.resolve {
            let (host, addr) = parse_resolve(entry).ok_or_else(|| {
                UsageError(format!(
                    "--resolve `{entry}`: expected HOST:ADDR, such as example.test:127.0.0.1"
                ))
            })?;
            names = names.with_override(&host, vec![addr]);
        }
        let mut extra_roots_pem = Vec::new();
        for path in &self.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| UsageError(format!("--ca-cert {}: {e}", path.display())))?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(UsageError(format!(
                    "--ca-cert {}: no PEM certificate in it",
                    path.display()
                ))
                .into());
            }
            extra_roots_pem.push(pem);
        }
        let options = CaptureOptions {
            policy,
            extra_roots_pem,
            user_agent: self.user_agent.clone(),
            limits: Limits {
                timeout: self.timeout,
                request_timeout: self.request_timeout,
                connect_timeout: self.connect_timeout,
                max_redirects: self.max_redirects,
                max_page_bytes: self.max_page_bytes,
                max_asset_bytes: self.max_asset_bytes,
                max_total_bytes: self.max_total_bytes,
                max_concurrency: self.concurrency,
                max_resources: self.max_resources,
            },
            inline: InlineOptions {
                keep_scripts: !self.no_js,
                max_frame_depth: self.max_frame_depth,
                max_import_depth: self.max_import_depth,
            },
            extract_text,
            ..CaptureOptions::default()
        };
        Ok((options, names))
    }
}

fn parse_resolve(entry: &str) -> Option<(String, IpAddr)> {
    let (host, addr) = entry.split_once(':')?;
    let addr = addr.trim().trim_start_matches('[').trim_end_matches(']');
    let addr: IpAddr = addr.parse().ok()?;
    let host = host.trim();
    (!host.is_empty()).then(|| (host.to_owned(), addr))
}

/// Parses the command line and runs the command.
///
/// # Errors
/// Whatever the command failed with; `main` maps it to an exit code.
pub fn run() -> anyhow::Result<Code> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => crate::serve::run(cli.data, *args),
        Command::Snap(args) => current_thread()?.block_on(crate::snap::run(args)),
        Command::Net(args) if args.is_stats() => {
            current_thread()?.block_on(crate::net_cmds::stats(cli.data.as_deref(), args))
        }
        mut command => {
            let password = prompt_password(&mut command)?;
            current_thread()?.block_on(crate::remote::run_here_or_on_server(
                cli.data.as_deref(),
                cli.as_user,
                command,
                password,
            ))
        }
    }
}

/// One capture is one task: IO-bound fetching is concurrent on one thread, and the
/// CPU-bound text extraction runs on the blocking pool. No worker threads to start.
pub(crate) fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Parses a command line (without the program name) as the server does for a CLI: the
/// user whose library it acts on, and the command.
pub(crate) fn parse_forwarded(args: &[String]) -> Result<(Option<String>, Command), clap::Error> {
    Cli::try_parse_from(std::iter::once("linksnap".to_owned()).chain(args.iter().cloned()))
        .map(|c| (c.as_user, c.command))
}

/// Whether the command reads standard input (so a forwarding CLI must send it).
pub(crate) fn reads_stdin(command: &Command) -> bool {
    match command {
        Command::Import(a) => a.reads_stdin(),
        Command::User(a) => a.reads_stdin(),
        _ => false,
    }
}

/// Asks for a password on the terminal when a command needs one and was not given
/// `--password-stdin`; the command then reads it as if from standard input.
pub(crate) fn prompt_password(command: &mut Command) -> anyhow::Result<Option<String>> {
    match command {
        Command::User(a) => a.prompt(),
        _ => Ok(None),
    }
}

/// What a command acts on: every library of the data directory, and the one chosen by
/// `--as` (else the data directory's own).
pub(crate) struct Scope<'a> {
    pub libs: &'a linksnap_store::Libraries,
    pub library: std::sync::Arc<linksnap_store::Library>,
    pub user: Option<linksnap_store::User>,
}

impl<'a> Scope<'a> {
    /// `user`'s scope (`None`: the data directory's own library).
    pub async fn new(
        libs: &'a linksnap_store::Libraries,
        user: Option<&str>,
    ) -> anyhow::Result<Self> {
        let Some(name) = user else {
            return Ok(Self {
                libs,
                library: libs.main().clone(),
                user: None,
            });
        };
        let found = libs.main().user_by_name(name).await?.ok_or_else(|| {
            UsageError(format!("--as: no user named `{name}` (linksnap user list)"))
        })?;
        Ok(Self {
            libs,
            library: libs.of_user(&found).await?,
            user: Some(found),
        })
    }

    /// The data directory's own library: accounts, tokens, bans.
    pub fn accounts(&self) -> &linksnap_store::Library {
        self.libs.main()
    }
}

/// Runs a library command in its scope.
pub(crate) async fn run_library(
    scope: &Scope<'_>,
    t: &mut crate::library_cmds::Term,
    command: Command,
) -> anyhow::Result<Code> {
    use crate::library_cmds as lib;
    let library: &linksnap_store::Library = &scope.library;
    match command {
        Command::Add(args) => lib::add(library, t, args).await,
        Command::Ls(args) => lib::ls(library, t, args).await,
        Command::Show(args) => lib::show(library, t, args).await,
        Command::Edit(args) => lib::edit(library, t, args).await,
        Command::Search(args) => lib::search(library, t, args).await,
        Command::Reindex => lib::reindex(library, t).await,
        Command::Import(args) => lib::import(library, t, args).await,
        Command::Export(args) => lib::export(library, t, args).await,
        Command::Tag(args) => lib::tag(library, t, args).await,
        Command::Tags(args) => lib::tags(library, t, args).await,
        Command::Recapture(args) => lib::recapture(library, t, args).await,
        Command::Work(args) => lib::work(library, t, args).await,
        Command::Versions(args) => lib::versions(library, t, args).await,
        Command::Diff(args) => lib::diff(library, t, args).await,
        Command::Rm(args) => lib::rm(library, t, args).await,
        Command::Open(args) => lib::open(library, t, args).await,
        Command::Fsck => lib::fsck(library, t).await,
        Command::Gc(args) => lib::gc(library, t, args).await,
        Command::Token(args) => crate::serve::token(scope, t, args).await,
        Command::User(args) => crate::serve::user(scope.accounts(), t, args).await,
        Command::Mail(args) => crate::mail_cmds::mail(scope, t, args).await,
        Command::Net(args) => crate::net_cmds::bans(scope.accounts(), t, args).await,
        Command::Snap(_) | Command::Serve(_) => {
            Err(UsageError("`snap` and `serve` do not run through a server".to_owned()).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linksnap_capture::capture::{
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ASSET_BYTES, DEFAULT_MAX_PAGE_BYTES,
        DEFAULT_MAX_TOTAL_BYTES, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TIMEOUT,
    };

    #[test]
    fn sizes_and_seconds_parse_with_clear_errors() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("ten").unwrap_err().contains("not a size"));
        assert!(
            parse_size("99999999999G")
                .unwrap_err()
                .contains("too large")
        );
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-1").is_err());
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["linksnap", "snap", "http://a.test/"]).unwrap();
        let Command::Snap(args) = cli.command else {
            panic!("parsed as snap")
        };
        let (options, _) = args.fetch.build(true).unwrap();
        assert_eq!(options.limits, Limits::default());
        assert_eq!(options.limits.timeout, DEFAULT_TIMEOUT);
        assert_eq!(options.limits.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(options.limits.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(options.limits.max_page_bytes, DEFAULT_MAX_PAGE_BYTES);
        assert_eq!(options.limits.max_asset_bytes, DEFAULT_MAX_ASSET_BYTES);
        assert_eq!(options.limits.max_total_bytes, DEFAULT_MAX_TOTAL_BYTES);
        assert_eq!(options.inline.max_frame_depth, DEFAULT_MAX_FRAME_DEPTH);
        assert_eq!(options.inline.max_import_depth, DEFAULT_MAX_IMPORT_DEPTH);
        assert_eq!(options.user_agent, DEFAULT_USER_AGENT);
    }

    #[test]
    fn resolve_entries_parse() {
        assert_eq!(
            parse_resolve("a.test:127.0.0.1"),
            Some(("a.test".into(), "127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_resolve("a.test:[::1]"),
            Some(("a.test".into(), "::1".parse().unwrap()))
        );
        assert_eq!(parse_resolve("a.test"), None);
        assert_eq!(parse_resolve(":127.0.0.1"), None);
    }
}
