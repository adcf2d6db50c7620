//! The library commands: add, ls, show, tag, tags, recapture, work, versions, rm, open,
//! fsck, gc. Each opens the data directory (taking the writer lock) for its duration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use linksnap_capture::Capturer;
use linksnap_server::json::{HitJson, LinkJson, LinkWithVersions, TagJson, VersionJson, rfc3339};
use linksnap_store::{
    EditLink, Filter, Library, LinkId, LinkStatus, NormalizedUrl, Outcome, TagExpr, TagName,
};
use serde::Serialize;

use crate::args::FetchArgs;
use crate::exit::{Code, UsageError};

#[derive(Debug, Args)]
pub struct AddArgs {
    /// One or more URLs.
    #[arg(required = true, value_name = "URL")]
    urls: Vec<String>,
    /// Tag to add (repeatable; nested with `/`, e.g. lang/rust).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// A note to keep with the link.
    #[arg(long)]
    note: Option<String>,
    /// Capture now and wait; otherwise the capture is queued (`linksnap work` runs it).
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// A tag expression: `rust`, `lang AND NOT go`, `a OR (b c)`, `UNTAGGED`; a tag matches
    /// the tags nested under it. Repeatable: all must hold.
    #[arg(long = "tag", value_name = "EXPR")]
    tags: Vec<String>,
    /// Only links on this host or its subdomains.
    #[arg(long)]
    domain: Option<String>,
    /// Added on or after (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Added before (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Only favourites.
    #[arg(long)]
    favourite: bool,
    /// Only unread links.
    #[arg(long, conflicts_with = "read")]
    unread: bool,
    /// Only read links.
    #[arg(long)]
    read: bool,
    /// Only links in this capture state (queued, capturing, ok, failed).
    #[arg(long, value_parser = ["queued", "capturing", "ok", "failed"])]
    status: Option<String>,
}

