//! The `linksnap` command. `main` only sets up logging, runs [`cli::run`] and turns its
//! outcome into an exit code; see `cli.rs` for the commands and `exit.rs` for the codes.

mod accounts_cmds;
mod args;
mod cli;
mod commands;
mod exit;
mod library_cmds;
mod mail_cmds;
mod net_cmds;
mod remote;
mod scope;
mod serve;
mod serve_args;
mod snap;
mod wire;

use std::process::ExitCode;

/// jemalloc: an idle keep-alive connection holds hyper's two 8 KiB buffers with a few
/// bytes written in each; jemalloc keeps such buffers page-aligned, so only the page
/// written is resident (about 8.6 KB per idle connection in all, 12.7 KB with glibc's
/// allocator; BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Everything linksnap creates is its user's alone: the data directory holds every
    // user's archive, the password and token hashes and the key that signs snapshot
    // addresses (directories 0700, files 0600).
    // SAFETY: umask only sets this process's file-mode creation mask; it cannot fail.
    unsafe { libc::umask(0o077) };
    init_logging();
    let code = match cli::run() {
        Ok(code) => code,
        Err(err) => {
            let code = exit::code_for(&err);
            if code != exit::Code::BrokenPipe {
                eprintln!("linksnap: error: {}", exit::one_line(&err));
            }
            code
        }
    };
    code.into()
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LINKSNAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
