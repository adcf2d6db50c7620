//! Argument types and parsers shared by the commands: how a command that fetches may
//! fetch (`FetchArgs`), `snap`'s output formats, sizes and durations. A leaf: it imports
//! no other module of the binary.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use linksnap_capture::capture::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_REDIRECTS, DEFAULT_MAX_RESOURCES, DEFAULT_USER_AGENT,
};
use linksnap_capture::html::{DEFAULT_MAX_FRAME_DEPTH, DEFAULT_MAX_IMPORT_DEPTH};
use linksnap_capture::{AddressPolicy, CaptureOptions, InlineOptions, Limits, NameResolver};

use crate::exit::UsageError;

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

/// Which engine captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The browser when a Chromium is found, else the static engine.
    Auto,
    /// A headless Chromium renders the page.
    Browser,
    /// What the server sends, without running scripts.
    Static,
}

/// How a command that fetches may fetch. Shared by every such command.
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// How to capture: `static` keeps what the server sends; `browser` renders the page
    /// in a headless Chromium (its scripts run, every request through linksnap's own
    /// fetcher and address policy) and saves the rendered page without its scripts;
    /// `auto` (the default, also `engine` in the config file) is the browser when a
    /// Chromium is found, else static.
    #[arg(long, value_enum, env = "LINKSNAP_ENGINE")]
    pub engine: Option<Engine>,
    /// The Chromium to run (default: $LINKSNAP_CHROMIUM, else chromium, chromium-browser
    /// or google-chrome on PATH).
    #[arg(long, value_name = "PATH")]
    pub chromium: Option<PathBuf>,
    /// `chromium` in the config file (after `--chromium` and `LINKSNAP_CHROMIUM`).
    #[arg(skip)]
    pub configured_chromium: Option<PathBuf>,
    /// Pages the browser engine renders at once (the library's captures).
    /// [default: 2; also `browser_tabs` in the config file]
    #[arg(long, value_name = "N", env = "LINKSNAP_BROWSER_TABS")]
    pub browser_tabs: Option<usize>,
    /// The most memory a page's scripts may hold in the browser engine, in MiB: a page
    /// that wants more crashes its renderer and its capture fails (exit 1).
    #[arg(long, value_name = "MIB", env = "LINKSNAP_BROWSER_HEAP_LIMIT", default_value_t = linksnap_browser::DEFAULT_HEAP_LIMIT_MIB, value_parser = clap::value_parser!(u32).range(16..))]
    pub browser_heap_limit: u32,
    /// The library's browser captures also keep the page printed to PDF (they always
    /// keep a screenshot and a thumbnail). Also `pdf = true` in the config file.
    #[arg(long, env = "LINKSNAP_BROWSER_PDF")]
    pub browser_pdf: bool,
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
    /// The Chromium the engine setting asks for: none for `static`; for `auto` the one
    /// found, if any (saying once when there is none); for `browser` the one found.
    ///
    /// # Errors
    /// [`UsageError`] for `browser` without a Chromium, naming what to install.
    pub fn chromium_to_run(&self) -> anyhow::Result<Option<PathBuf>> {
        match self.engine_setting() {
            Engine::Static => Ok(None),
            Engine::Browser => Ok(Some(
                linksnap_browser::find_chromium(
                    self.chromium.as_deref(),
                    self.configured_chromium.as_deref(),
                ).ok_or_else(|| {
                    UsageError(
                        "--engine browser needs Chromium: install it (Debian: apt install chromium) or name it with --chromium PATH or LINKSNAP_CHROMIUM".to_owned(),
                    )
                })?,
            )),
            Engine::Auto => {
                static SAID: std::sync::atomic::AtomicBool =
                    std::sync::atomic::AtomicBool::new(false);
                let found = linksnap_browser::find_chromium(
                    self.chromium.as_deref(),
                    self.configured_chromium.as_deref(),
                );
                if found.is_none() && !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    eprintln!(
                        "linksnap: no Chromium found: capturing with the static engine (scripts are not run)"
                    );
                }
                Ok(found)
            }
        }
    }

    /// The capture engine of the library's captures: the static engine, or a browser
    /// engine over `capturer`'s options.
    ///
    /// # Errors
    /// As [`FetchArgs::chromium_to_run`].
    pub fn engine(
        &self,
        capturer: linksnap_capture::Capturer,
    ) -> anyhow::Result<Box<dyn linksnap_capture::CaptureEngine>> {
        let tabs = self.browser_tabs.unwrap_or(linksnap_browser::DEFAULT_TABS);
        if tabs == 0 {
            return Err(UsageError("--browser-tabs must be at least 1".to_owned()).into());
        }
        Ok(match self.chromium_to_run()? {
            None => Box::new(capturer),
            Some(path) => Box::new(linksnap_browser::BrowserEngine::new(
                path,
                capturer,
                self.browser_settings(),
                tabs,
                self.browser_pdf,
            )),
        })
    }

    /// How the browser engine waits and what it allows a page.
    #[must_use]
    pub fn browser_settings(&self) -> linksnap_browser::BrowserSettings {
        linksnap_browser::BrowserSettings {
            heap_limit_mib: self.browser_heap_limit,
            ..linksnap_browser::BrowserSettings::default()
        }
    }

    /// The engine asked for: the flag, else `LINKSNAP_ENGINE`, else the config file,
    /// else `auto`.
    #[must_use]
    pub fn engine_setting(&self) -> Engine {
        self.engine.unwrap_or(Engine::Auto)
    }

    /// Fills what neither a flag nor the environment set from the config file's capture
    /// settings (flags, then environment, then the file, then the defaults).
    ///
    /// # Errors
    /// [`UsageError`] for an `engine` that is not one of the three.
    pub fn apply_file(
        &mut self,
        file: &linksnap_server::config::CaptureFile,
    ) -> anyhow::Result<()> {
        if self.engine.is_none()
            && let Some(engine) = &file.engine
        {
            self.engine = Some(Engine::from_str(engine, true).map_err(|_| {
                UsageError(format!(
                    "config file: engine: `{engine}` is none of auto, browser, static"
                ))
            })?);
        }
        self.configured_chromium.clone_from(&file.chromium);
        if self.browser_tabs.is_none() {
            self.browser_tabs = file.browser_tabs;
        }
        self.browser_pdf |= file.pdf == Some(true);
        Ok(())
    }

    /// [`FetchArgs::apply_file`] with the `config.toml` of the data directory `data`, if
    /// it has one.
    ///
    /// # Errors
    /// [`UsageError`] for a config file that does not read or parse.
    pub fn apply_data_dir_config(&mut self, data: &std::path::Path) -> anyhow::Result<()> {
        let path = data.join("config.toml");
        if !path.exists() {
            return Ok(());
        }
        let mut config = linksnap_server::ServerConfig::default();
        config
            .apply_file(&path)
            .map_err(|e| UsageError(e.to_string()))?;
        self.apply_file(&config.capture)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
