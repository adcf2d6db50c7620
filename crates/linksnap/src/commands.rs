//! The command line's grammar (`Cli`, `Command`) and the dispatch of library commands
//! (`run_library`), shared by the CLI and by the server that runs forwarded commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::{Code, UsageError};
use crate::scope::Scope;

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
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Capture one URL into a single self-contained HTML file (or its text, or a JSON report).
    Snap(crate::snap::SnapArgs),
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
    Serve(Box<crate::serve_args::ServeArgs>),
    /// Create, list and revoke API tokens.
    Token(crate::accounts_cmds::TokenArgs),
    /// Add, list and remove the people who sign in to the web UI.
    User(crate::accounts_cmds::UserArgs),
    /// Save links mailed to a mailbox (POP3), and see how the polls went.
    Mail(crate::mail_cmds::MailArgs),
    /// The running server's connections (like ss), and bans.
    Net(crate::net_cmds::NetArgs),
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
        Command::Token(args) => crate::accounts_cmds::token(scope, t, args).await,
        Command::User(args) => crate::accounts_cmds::user(scope.accounts(), t, args).await,
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
    use linksnap_capture::Limits;
    use linksnap_capture::capture::{
        DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ASSET_BYTES, DEFAULT_MAX_PAGE_BYTES,
        DEFAULT_MAX_TOTAL_BYTES, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
    };
    use linksnap_capture::html::{DEFAULT_MAX_FRAME_DEPTH, DEFAULT_MAX_IMPORT_DEPTH};

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
}
