//! `linksnap mail`: poll mailboxes for mailed links, and their status.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use linksnap_mail::{Mailbox, MailboxFile, PollReport, TlsMode};
use linksnap_server::ServerConfig;
use linksnap_server::json::rfc3339;
use linksnap_store::{Accounts, Library};

use crate::exit::{Code, UsageError};
use crate::library_cmds::Term;

/// Arguments of `linksnap mail`.
#[derive(Debug, Args)]
pub struct MailArgs {
    #[command(subcommand)]
    action: MailAction,
}

#[derive(Debug, Subcommand)]
enum MailAction {
    /// Fetch mailed links over POP3: the mailbox given by flags, else every [[mail]] of the
    /// config file. Keeps polling at the interval unless --once.
    Poll(Box<PollArgs>),
    /// Each mailbox's last poll, messages ingested and kept (with reasons), links added
    /// (every library's; with --as, that user's).
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct PollArgs {
    /// Poll once and exit (exit 1 if a mailbox could not be polled).
    #[arg(long)]
    once: bool,
    /// The config file with [[mail]] tables (default: config.toml in the data directory).
    #[arg(long, value_name = "FILE", conflicts_with = "host")]
    config: Option<PathBuf>,
    /// The POP3 server (instead of the config file).
    #[arg(long, requires = "user")]
    host: Option<String>,
    /// Its port (default 995 with implicit TLS, else 110).
    #[arg(long, requires = "host")]
    port: Option<u16>,
    /// How the connection is secured: implicit (POP3S), starttls, or none (loopback only,
    /// unless --allow-plaintext).
    #[arg(long, value_name = "MODE", requires = "host")]
    tls: Option<TlsMode>,
    #[arg(long, requires = "host")]
    user: Option<String>,
    /// A file whose first line is the password.
    #[arg(long, value_name = "FILE", requires = "host")]
    password_file: Option<PathBuf>,
    /// The environment variable that holds the password.
    #[arg(
        long,
        value_name = "VAR",
        requires = "host",
        conflicts_with = "password_file"
    )]
    password_env: Option<String>,
    /// Also trust the CA certificates in this PEM file (a self-signed server).
    #[arg(long, value_name = "FILE", requires = "host")]
    ca_file: Option<PathBuf>,
    /// Allow --tls none to a host that is not loopback (the password travels in clear).
    #[arg(long, requires = "host")]
    allow_plaintext: bool,
    /// Tag every link (repeatable; default `mail`).
    #[arg(long = "tag", value_name = "TAG", requires = "host")]
    tags: Vec<String>,
    /// Do not turn `#word` in the subject into tags.
    #[arg(long, requires = "host")]
    no_subject_tags: bool,
    /// Keep messages in the mailbox after their links are saved (UIDLs prevent repeats).
    #[arg(long, requires = "host")]
    keep: bool,
    /// Take mail from this sender (`a@b.example`, `@b.example`, or `*` for anyone;
    /// repeatable). Without it no mail is taken.
    #[arg(long = "allow-sender", value_name = "ADDR", requires = "host")]
    allowed_senders: Vec<String>,
    /// Take only mail that the receiving server with this authserv-id authenticated
    /// (its Authentication-Results: dmarc pass, or dkim pass aligned with the sender).
    #[arg(long, value_name = "ID", requires = "host")]
    authserv_id: Option<String>,
    /// Take only mail that carries the secret in this file (first line) in a recipient
    /// address (`links+SECRET@…`) or its subject.
    #[arg(long, value_name = "FILE", requires = "host")]
    secret_file: Option<PathBuf>,
    /// The same, from this environment variable.
    #[arg(
        long,
        value_name = "VAR",
        requires = "host",
        conflicts_with = "secret_file"
    )]
    secret_env: Option<String>,
    /// Most links one message may add (default 100); a message with more is kept.
    #[arg(long, value_name = "N", requires = "host")]
    max_links_per_message: Option<usize>,
    /// Most links one poll adds (default 1000); later messages wait for the next poll.
    #[arg(long, value_name = "N", requires = "host")]
    max_links_per_poll: Option<usize>,
    /// Largest message read (e.g. 10M; default 25M); larger ones are kept and recorded.
    #[arg(long, value_name = "SIZE", value_parser = crate::args::parse_size, requires = "host")]
    max_message_size: Option<u64>,
    /// Deadline for connecting and for every read and write (default 30s).
    #[arg(long, value_name = "DURATION", requires = "host")]
    timeout: Option<String>,
    /// Time between polls without --once (default 5m).
    #[arg(long, value_name = "DURATION", requires = "host")]
    interval: Option<String>,
    /// The name the record and status use (default USER@HOST).
    #[arg(long, requires = "host")]
    name: Option<String>,
    /// Print each poll's report as JSON.
    #[arg(long)]
    json: bool,
}

