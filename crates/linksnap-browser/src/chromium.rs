//! Finding Chromium and running it so that it can reach nothing by itself: every request
//! is meant to be answered by our interception; anything that gets past it (a WebSocket,
//! a preconnect, a service worker's script) is sent to a proxy of ours that counts it and
//! closes the connection, and Chromium's own name resolution is switched off.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use futures_util::StreamExt as _;

/// The names Chromium is installed under, looked up on `PATH` in this order.
pub const CHROMIUM_NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Width of the window pages are rendered in, in CSS pixels.
pub const WINDOW_WIDTH: u32 = 1280;
/// Height of the window pages are rendered in, in CSS pixels.
pub const WINDOW_HEIGHT: u32 = 900;

/// The Chromium to run: `explicit` (`--chromium`) if given, else `LINKSNAP_CHROMIUM`,
/// else `configured` (`chromium` in the config file), else the first of
/// [`CHROMIUM_NAMES`] on `PATH`. `None` when there is none (or the one named is not an
/// executable file).
#[must_use]
pub fn find_chromium(explicit: Option<&Path>, configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return is_executable(path).then(|| path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("LINKSNAP_CHROMIUM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return is_executable(&path).then_some(path);
    }
    if let Some(path) = configured {
        return is_executable(path).then(|| path.to_path_buf());
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    CHROMIUM_NAMES
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| is_executable(p)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether this process runs as root (Chromium's own sandbox refuses to start then).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Why Chromium could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start the refusing proxy: {0}")]
    Proxy(std::io::Error),
    #[error("cannot make Chromium's profile directory {path}: {source}")]
    Profile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start Chromium ({path}): {reason}")]
    Launch { path: PathBuf, reason: String },
}

/// A running Chromium, its profile directory (removed when dropped) and the refusing
/// proxy it is pointed at.
pub struct Chromium {
    pub(crate) browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    proxy: tokio::task::JoinHandle<()>,
    escaped: Arc<AtomicUsize>,
    profile: PathBuf,
    path: PathBuf,
}

impl std::fmt::Debug for Chromium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chromium")
            .field("path", &self.path)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Source of profile directory names within this process.
static NEXT_PROFILE: AtomicUsize = AtomicUsize::new(0);

impl Chromium {
    /// Starts the Chromium at `path`, headless, with no network of its own.
    ///
    /// # Errors
    /// [`LaunchError`].
    /// The renderers' script heap is at most `heap_limit_mib` MiB.
    pub async fn launch(path: &Path, heap_limit_mib: u32) -> Result<Self, LaunchError> {
        let (proxy_port, escaped, proxy) = refusing_proxy().await.map_err(LaunchError::Proxy)?;
        let profile = std::env::temp_dir().join(format!(
            "linksnap-chromium-{}-{}",
            std::process::id(),
            NEXT_PROFILE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&profile).map_err(|source| LaunchError::Profile {
            path: profile.clone(),
            source,
        })?;
        let launch_error = |reason: String| LaunchError::Launch {
            path: path.to_path_buf(),
            reason,
        };
        let mut config = BrowserConfig::builder()
            .chrome_executable(path)
            .new_headless_mode()
            .user_data_dir(&profile)
            .window_size(WINDOW_WIDTH, WINDOW_HEIGHT)
            .viewport(Viewport {
                width: WINDOW_WIDTH,
                height: WINDOW_HEIGHT,
                device_scale_factor: Some(1.0),
                emulating_mobile: false,
                is_landscape: true,
                has_touch: false,
            })
            .enable_request_intercept()
            .disable_cache();
        for (name, value) in network_flags(proxy_port) {
            config = match &value {
                Some(v) => config.arg((name, v.as_str())),
                None => config.arg(name),
            };
        }
        config = config.arg((
            "js-flags",
            format!("--max-old-space-size={heap_limit_mib}").as_str(),
        ));
        if is_root() {
            config = config.no_sandbox();
        }
        let config = config.build().map_err(launch_error)?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .map_err(|e| launch_error(e.to_string()))?;
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Ok(Self {
            browser,
            handler,
            proxy,
            escaped,
            profile,
            path: path.to_path_buf(),
        })
    }

    /// Connections that reached the refusing proxy: requests the interception did not
    /// see (each refused).
    #[must_use]
    pub fn escaped(&self) -> usize {
        self.escaped.load(Ordering::Relaxed)
    }

    /// Stops the browser and waits for it to exit: killed, not asked to close (nothing
    /// of its temporary profile is kept, and asking costs a fifth of a second).
    pub async fn close(mut self) {
        // The driver's connection ends with the browser: no longer listened to.
        self.handler.abort();
        let _ = self.browser.kill().await;
        let _ = self.browser.wait().await;
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.handler.abort();
        self.proxy.abort();
        // The browser process itself is killed when `browser` drops (kill on drop).
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Chromium's flags for having no network of its own: every connection through our
/// refusing proxy (loopback included), no name resolution, no background traffic, no
/// WebRTC outside the proxy, no QUIC, and frames of every origin in the page's own
/// process, where the page's interception sees their requests; and no window at start
/// (each capture opens a tab of its own: the blank one Chromium would open costs a
/// renderer at start and a second of set-up beside the capture's, 0.5 s of a `snap`).
/// Names without the leading `--` (the driver adds it), with their value if any.
fn network_flags(proxy_port: u16) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("proxy-server", Some(format!("http://127.0.0.1:{proxy_port}"))),
        ("proxy-bypass-list", Some("<-loopback>".to_owned())),
        ("host-resolver-rules", Some("MAP * ~NOTFOUND".to_owned())),
        ("disable-quic", None),
        (
            "force-webrtc-ip-handling-policy",
            Some("disable_non_proxied_udp".to_owned()),
        ),
        (
            "webrtc-ip-handling-policy",
            Some("disable_non_proxied_udp".to_owned()),
        ),
        ("disable-site-isolation-trials", None),
        (
            "disable-features",
            Some(
                "IsolateOrigins,site-per-process,NetworkPrediction,Translate,TranslateUI,OptimizationHints,MediaRouter"
                    .to_owned(),
            ),
        ),
        ("disable-background-networking", None),
        ("disable-component-update", None),
        ("disable-domain-reliability", None),
        ("disable-client-side-phishing-detection", None),
        ("disable-sync", None),
        ("no-first-run", None),
        ("no-startup-window", None),
        ("no-pings", None),
        ("dns-prefetch-disable", None),
        ("disable-gpu", None),
        ("mute-audio", None),
        ("force-device-scale-factor", Some("1".to_owned())),
    ]
}

/// A proxy that accepts and closes every connection, counting them.
async fn refusing_proxy() -> std::io::Result<(u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let escaped = Arc::new(AtomicUsize::new(0));
    let count = escaped.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, peer)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, "a browser connection outside the interception, refused");
            drop(conn);
        }
    });
    Ok((port, escaped, task))
}