impl FilterArgs {
    fn build(&self) -> anyhow::Result<Filter> {
        let tags = self
            .tags
            .iter()
            .map(|t| TagExpr::parse(t).map_err(|e| UsageError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter {
            tags,
            domain: self.domain.clone(),
            since: self.since.as_deref().map(parse_date).transpose()?,
            until: self.until.as_deref().map(parse_date).transpose()?,
            favourite: self.favourite.then_some(true),
            unread: if self.unread {
                Some(true)
            } else if self.read {
                Some(false)
            } else {
                None
            },
            status: self.status.as_deref().map(|s| match s {
                "queued" => LinkStatus::Queued,
                "capturing" => LinkStatus::Capturing,
                "ok" => LinkStatus::Ok,
                _ => LinkStatus::Failed,
            }),
            ids: None,
        })
    }
}

fn parse_date(s: &str) -> anyhow::Result<i64> {
    Ok(linksnap_server::json::parse_date(s).map_err(UsageError)?)
}

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find (title, URL, note, tags, page text); "quoted phrases" match as phrases.
    query: String,
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many results.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file (`-` for standard input).
    file: PathBuf,
    /// Its format (default: recognised from the content).
    #[arg(long, value_parser = ["netscape", "json", "urls"])]
    format: Option<String>,
    /// Do not queue captures of the new links.
    #[arg(long)]
    no_capture: bool,
    /// Give each bookmark its folder path as a nested tag (Netscape files).
    #[arg(long)]
    folders_as_tags: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Netscape bookmark HTML (browsers, Pinboard, linkding…) or JSON.
    #[arg(long, default_value = "netscape", value_parser = ["netscape", "json"])]
    format: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    id: i64,
    /// The older version (default: the one before the latest).
    v1: Option<i64>,
    /// The newer version (default: the latest).
    v2: Option<i64>,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    id: i64,
    /// A new title (kept by later captures).
    #[arg(long)]
    title: Option<String>,
    /// A new note.
    #[arg(long)]
    note: Option<String>,
    /// Mark as a favourite.
    #[arg(long, conflicts_with = "no_favourite")]
    favourite: bool,
    /// Unmark as a favourite.
    #[arg(long)]
    no_favourite: bool,
    /// Mark as read.
    #[arg(long, conflicts_with = "unread")]
    read: bool,
    /// Mark as unread.
    #[arg(long)]
    unread: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    id: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Link ids, then +name to add and -name to remove.
    #[arg(
        required = true,
        allow_hyphen_values = true,
        value_name = "ID|+TAG|-TAG"
    )]
    args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    #[command(subcommand)]
    action: Option<TagsAction>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum TagsAction {
    /// Rename a tag; the tags nested under it follow.
    Rename { old: String, new: String },
    /// Move every link of FROM... to INTO and delete FROM...
    Merge {
        #[arg(required = true, num_args = 2.., value_name = "FROM... INTO")]
        names: Vec<String>,
    },
    /// Delete a tag (and the tags nested under it) from every link.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct RecaptureArgs {
    id: i64,
    /// Capture now and wait; otherwise queued.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Stop when no queued capture is due, instead of waiting for more.
    #[arg(long)]
    once: bool,
    /// Stop after this many captures.
    #[arg(long, value_name = "N")]
    max_jobs: Option<usize>,
    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    id: i64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[arg(required = true)]
    ids: Vec<i64>,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    id: i64,
    /// The version (default: the latest).
    #[arg(long)]
    version: Option<i64>,
    /// Where to write (default: DATA/open/link-ID-vN.html).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Where a command's input comes from and its output goes: this process's terminal, or a
/// CLI connected to the server (which runs the command and streams the output back).
pub struct Term {
    pub out: Box<dyn Write + Send>,
    pub err: Box<dyn Write + Send>,
    pub stdin: Box<dyn std::io::Read + Send>,
    /// Relative paths on the command line are relative to this.
    pub cwd: PathBuf,
    /// Run by the server for a CLI elsewhere: no progress bars, no `work`.
    pub remote: bool,
}

impl Term {
    /// This process's standard streams.
    pub fn local() -> Self {
        Self {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            stdin: Box::new(std::io::stdin()),
            cwd: std::env::current_dir().unwrap_or_default(),
            remote: false,
        }
    }

    fn path(&self, p: &Path) -> PathBuf {
        self.cwd.join(p)
    }
}

/// Opens the data directory: its libraries and accounts (taking the writer lock).
pub async fn open_library(
    data: Option<&Path>,
) -> Result<linksnap_store::Libraries, linksnap_store::OpenError> {
    let path = linksnap_store::datadir::resolve(data)?;
    // Which query parameters a saved URL loses (tracking); the defaults otherwise.
    let mut rules = match std::env::var("LINKSNAP_STRIP_PARAMS") {
        Ok(list) => linksnap_store::UrlRules::parse(&list),
        Err(_) => linksnap_store::UrlRules::default(),
    };
    // The longest URL any way in accepts.
    if let Ok(raw) = std::env::var("LINKSNAP_MAX_URL_BYTES") {
        rules.max_url_bytes = crate::args::parse_size(&raw)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n >= 16)
            .ok_or_else(|| linksnap_store::OpenError::Setting {
                name: "LINKSNAP_MAX_URL_BYTES",
                reason: format!("`{raw}` is not a size of at least 16 bytes (e.g. 8192 or 8KiB)"),
            })?;
    }
    let libs = linksnap_store::Libraries::open(&path, rules).await?;
    if libs.main().data_dir().created {
        eprintln!("linksnap: created a new library in {}", path.display());
    } else {
        warn_if_shared(&path);
    }
    Ok(libs)
}

/// Warns when an existing data directory is open to other local accounts (made before
/// linksnap set its umask, or changed by hand): they could read every user's archive and
/// the account hashes.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "linksnap: warning: the data directory {} can be read by other accounts (mode {mode:o}); run `chmod -R go= {}`",
                path.display(),
                path.display()
            );
        }
    }
}