impl PollArgs {
    fn mailboxes(&self, library: &Library, t: &Term) -> anyhow::Result<Vec<Mailbox>> {
        let env = |name: &str| std::env::var(name).ok();
        if let Some(host) = &self.host {
            let file = MailboxFile {
                name: self.name.clone(),
                host: host.clone(),
                port: self.port,
                tls: self.tls,
                user: self.user.clone().unwrap_or_default(),
                password_env: self.password_env.clone(),
                password_file: self.password_file.clone(),
                ca_file: self.ca_file.clone(),
                allow_plaintext: Some(self.allow_plaintext),
                poll_interval: self.interval.clone(),
                owner: None,
                allowed_senders: Some(self.allowed_senders.clone()),
                authserv_id: self.authserv_id.clone(),
                secret_env: self.secret_env.clone(),
                secret_file: self.secret_file.clone(),
                max_links_per_message: self.max_links_per_message,
                max_links_per_poll: self.max_links_per_poll,
                tags: (!self.tags.is_empty()).then(|| self.tags.clone()),
                subject_tags: Some(!self.no_subject_tags),
                delete: Some(!self.keep),
                max_message_size: self.max_message_size,
                timeout: self.timeout.clone(),
            };
            return Ok(vec![
                file.resolve(&t.cwd, env)
                    .map_err(|e| UsageError(e.to_string()))?,
            ]);
        }
        let path = match &self.config {
            Some(p) => t.cwd.join(p),
            None => library.data_dir().path.join("config.toml"),
        };
        if self.config.is_none() && !path.exists() {
            return Err(UsageError(format!(
                "no mailbox: give --host, --user and --password-file, or add [[mail]] tables to {}",
                path.display()
            ))
            .into());
        }
        let mut config = ServerConfig::default();
        config
            .apply_file(&path)
            .map_err(|e| UsageError(e.to_string()))?;
        let boxes = config
            .resolve_mail(env)
            .map_err(|e| UsageError(e.to_string()))?;
        if boxes.is_empty() {
            return Err(UsageError(format!("{} has no [[mail]] table", path.display())).into());
        }
        Ok(boxes)
    }
}

pub(crate) async fn mail(
    scope: &crate::scope::Scope<'_>,
    t: &mut Term,
    args: MailArgs,
) -> anyhow::Result<Code> {
    match args.action {
        MailAction::Poll(args) => poll(scope, t, *args).await,
        MailAction::Status { json } => status(scope, t, json).await,
    }
}

async fn poll(
    scope: &crate::scope::Scope<'_>,
    t: &mut Term,
    args: PollArgs,
) -> anyhow::Result<Code> {
    let library = scope.libs.main();
    if t.remote && !args.once {
        anyhow::bail!(
            "a server is running on this data directory and polls the [[mail]] mailboxes of its config itself; `mail poll --once` polls now"
        );
    }
    let mailboxes = args.mailboxes(library, t)?;
    // Each mailbox's links go to its owner's library; without one, to --as's.
    let mut targets = Vec::new();
    for m in &mailboxes {
        check_owner(scope.accounts(), m).await?;
        targets.push(match &m.owner {
            Some(owner) => scope.libs.of_user_name(owner).await?,
            None => scope.library.clone(),
        });
    }
    if !args.once {
        writeln!(
            t.err,
            "linksnap: polling {} mailbox(es) (Ctrl-C stops)",
            mailboxes.len()
        )?;
    }
    loop {
        let mut failed = false;
        for (m, target) in mailboxes.iter().zip(&targets) {
            match linksnap_mail::poll_once(target, m).await {
                Ok(report) => print_report(t, m, &report, args.json)?,
                Err(e) => {
                    failed = true;
                    writeln!(t.err, "linksnap: error: {e}")?;
                }
            }
        }
        if args.once {
            return Ok(if failed { Code::Failure } else { Code::Ok });
        }
        let interval = mailboxes
            .iter()
            .map(|m| m.poll_interval)
            .min()
            .unwrap_or_default();
        tokio::time::sleep(interval).await;
    }
}

