//! `linksnap serve`: the configuration from file, environment and flags, then the server.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use linksnap_server::ServerConfig;
use linksnap_store::OpenError;

use crate::exit::{Code, UsageError};
use crate::library_cmds::open_library;
use crate::serve_args::ServeArgs;

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
        let libs = match open_library(data.as_deref()).await {
            Ok(l) => l,
            Err(OpenError::Locked(dir)) => anyhow::bail!(
                "the library in {} is in use (a server is already running on it, or another linksnap command): one server per data directory",
                dir.display()
            ),
            Err(e) => return Err(e.into()),
        };
        let config = config(&libs.main().data_dir().path, &args)?;
        for mailbox in &config.mailboxes {
            crate::mail_cmds::check_owner(libs.accounts(), mailbox).await?;
        }
        // The fetch flags are checked now, so that a bad one stops `serve` at once (the
        // engine included: `--engine browser` without a Chromium).
        let mut fetch = args.fetch;
        fetch.apply_file(&config.capture)?;
        fetch.build(true)?;
        fetch.chromium_to_run()?;
        let make: linksnap_server::workers::CapturerFactory = Box::new(move |own| {
            let (mut options, names) = fetch.build(true).map_err(|e| e.to_string())?;
            // Whatever --allow-net opens, never the server's own listeners.
            for addr in own {
                options.policy.never_connect(*addr);
            }
            let capturer = linksnap_capture::Capturer::with_resolver(options, names)
                .map_err(|e| e.to_string())?;
            fetch.engine(capturer).map_err(|e| e.to_string())
        });
        let dir = libs.main().data_dir().path.clone();
        let report = linksnap_server::serve(
            config,
            Arc::new(libs),
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
