//! The command's entry: parse the command line, then run `serve`, `snap` and `net stats`
//! here, and every other command here or, when a server holds the data directory, on it.

use anyhow::Context as _;
use clap::Parser as _;

use crate::commands::{Cli, Command, prompt_password};
use crate::exit::Code;

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