/// A mailbox's links are for a user of this library: that user must exist.
pub(crate) async fn check_owner(accounts: &Accounts, m: &Mailbox) -> anyhow::Result<()> {
    if let Some(owner) = &m.owner
        && !accounts.users().await?.iter().any(|u| &u.name == owner)
    {
        return Err(UsageError(format!(
            "mailbox {}: owner `{owner}` is not a user of this library (linksnap user add {owner})",
            m.name
        ))
        .into());
    }
    Ok(())
}

fn print_report(t: &mut Term, m: &Mailbox, r: &PollReport, json: bool) -> anyhow::Result<()> {
    if json {
        let v = serde_json::json!({
            "mailbox": m.name, "messages": r.messages, "ingested": r.ingested, "kept": r.kept,
            "known": r.known, "links_added": r.links_added, "links_existing": r.links_existing,
            "deleted": r.deleted, "deferred": r.deferred,
        });
        writeln!(t.out, "{v}")?;
    } else {
        writeln!(
            t.out,
            "{}: {} message(s): {} ingested ({} new link(s), {} already saved), {} kept, {} seen before, {} deleted{}",
            m.name,
            r.messages,
            r.ingested,
            r.links_added,
            r.links_existing,
            r.kept,
            r.known,
            r.deleted,
            if r.deferred > 0 {
                " (the poll's link limit was reached: the rest waits for the next poll)"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// With `--as`, that user's mailboxes; else every library's (the operator configured them
/// all, whoever receives the links).
async fn status(scope: &crate::scope::Scope<'_>, t: &mut Term, json: bool) -> anyhow::Result<Code> {
    let libraries = if scope.user.is_some() {
        vec![scope.library.clone()]
    } else {
        scope.libs.all().await
    };
    let mut all = Vec::new();
    for library in libraries {
        all.extend(library.mail_status().await?);
    }
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "mailbox": s.mailbox, "polls": s.polls, "errors": s.errors,
                    "last_poll_at": s.last_poll_at.map(rfc3339),
                    "last_ok_at": s.last_ok_at.map(rfc3339),
                    "last_error": s.last_error,
                    "messages_ingested": s.messages_ingested,
                    "messages_kept": s.messages_kept,
                    "links_added": s.links_added,
                    "kept": s.kept.iter().map(|k| serde_json::json!({
                        "uid": k.uid, "subject": k.subject, "sender": k.sender,
                        "reason": k.reason, "seen_at": rfc3339(k.seen_at),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(t.out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(Code::Ok);
    }
    if all.is_empty() {
        writeln!(t.err, "linksnap: no mailbox has been polled yet")?;
        return Ok(Code::Ok);
    }
    for s in &all {
        writeln!(
            t.out,
            "{}\n  polls {} (errors {}), last poll {}, last success {}\n  messages ingested {}, kept {}; links added {}",
            s.mailbox,
            s.polls,
            s.errors,
            s.last_poll_at.map_or_else(|| "never".into(), rfc3339),
            s.last_ok_at.map_or_else(|| "never".into(), rfc3339),
            s.messages_ingested,
            s.messages_kept,
            s.links_added
        )?;
        if let Some(e) = &s.last_error {
            writeln!(t.out, "  last error: {e}")?;
        }
        for k in &s.kept {
            writeln!(
                t.out,
                "  kept {} from {} \"{}\": {}",
                k.uid,
                if k.sender.is_empty() { "?" } else { &k.sender },
                k.subject,
                k.reason
            )?;
        }
    }
    Ok(Code::Ok)
}