fn parse_tags(raw: &[String]) -> anyhow::Result<Vec<TagName>> {
    raw.iter()
        .map(|t| TagName::parse(t).map_err(|e| UsageError(format!("tag: {e}")).into()))
        .collect()
}

fn print_json(out: &mut dyn Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Runs queued jobs `only` (or due jobs, at most `max` of them, when empty), reporting each
/// on stderr. Returns how many failed for good.
async fn run_jobs(
    library: &Library,
    capturer: &dyn linksnap_capture::CaptureEngine,
    only: &[i64],
    max: Option<usize>,
    err: &mut dyn Write,
) -> anyhow::Result<usize> {
    let mut failed = 0;
    let mut report = |outcome: Outcome, link: LinkId| match outcome {
        Outcome::Saved {
            version,
            http_status,
        } => writeln!(
            err,
            "linksnap: link {link}: saved version {version} (HTTP {http_status})"
        ),
        Outcome::Retrying(why) => {
            writeln!(err, "linksnap: link {link}: failed, will retry: {why}")
        }
        Outcome::Failed(why) => {
            failed += 1;
            writeln!(err, "linksnap: link {link}: failed: {why}")
        }
    };
    if only.is_empty() {
        let mut done = 0;
        while max.is_none_or(|m| done < m)
            && let Some(job) = library.claim(None).await?
        {
            done += 1;
            let outcome = library.run_job(capturer, job).await?;
            report(outcome, job.link)?;
        }
    } else {
        for id in only {
            if let Some(job) = library.claim(Some(*id)).await? {
                let outcome = library.run_job(capturer, job).await?;
                report(outcome, job.link)?;
            } else {
                // A server's worker took it first: wait for that capture instead.
                while let Some(job) = library.job(*id).await?
                    && (job.state == "running" || job.state == "queued" && job.attempts == 0)
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let Some(job) = library.job(*id).await? else {
                    continue;
                };
                let link = library.get(job.link).await?;
                let outcome = match (job.state.as_str(), link.failure) {
                    ("failed", why) => Outcome::Failed(why.unwrap_or_default()),
                    ("queued" | "running", Some(why)) => Outcome::Retrying(why),
                    _ => match library.versions(job.link).await?.last() {
                        Some(v) => Outcome::Saved {
                            version: v.version,
                            http_status: v.http_status,
                        },
                        None => continue,
                    },
                };
                report(outcome, job.link)?;
            }
        }
    }
    Ok(failed)
}

/// The engine the library's captures are made with, from the fetch flags, the
/// environment and the library's config file.
fn capturer(
    fetch: &FetchArgs,
    library: &Library,
) -> anyhow::Result<Box<dyn linksnap_capture::CaptureEngine>> {
    let mut fetch = fetch.clone();
    fetch.apply_data_dir_config(&library.data_dir().path)?;
    let (options, names) = fetch.build(true)?;
    fetch.engine(Capturer::with_resolver(options, names)?)
}

pub async fn add(library: &Library, t: &mut Term, args: AddArgs) -> anyhow::Result<Code> {
    let tags = parse_tags(&args.tags)?;
    // Every URL is checked before anything is written: bad input adds nothing.
    let urls = args
        .urls
        .iter()
        .map(|u| {
            NormalizedUrl::parse(u, library.url_rules()).map_err(|e| UsageError(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut jobs = Vec::new();
    let out = &mut t.out;
    for url in &urls {
        // Each id is printed once its link is durable; the index is committed once at the end.
        // A new link's capture is queued in the same transaction.
        let (id, job) = library.add_queued(url, &tags, args.note.as_deref()).await?;
        if let Some(job) = job {
            jobs.push(job);
        } else if args.wait && library.get(id).await?.snapshots == 0 {
            jobs.push(library.enqueue(id).await?);
        }
        writeln!(out, "{id}")?;
    }
    out.flush()?;
    library.commit_index().await?;
    if args.wait && !jobs.is_empty() {
        let capturer = capturer(&args.fetch, library)?;
        if run_jobs(library, &*capturer, &jobs, None, &mut t.err).await? > 0 {
            return Ok(Code::Failure);
        }
    }
    Ok(Code::Ok)
}

pub async fn ls(library: &Library, t: &mut Term, args: LsArgs) -> anyhow::Result<Code> {
    let filter = args.filter.build()?;
    let links = library.list(&filter).await?;
    if args.json {
        print_json(
            &mut t.out,
            &links.iter().map(LinkJson::new).collect::<Vec<_>>(),
        )?;
    } else {
        let out = &mut t.out;
        for l in &links {
            let title = if l.title.is_empty() {
                l.url.as_str()
            } else {
                &l.title
            };
            let tags: Vec<&str> = l.tags.iter().map(TagName::as_str).collect();
            writeln!(
                out,
                "{:>6}  {:<9}  {}  [{}]",
                l.id,
                l.status.as_str(),
                title,
                tags.join(", ")
            )?;
        }
    }
    Ok(Code::Ok)
}

pub async fn show(library: &Library, t: &mut Term, args: ShowArgs) -> anyhow::Result<Code> {
    let link = library.get(LinkId(args.id)).await?;
    let versions = library.versions(link.id).await?;
    if args.json {
        print_json(
            &mut t.out,
            &LinkWithVersions {
                link: LinkJson::new(&link),
                versions: versions.iter().map(VersionJson::new).collect(),
            },
        )?;
    } else {
        let out = &mut t.out;
        writeln!(out, "id:        {}", link.id)?;
        writeln!(out, "url:       {}", link.url)?;
        writeln!(out, "title:     {}", link.title)?;
        let tags: Vec<&str> = link.tags.iter().map(TagName::as_str).collect();
        writeln!(out, "tags:      {}", tags.join(", "))?;
        writeln!(out, "status:    {}", link.status.as_str())?;
        if let Some(f) = &link.failure {
            writeln!(out, "failure:   {f}")?;
        }
        if !link.note.is_empty() {
            writeln!(out, "note:      {}", link.note)?;
        }
        writeln!(out, "added:     {}", rfc3339(link.created_at))?;
        writeln!(out, "versions:  {}", versions.len())?;
    }
    Ok(Code::Ok)
}

pub async fn search(library: &Library, t: &mut Term, args: SearchArgs) -> anyhow::Result<Code> {
    let filter = args.filter.build()?;
    let results = library.search(&args.query, &filter, args.limit).await?;
    if args.json {
        print_json(
            &mut t.out,
            &results
                .iter()
                .map(|r| HitJson::new(r, false))
                .collect::<Vec<_>>(),
        )?;
    } else {
        let out = &mut t.out;
        for r in &results {
            let title = if r.link.title.is_empty() {
                r.link.url.as_str()
            } else {
                &r.link.title
            };
            writeln!(out, "{:>6}  {:>6.2}  {}", r.link.id, r.score, title)?;
            let plain = r
                .snippet
                .replace("<b>", "*")
                .replace("</b>", "*")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            writeln!(out, "        {}", plain.replace('\n', " "))?;
        }
    }
    Ok(Code::Ok)
}

pub async fn diff(library: &Library, t: &mut Term, args: DiffArgs) -> anyhow::Result<Code> {
    let id = LinkId(args.id);
    let versions = library.versions(id).await?;
    let (v1, v2) = match (args.v1, args.v2) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => {
            return Err(
                UsageError("give both versions, or none for the last two".to_owned()).into(),
            );
        }
        _ => match versions.as_slice() {
            [.., a, b] => (a.version, b.version),
            _ => anyhow::bail!(
                "link {id} has {} version(s); a diff needs two",
                versions.len()
            ),
        },
    };
    let (a, b) = (
        library.version_text(id, v1).await?,
        library.version_text(id, v2).await?,
    );
    let when = |v: i64| {
        versions
            .iter()
            .find(|x| x.version == v)
            .map_or_else(String::new, |x| rfc3339(x.captured_at))
    };
    let diff = similar::TextDiff::from_lines(&a, &b);
    let out = &mut t.out;
    write!(
        out,
        "{}",
        diff.unified_diff().context_radius(2).header(
            &format!("link {id} v{v1} {}", when(v1)),
            &format!("link {id} v{v2} {}", when(v2))
        )
    )?;
    if a == b {
        writeln!(
            t.err,
            "linksnap: the readable text of v{v1} and v{v2} is the same"
        )?;
    }
    Ok(Code::Ok)
}

impl ImportArgs {
    /// Whether the bookmarks come from standard input (`-`).
    pub fn reads_stdin(&self) -> bool {
        self.file.as_os_str() == "-"
    }
}

pub async fn import(library: &Library, t: &mut Term, args: ImportArgs) -> anyhow::Result<Code> {
    use linksnap_store::import::{Format, ImportError};
    let file = t.path(&args.file);
    let input: Box<dyn std::io::Read + Send> = if args.reads_stdin() {
        std::mem::replace(&mut t.stdin, Box::new(std::io::empty()))
    } else {
        Box::new(
            std::fs::File::open(&file)
                .map_err(|e| UsageError(format!("cannot read {}: {e}", args.file.display())))?,
        )
    };
    let total = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let progress = if t.remote {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let bar = progress.clone();
    let report = library
        .import_from(
            input,
            args.format.as_deref().and_then(Format::parse),
            !args.no_capture,
            args.folders_as_tags,
            linksnap_store::import::DEFAULT_MAX_IMPORT_ENTRIES,
            &mut move |n| bar.inc(n),
        )
        .await
        .map_err(|e| -> anyhow::Error {
            match e {
                ImportError::Format(m) => {
                    anyhow::anyhow!("{}: {m}; nothing was imported", args.file.display())
                }
                ImportError::Store(e) => e.into(),
            }
        })?;
    progress.finish_and_clear();
    for (what, why) in report.skipped.iter().take(20) {
        writeln!(t.err, "linksnap: skipped {what}: {why}")?;
    }
    if report.skipped_count > 20 {
        writeln!(
            t.err,
            "linksnap: … and {} more skipped",
            report.skipped_count - 20
        )?;
    }
    writeln!(
        t.err,
        "linksnap: imported {} new links, {} already saved, {} skipped{}",
        report.added,
        report.existing,
        report.skipped_count,
        if args.no_capture || report.added == 0 {
            ""
        } else {
            "; their captures are queued (linksnap work)"
        }
    )?;
    Ok(Code::Ok)
}

pub async fn export(library: &Library, t: &mut Term, args: ExportArgs) -> anyhow::Result<Code> {
    let links = library.list(&Filter::default()).await?;
    if args.format == "json" {
        print_json(
            &mut t.out,
            &links.iter().map(LinkJson::new).collect::<Vec<_>>(),
        )?;
        return Ok(Code::Ok);
    }
    let mut out = std::io::BufWriter::new(&mut t.out);
    linksnap_store::import::write_netscape(&links, &mut out)?;
    out.flush()?;
    Ok(Code::Ok)
}

pub async fn reindex(library: &Library, t: &mut Term) -> anyhow::Result<Code> {
    let n = library.reindex().await?;
    writeln!(t.err, "linksnap: reindexed {n} links")?;
    Ok(Code::Ok)
}

pub async fn edit(library: &Library, _t: &mut Term, args: EditArgs) -> anyhow::Result<Code> {
    let edit = EditLink {
        title: args.title,
        note: args.note,
        favourite: if args.favourite {
            Some(true)
        } else if args.no_favourite {
            Some(false)
        } else {
            None
        },
        unread: if args.unread {
            Some(true)
        } else if args.read {
            Some(false)
        } else {
            None
        },
    };
    library.edit(LinkId(args.id), &edit).await?;
    Ok(Code::Ok)
}

pub async fn tag(library: &Library, _t: &mut Term, args: TagArgs) -> anyhow::Result<Code> {
    let (mut ids, mut add, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for a in &args.args {
        if let Some(t) = a.strip_prefix('+') {
            add.push(TagName::parse(t).map_err(|e| UsageError(format!("tag: {e}")))?);
        } else if let Some(t) = a.strip_prefix('-') {
            remove.push(TagName::parse(t).map_err(|e| UsageError(format!("tag: {e}")))?);
        } else {
            ids.push(LinkId(a.parse().map_err(|_| {
                UsageError(format!("`{a}` is not a link id, +tag or -tag"))
            })?));
        }
    }
    if ids.is_empty() || add.is_empty() && remove.is_empty() {
        return Err(UsageError("usage: linksnap tag ID... +TAG|-TAG...".to_owned()).into());
    }
    library.retag(&ids, &add, &remove).await?;
    Ok(Code::Ok)
}

pub async fn tags(library: &Library, t: &mut Term, args: TagsArgs) -> anyhow::Result<Code> {
    match args.action {
        None => {
            let tags = library.tags().await?;
            if args.json {
                print_json(
                    &mut t.out,
                    &tags
                        .iter()
                        .map(|(t, n)| TagJson::new(t, *n))
                        .collect::<Vec<_>>(),
                )?;
            } else {
                let out = &mut t.out;
                for (t, n) in &tags {
                    writeln!(out, "{n:>6}  {t}")?;
                }
            }
        }
        Some(TagsAction::Rename { old, new }) => {
            let (old, new) = (parse_tags(&[old])?.remove(0), parse_tags(&[new])?.remove(0));
            let n = library.rename_tag(&old, &new).await?;
            writeln!(t.err, "linksnap: renamed {n} tag(s)")?;
        }
        Some(TagsAction::Merge { mut names }) => {
            let into = parse_tags(&[names.pop().context("INTO is required")?])?.remove(0);
            let from = parse_tags(&names)?;
            let n = library.merge_tags(&from, &into).await?;
            writeln!(
                t.err,
                "linksnap: merged into {into} ({n} link tag(s) moved)"
            )?;
        }
        Some(TagsAction::Delete { name }) => {
            let tag = parse_tags(&[name])?.remove(0);
            let n = library.delete_tag(&tag).await?;
            writeln!(t.err, "linksnap: deleted {n} tag(s)")?;
        }
    }
    Ok(Code::Ok)
}

pub async fn recapture(
    library: &Library,
    t: &mut Term,
    args: RecaptureArgs,
) -> anyhow::Result<Code> {
    let id = LinkId(args.id);
    library.get(id).await?;
    let job = library.enqueue(id).await?;
    if args.wait {
        let capturer = capturer(&args.fetch, library)?;
        if run_jobs(library, &*capturer, &[job], None, &mut t.err).await? > 0 {
            return Ok(Code::Failure);
        }
    }
    Ok(Code::Ok)
}

pub async fn work(library: &Library, t: &mut Term, args: WorkArgs) -> anyhow::Result<Code> {
    if t.remote {
        anyhow::bail!(
            "a server is running on this data directory and captures queued links itself (`linksnap serve --workers N`)"
        );
    }
    let capturer = capturer(&args.fetch, library)?;
    if !args.once {
        writeln!(
            t.err,
            "linksnap: capturing queued links in {} (Ctrl-C stops)",
            library.data_dir().path.display()
        )?;
    }
    loop {
        run_jobs(library, &*capturer, &[], args.max_jobs, &mut t.err).await?;
        if args.once || args.max_jobs.is_some() {
            let left = library.queued_jobs().await?;
            if left > 0 {
                writeln!(
                    t.err,
                    "linksnap: {left} capture(s) are waiting to be retried later"
                )?;
            }
            return Ok(Code::Ok);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Code::Ok),
        }
    }
}

pub async fn versions(library: &Library, t: &mut Term, args: VersionsArgs) -> anyhow::Result<Code> {
    let versions = library.versions(LinkId(args.id)).await?;
    if args.json {
        print_json(
            &mut t.out,
            &versions.iter().map(VersionJson::new).collect::<Vec<_>>(),
        )?;
    } else {
        let out = &mut t.out;
        for v in &versions {
            writeln!(
                out,
                "v{:<3} {}  HTTP {}  {:>9} bytes  {} inlined, {} left out  {}",
                v.version,
                rfc3339(v.captured_at),
                v.http_status,
                v.bytes,
                v.inlined,
                v.failed,
                v.title
            )?;
        }
    }
    Ok(Code::Ok)
}

pub async fn rm(library: &Library, _t: &mut Term, args: RmArgs) -> anyhow::Result<Code> {
    for id in &args.ids {
        library.get(LinkId(*id)).await?;
    }
    for id in args.ids {
        library.remove(LinkId(id)).await?;
    }
    Ok(Code::Ok)
}

pub async fn open(library: &Library, t: &mut Term, args: OpenArgs) -> anyhow::Result<Code> {
    let id = LinkId(args.id);
    let (bytes, media_type) = library.render(id, args.version).await?;
    let version = match args.version {
        Some(v) => v,
        None => library.versions(id).await?.last().map_or(0, |v| v.version),
    };
    let path = match args.output {
        Some(p) => t.path(&p),
        None => {
            let ext = if media_type.starts_with("text/html") {
                "html"
            } else {
                media_type
                    .split('/')
                    .nth(1)
                    .unwrap_or("bin")
                    .split(['+', ';'])
                    .next()
                    .unwrap_or("bin")
            };
            let dir = library.data_dir().path.join("open");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.join(format!("link-{id}-v{version}.{ext}"))
        }
    };
    write_file(&path, &bytes)?;
    writeln!(t.out, "{}", path.display())?;
    Ok(Code::Ok)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

pub async fn fsck(library: &Library, t: &mut Term) -> anyhow::Result<Code> {
    let report = library.fsck().await?;
    for (what, blob, problem) in &report.damaged {
        writeln!(t.out, "damaged: {what}: blob {blob}: {problem}")?;
    }
    if report.index_missing + report.index_extra > 0 {
        writeln!(
            t.out,
            "search index: {} links missing, {} removed links still indexed (run `linksnap reindex`)",
            report.index_missing, report.index_extra
        )?;
    }
    for id in &report.stranded {
        writeln!(
            t.out,
            "stranded: link {id} is queued or capturing with no job (run `linksnap recapture {id}`)"
        )?;
    }
    writeln!(
        t.err,
        "linksnap: fsck: {} blobs re-hashed, {} damaged or missing, {} unreferenced (gc removes them); search index {}; {} stranded links",
        report.blobs_checked,
        report.damaged.len(),
        report.unreferenced,
        if report.index_missing + report.index_extra == 0 {
            "agrees with the database"
        } else {
            "disagrees with the database"
        },
        report.stranded.len()
    )?;
    Ok(if report.is_clean() {
        Code::Ok
    } else {
        Code::Failure
    })
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep unreferenced blobs younger than this many seconds: a capture in progress
    /// writes its blobs before the rows that reference them.
    #[arg(long, value_name = "SECS", default_value_t = linksnap_store::library::GC_GRACE.as_secs())]
    older_than: u64,
}

pub async fn gc(library: &Library, t: &mut Term, args: GcArgs) -> anyhow::Result<Code> {
    let report = library
        .gc_older_than(Duration::from_secs(args.older_than))
        .await?;
    writeln!(
        t.err,
        "linksnap: gc: removed {} blobs ({} bytes); kept {} unreferenced blobs younger than {} s",
        report.removed, report.freed_bytes, report.kept_young, args.older_than
    )?;
    Ok(Code::Ok)
}
