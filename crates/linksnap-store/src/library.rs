//! The library's operations: links, tags, snapshot versions, integrity.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use linksnap_capture::{Capture, Snapshot, SnapshotParts};
use sqlx::{Row as _, SqlitePool};

use crate::blob::{BlobError, BlobHash, BlobStore};
use crate::datadir::{DataDir, OpenError};
use crate::domain::{NormalizedUrl, TagExpr, TagName, UrlRules};
use crate::indexing::INDEX_CHUNK;
use crate::search::IndexFilter;

/// A link's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub i64);

impl std::fmt::Display for LinkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a link's capture stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// Waiting for a capture.
    Queued,
    /// Being captured.
    Capturing,
    /// The latest capture succeeded.
    Ok,
    /// The latest capture failed; see [`Link::failure`].
    Failed,
}

impl LinkStatus {
    /// The stored and printed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Capturing => "capturing",
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "capturing" => Self::Capturing,
            "ok" => Self::Ok,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// A saved link.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: LinkId,
    pub url: NormalizedUrl,
    pub title: String,
    pub note: String,
    pub favourite: bool,
    pub unread: bool,
    pub status: LinkStatus,
    /// The reason of the last failed capture.
    pub failure: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
    /// Full tag names, sorted.
    pub tags: Vec<TagName>,
    /// How many snapshot versions it has.
    pub snapshots: i64,
}

/// Which links to list. Every set field must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Tag expressions, all of which must hold.
    pub tags: Vec<TagExpr>,
    /// Host equal to this, or a subdomain of it.
    pub domain: Option<String>,
    /// Added at or after (Unix ms).
    pub since: Option<i64>,
    /// Added before (Unix ms).
    pub until: Option<i64>,
    pub favourite: Option<bool>,
    pub unread: Option<bool>,
    pub status: Option<LinkStatus>,
    /// Only these links (a search's hits, or one link).
    pub ids: Option<Vec<LinkId>>,
}

impl Filter {
    fn push_sql(&self, qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>) {
        // With an id list (a page of search hits) a correlated lookup per link is cheapest;
        // over the whole library, the set of matching links is built once.
        let per_link = self.ids.is_some();
        for expr in &self.tags {
            qb.push(" AND ");
            push_tag_expr(qb, expr, per_link);
        }
        if let Some(d) = &self.domain {
            let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
            qb.push(" AND (l.host = ")
                .push_bind(d.clone())
                .push(" OR l.host LIKE ")
                .push_bind(format!("%.{d}"))
                .push(")");
        }
        if let Some(t) = self.since {
            qb.push(" AND l.created_at >= ").push_bind(t);
        }
        if let Some(t) = self.until {
            qb.push(" AND l.created_at < ").push_bind(t);
        }
        if let Some(f) = self.favourite {
            qb.push(" AND l.favourite = ").push_bind(i64::from(f));
        }
        if let Some(u) = self.unread {
            qb.push(" AND l.unread = ").push_bind(i64::from(u));
        }
        if let Some(s) = self.status {
            qb.push(" AND l.status = ").push_bind(s.as_str());
        }
        if let Some(ids) = &self.ids {
            if ids.is_empty() {
                qb.push(" AND 0");
            } else {
                qb.push(" AND l.id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(id.0);
                }
                qb.push(")");
            }
        }
    }
}

/// The binds of "this tag or one nested under it": `key = ?1 OR substr(key, 1, ?2) = ?3`,
/// with ?2 in characters, as SQLite's `substr` counts them.
fn subtree(tag: &TagName) -> (String, i64, String) {
    let prefix = format!("{}/", tag.key());
    let len = prefix.chars().count() as i64;
    (tag.key().to_owned(), len, prefix)
}

fn push_tag_expr(qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>, expr: &TagExpr, per_link: bool) {
    match expr {
        TagExpr::Tag(tag) => {
            let (key, len, prefix) = subtree(tag);
            if per_link {
                qb.push("EXISTS (SELECT 1 FROM link_tags lt JOIN tags t ON t.id = lt.tag_id WHERE lt.link_id = l.id AND (t.key = ");
            } else {
                qb.push("l.id IN (SELECT lt.link_id FROM link_tags lt WHERE lt.tag_id IN (SELECT t.id FROM tags t WHERE (t.key = ");
            }
            qb.push_bind(key)
                .push(" OR substr(t.key, 1, ")
                .push_bind(len)
                .push(") = ")
                .push_bind(prefix)
                .push("))");
            if !per_link {
                qb.push(")");
            }
        }
        TagExpr::Untagged => {
            qb.push(if per_link {
                "NOT EXISTS (SELECT 1 FROM link_tags lt WHERE lt.link_id = l.id)"
            } else {
                "l.id NOT IN (SELECT lt.link_id FROM link_tags lt)"
            });
        }
        TagExpr::Not(inner) => {
            qb.push("NOT (");
            push_tag_expr(qb, inner, per_link);
            qb.push(")");
        }
        TagExpr::And(terms) | TagExpr::Or(terms) => {
            let op = if matches!(expr, TagExpr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, t) in terms.iter().enumerate() {
                if i > 0 {
                    qb.push(op);
                }
                push_tag_expr(qb, t, per_link);
            }
            qb.push(")");
        }
    }
}

/// What [`Library::edit`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EditLink {
    pub title: Option<String>,
    pub note: Option<String>,
    pub favourite: Option<bool>,
    pub unread: Option<bool>,
}

/// One snapshot version of a link.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: i64,
    /// Unix milliseconds.
    pub captured_at: i64,
    pub final_url: String,
    pub http_status: u16,
    pub media_type: String,
    /// `html` or `original`.
    pub kind: String,
    /// Size of the file a user downloads.
    pub bytes: i64,
    pub title: String,
    /// Resources inlined / left out.
    pub inlined: i64,
    pub failed: i64,
}

/// A node of the tag tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagNode {
    /// Full name as written, e.g. `Lang/Rust`.
    pub name: String,
    /// Case-folded key.
    pub key: String,
    /// 0 for a top-level tag.
    pub depth: usize,
    /// Links carrying exactly this tag.
    pub own: i64,
    /// Distinct links carrying it or a tag under it.
    pub total: i64,
}

/// One resource of a snapshot version: what was referenced and what became of it.
#[derive(Debug, Clone)]
pub struct ResourceRow {
    pub url: String,
    /// stylesheet, image, font, script, frame…
    pub kind: String,
    /// `inlined`, or why not (`refused`, `too-large`, `connect`…).
    pub outcome: String,
    pub http_status: Option<u16>,
    pub media_type: Option<String>,
    pub bytes: Option<i64>,
    pub error: Option<String>,
}

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No link with that id.
    #[error("no link with id {0}")]
    NoLink(LinkId),
    /// The link has no such version (or none at all).
    #[error("link {link} has no snapshot version {version}")]
    NoVersion {
        /// The link.
        link: LinkId,
        /// The version asked for (0: the latest).
        version: i64,
    },
    /// No tag by that name.
    #[error("no tag named `{0}`")]
    NoTag(String),
    /// Renaming onto a tag that exists.
    #[error("a tag named `{0}` exists already: merge instead")]
    TagExists(String),
    /// A snapshot's content is damaged or missing.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The search index failed.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// Accounts (users, sessions, tokens) and bans live in the data directory's own
    /// library, not in a user's.
    #[error("accounts and bans are kept in the data directory's own library, not a user's")]
    NotAccounts,
    /// A note, title or tag list over its cap.
    #[error("{what} is over its limit of {limit}")]
    OverLimit { what: &'static str, limit: usize },
}

/// Largest note, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 << 10;
/// Largest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 4 << 10;
/// Most tags one link carries.
pub const MAX_TAGS_PER_LINK: usize = 100;

/// Refuses a note or title over its cap.
fn check_text(what: &'static str, text: Option<&str>, limit: usize) -> Result<(), StoreError> {
    if text.is_some_and(|t| t.len() > limit) {
        return Err(StoreError::OverLimit { what, limit });
    }
    Ok(())
}

/// Refuses a link that would carry more than [`MAX_TAGS_PER_LINK`] tags (checked inside
/// the transaction that adds them, which is then dropped: nothing is kept).
async fn check_tag_count(tx: &mut sqlx::SqliteConnection, id: i64) -> Result<(), StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM link_tags WHERE link_id = ?")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if usize::try_from(n).unwrap_or(usize::MAX) > MAX_TAGS_PER_LINK {
        return Err(StoreError::OverLimit {
            what: "a link's number of tags",
            limit: MAX_TAGS_PER_LINK,
        });
    }
    Ok(())
}

impl StoreError {
    /// The machine's fault behind this error (the database stayed locked, the disk is
    /// full, the directory is read-only), when it is one: nothing the request did, so
    /// callers answer "try again" rather than "failed".
    #[must_use]
    pub fn fault(&self) -> Option<crate::fault::Fault> {
        match self {
            Self::Db(e) => crate::fault::Fault::of_sqlx(e),
            Self::Blob(e) => e.fault(),
            Self::Search(e) => e.fault(),
            _ => None,
        }
    }
}

/// The library: a data directory opened for writing.
#[derive(Debug)]
pub struct Library {
    dir: DataDir,
    rules: UrlRules,
    /// The full-text index, derived from the database, and its lag.
    pub(crate) search: crate::indexing::IndexState,
    /// The bans in force (see `bans`).
    pub(crate) live_bans: crate::bans::LiveBans,
    /// The data directory's own library keeps the accounts and bans; a user's does not.
    accounts: bool,
    /// Unique among the libraries this process opened (see [`Library::id`]).
    id: u64,
    /// Sessions and tokens verified at the current generation.
    pub(crate) credentials: crate::auth::CredentialCache,
}

/// One search result.
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub link: Link,
    pub score: f32,
    /// HTML: matched terms in `<b>`.
    pub snippet: String,
}

/// Unix milliseconds now: the clock of every time the library records.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What [`Library::fsck`] found.
#[derive(Debug, Default)]
pub struct FsckReport {
    /// Blobs read and re-hashed.
    pub blobs_checked: usize,
    /// Rows referencing a blob that is missing or damaged: (what, blob, problem).
    pub damaged: Vec<(String, String, String)>,
    /// Blobs no row references (collected by `gc`).
    pub unreferenced: usize,
    /// Links the search index lacks, and documents of links the database no longer has
    /// (repaired automatically on open and while running).
    pub index_missing: usize,
    pub index_extra: usize,
    /// Links shown as queued or capturing with no job that will capture them (a link
    /// imported without a capture, and never queued, is not counted).
    pub stranded: Vec<LinkId>,
}

impl FsckReport {
    /// Whether everything checked is as it should be (unreferenced blobs are normal).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
            && self.index_missing == 0
            && self.index_extra == 0
            && self.stranded.is_empty()
    }
}

/// What [`Library::gc`] removed.
#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: usize,
    pub freed_bytes: u64,
    /// Unreferenced but younger than the grace period: a capture may be about to use them.
    pub kept_young: usize,
}

/// Source of [`Library::id`].
static NEXT_LIBRARY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A filter selecting at most this many links is applied inside the search index.
pub const MAX_SELECTIVE: usize = 1000;
/// Most search hits ranked before a filter is applied.
pub const MAX_FILTERED_CANDIDATES: usize = 30_000;

/// Unreferenced blobs younger than this are kept by `gc`: a capture writes its blobs
/// before the row that references them commits.
pub const GC_GRACE: Duration = Duration::from_secs(3600);

impl Library {
    /// Opens (creating if needed) the library at `path` for writing.
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Self::open_with(path, UrlRules::default()).await
    }

    /// [`Library::open`] with other URL normalisation rules.
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open_with(path: &Path, rules: UrlRules) -> Result<Self, OpenError> {
        Self::open_as(path, rules, true).await
    }

    /// Opens (creating it if needed) a user's library, in a directory of its own: their
    /// links, tags, snapshots and index, and nothing else.
    ///
    /// # Errors
    /// As [`Library::open`].
    pub async fn open_user_library(path: &Path, rules: UrlRules) -> Result<Self, OpenError> {
        Self::open_as(path, rules, false).await
    }

    async fn open_as(path: &Path, rules: UrlRules, accounts: bool) -> Result<Self, OpenError> {
        let dir = DataDir::open(path).await?;
        let index_dir = path.join("index");
        let (search, rebuild) =
            crate::indexing::open_index(path, &index_dir).map_err(|reason| OpenError::Dir {
                path: index_dir.clone(),
                fault: crate::datadir::full_disk_fault(&index_dir),
                reason: format!("{reason}{}", crate::datadir::space_hint(&index_dir)),
            })?;
        let library = Self {
            dir,
            rules,
            search: crate::indexing::IndexState::new(search, index_dir.clone()),
            live_bans: crate::bans::LiveBans::default(),
            accounts,
            id: NEXT_LIBRARY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            credentials: crate::auth::CredentialCache::default(),
        };
        let caught_up = if rebuild {
            library.reindex().await.map(|_| ())
        } else {
            match library.catch_up_index().await {
                // A removal whose index commit was lost is not in the watermark's view.
                Ok(()) => library.reconcile_index().await.map(|_| ()),
                Err(e) => Err(e),
            }
        };
        caught_up.map_err(|e| OpenError::Dir {
            fault: e
                .fault()
                .or_else(|| crate::datadir::full_disk_fault(&index_dir)),
            path: index_dir.clone(),
            reason: format!(
                "bringing the search index up to date: {e}{}",
                crate::datadir::space_hint(&index_dir)
            ),
        })?;
        let requeued =
            library
                .return_running_jobs(true)
                .await
                .map_err(|e| OpenError::Database {
                    path: path.join("linksnap.db"),
                    fault: e.fault(),
                    reason: e.to_string(),
                })?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "captures interrupted by a process that died are queued again"
            );
        }
        if accounts {
            library.bans().await.map_err(|e| OpenError::Database {
                path: path.join("linksnap.db"),
                fault: e.fault(),
                reason: e.to_string(),
            })?;
        }
        Ok(library)
    }

    /// Whether this is the data directory's own library (accounts, bans), not a user's.
    #[must_use]
    pub fn keeps_accounts(&self) -> bool {
        self.accounts
    }

    pub(crate) fn accounts_only(&self) -> Result<(), StoreError> {
        if self.accounts {
            Ok(())
        } else {
            Err(StoreError::NotAccounts)
        }
    }

    /// Identifies this library among those the process opened (never reused), for caches
    /// keyed by library.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Moves whenever what a read of this library returns may have changed: after every
    /// commit to its database has landed (counted by SQLite's WAL hook, whoever wrote) and
    /// after every reload of its search index. A result computed by reads that began after
    /// `generation()` returned `g` is still current while `generation()` returns `g`: what
    /// the server's read caches rely on.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.dir.commits.get()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// The URL normalisation rules.
    pub fn url_rules(&self) -> &UrlRules {
        &self.rules
    }

    fn db(&self) -> &SqlitePool {
        &self.dir.db
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.dir.db
    }

    /// The writer connection, for a write of one statement.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.dir.writer
    }

    /// A write transaction on the writer connection, holding SQLite's write lock from its
    /// `BEGIN`: a transaction that reads before it writes can then never meet a commit
    /// made in between (SQLITE_BUSY_SNAPSHOT, which no busy timeout retries).
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        match self.dir.writer.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                // SQLite rolled a transaction back by itself (a full disk does) and sqlx,
                // whose ROLLBACK then failed, still counts it open: the connection can
                // begin nothing again. Close it; the pool opens a fresh one.
                tracing::warn!("replacing the writer connection after a transaction SQLite ended");
                if let Ok(conn) = self.dir.writer.acquire().await {
                    let _ = conn.close().await;
                }
                Ok(self.dir.writer.begin_with("BEGIN IMMEDIATE").await?)
            }
            other => Ok(other?),
        }
    }

    fn blobs(&self) -> &BlobStore {
        &self.dir.blobs
    }

    /// Like [`Library::add`], but the search index is only written, not committed: call
    /// [`Library::commit_index`] after a batch. The link itself is durable when this returns;
    /// if the process dies before the index commit, opening the library indexes it.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn add_unindexed(
        &self,
        url: &NormalizedUrl,
        tags: &[TagName],
        note: Option<&str>,
    ) -> Result<(LinkId, bool), StoreError> {
        let (id, created, _) = self.add_link(url, tags, note, false).await?;
        Ok((id, created))
    }

    /// [`Library::add_unindexed`], and a new link's capture queued in the same
    /// transaction (so no link is ever saved without its capture). Returns the link and,
    /// when it was new, its job.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn add_queued(
        &self,
        url: &NormalizedUrl,
        tags: &[TagName],
        note: Option<&str>,
    ) -> Result<(LinkId, Option<i64>), StoreError> {
        let (id, _, job) = self.add_link(url, tags, note, true).await?;
        Ok((id, job))
    }

    /// Adds or finds a link; with `queue`, a new link gets a job due now. Returns the link,
    /// whether it was created, and its new job.
    async fn add_link(
        &self,
        url: &NormalizedUrl,
        tags: &[TagName],
        note: Option<&str>,
        queue: bool,
    ) -> Result<(LinkId, bool, Option<i64>), StoreError> {
        check_text("the note (bytes)", note, MAX_NOTE_BYTES)?;
        if tags.len() > MAX_TAGS_PER_LINK {
            return Err(StoreError::OverLimit {
                what: "a link's number of tags",
                limit: MAX_TAGS_PER_LINK,
            });
        }
        let _pending = self.pending_change();
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM links WHERE url = ?")
            .bind(url.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let (id, created) = match existing {
            Some(id) => (id, false),
            None => {
                let next = next_id(&mut tx, "links").await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO links (id, url, host, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(next)
                .bind(url.as_str())
                .bind(url.host())
                .bind(note.unwrap_or(""))
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                (id, true)
            }
        };
        if !created && let Some(note) = note {
            sqlx::query("UPDATE links SET note = ?, updated_at = ? WHERE id = ?")
                .bind(note)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for tag in tags {
            let tag_id = upsert_tag(&mut tx, tag).await?;
            sqlx::query("INSERT OR IGNORE INTO link_tags (link_id, tag_id) VALUES (?, ?)")
                .bind(id)
                .bind(tag_id)
                .execute(&mut *tx)
                .await?;
        }
        if !tags.is_empty() {
            check_tag_count(&mut tx, id).await?;
        }
        let job = if created && queue {
            Some(
                sqlx::query_scalar(
                    "INSERT INTO jobs (link_id, run_after, created_at) VALUES (?, ?, ?) RETURNING id",
                )
                .bind(id)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?,
            )
        } else {
            None
        };
        tx.commit().await?;
        // Committed: an indexing failure from here on is the index's to catch up on.
        if let Err(e) = self.index_docs(&[id]).await {
            self.fell_behind(&e);
        }
        Ok((LinkId(id), created, job))
    }

    /// One link.
    ///
    /// # Errors
    /// [`StoreError::NoLink`].
    pub async fn get(&self, id: LinkId) -> Result<Link, StoreError> {
        let filter = Filter {
            ids: Some(vec![id]),
            ..Filter::default()
        };
        let mut links = self.list(&filter).await?;
        links.pop().ok_or(StoreError::NoLink(id))
    }

    /// Adds `url`, or finds the link that has it; adds `tags` either way, and the note
    /// when given. Returns the link and whether it was new. Searchable at once.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn add(
        &self,
        url: &NormalizedUrl,
        tags: &[TagName],
        note: Option<&str>,
    ) -> Result<(LinkId, bool), StoreError> {
        let added = self.add_unindexed(url, tags, note).await?;
        self.commit_index().await?;
        Ok(added)
    }

    /// Edits what the user owns of a link. A title set here is kept by later captures.
    ///
    /// # Errors
    /// [`StoreError::NoLink`].
    pub async fn edit(&self, id: LinkId, edit: &EditLink) -> Result<(), StoreError> {
        check_text("the note (bytes)", edit.note.as_deref(), MAX_NOTE_BYTES)?;
        check_text("the title (bytes)", edit.title.as_deref(), MAX_TITLE_BYTES)?;
        let _pending = self.pending_change();
        let n = sqlx::query(
            "UPDATE links SET title = coalesce(?, title), title_edited = CASE WHEN ? IS NULL THEN title_edited ELSE 1 END, \
             note = coalesce(?, note), favourite = coalesce(?, favourite), unread = coalesce(?, unread), updated_at = ? WHERE id = ?",
        )
        .bind(edit.title.as_deref())
        .bind(edit.title.as_deref())
        .bind(edit.note.as_deref())
        .bind(edit.favourite)
        .bind(edit.unread)
        .bind(now_ms())
        .bind(id.0)
        .execute(self.writer())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NoLink(id));
        }
        self.reindex_links(&[id.0]).await?;
        Ok(())
    }

    /// Links matching `filter`, newest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Link>, StoreError> {
        self.list_range(filter, None).await
    }

    /// The ids of the links `filter` selects, newest first (an export reads the links in
    /// pieces by them).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn list_ids(&self, filter: &Filter) -> Result<Vec<LinkId>, StoreError> {
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT l.id FROM links l WHERE 1 = 1");
        filter.push_sql(&mut qb);
        qb.push(" ORDER BY l.created_at DESC, l.id DESC");
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(self.db()).await?;
        Ok(ids.into_iter().map(LinkId).collect())
    }

    /// One page of [`Library::list`]: at most `limit` links after skipping `offset`, and how
    /// many links the filter selects in all.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn list_page(
        &self,
        filter: &Filter,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<Link>, i64), StoreError> {
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT count(*) FROM links l WHERE 1 = 1");
        filter.push_sql(&mut qb);
        let total: i64 = qb.build_query_scalar().fetch_one(self.db()).await?;
        let links = self.list_range(filter, Some((limit, offset))).await?;
        Ok((links, total))
    }

    async fn list_range(
        &self,
        filter: &Filter,
        range: Option<(usize, usize)>,
    ) -> Result<Vec<Link>, StoreError> {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT l.id, l.url, l.title, l.note, l.favourite, l.unread, l.status, l.failure, l.created_at, l.updated_at, \
             (SELECT count(*) FROM snapshots s WHERE s.link_id = l.id) AS snapshots \
             FROM links l WHERE 1 = 1",
        );
        filter.push_sql(&mut qb);
        if filter.ids.is_none() {
            // With ids (a search's hits) order is the caller's, and ordering by date here
            // would make SQLite walk the date index past every link instead of looking the
            // ids up.
            qb.push(" ORDER BY l.created_at DESC, l.id DESC");
        }
        if let Some((limit, offset)) = range {
            qb.push(" LIMIT ")
                .push_bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .push(" OFFSET ")
                .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        }
        let rows = qb.build().fetch_all(self.db()).await?;
        let mut links = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.get("id");
            let url: String = row.get("url");
            let Some(url) = NormalizedUrl::from_stored(&url) else {
                tracing::warn!(id, url, "skipping a link whose stored URL does not parse");
                continue;
            };
            links.push(Link {
                id: LinkId(id),
                url,
                title: row.get("title"),
                note: row.get("note"),
                favourite: row.get::<i64, _>("favourite") != 0,
                unread: row.get::<i64, _>("unread") != 0,
                status: LinkStatus::parse(row.get::<&str, _>("status")),
                failure: row.get("failure"),
                created_at: row.get("created_at"),
                updated_at: row.get("updated_at"),
                tags: Vec::new(),
                snapshots: row.get("snapshots"),
            });
        }
        // Only the tags of the links returned, a chunk of ids per query.
        let mut by_link: BTreeMap<i64, Vec<TagName>> = BTreeMap::new();
        for chunk in links.chunks(INDEX_CHUNK) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "SELECT lt.link_id, t.name, t.key FROM link_tags lt JOIN tags t ON t.id = lt.tag_id WHERE lt.link_id IN (",
            );
            let mut sep = qb.separated(", ");
            for l in chunk {
                sep.push_bind(l.id.0);
            }
            qb.push(")");
            for r in qb.build().fetch_all(self.db()).await? {
                by_link
                    .entry(r.get("link_id"))
                    .or_default()
                    .push(TagName::from_stored(r.get("name"), r.get("key")));
            }
        }
        for link in &mut links {
            let mut tags = by_link.remove(&link.id.0).unwrap_or_default();
            tags.sort_by(|a, b| a.key().cmp(b.key()));
            link.tags = tags;
        }
        Ok(links)
    }

    /// Adds and removes tags on links.
    ///
    /// # Errors
    /// [`StoreError::NoLink`] (nothing is changed then).
    pub async fn retag(
        &self,
        ids: &[LinkId],
        add: &[TagName],
        remove: &[TagName],
    ) -> Result<(), StoreError> {
        let _pending = self.pending_change();
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        for id in ids {
            let n = sqlx::query("UPDATE links SET updated_at = ? WHERE id = ?")
                .bind(now)
                .bind(id.0)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NoLink(*id));
            }
            for tag in add {
                let tag_id = upsert_tag(&mut tx, tag).await?;
                sqlx::query("INSERT OR IGNORE INTO link_tags (link_id, tag_id) VALUES (?, ?)")
                    .bind(id.0)
                    .bind(tag_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for tag in remove {
                sqlx::query("DELETE FROM link_tags WHERE link_id = ? AND tag_id = (SELECT id FROM tags WHERE key = ?)")
                    .bind(id.0)
                    .bind(tag.key())
                    .execute(&mut *tx)
                    .await?;
            }
            if !add.is_empty() {
                check_tag_count(&mut tx, id.0).await?;
            }
        }
        prune_orphan_tags(&mut tx).await?;
        tx.commit().await?;
        self.reindex_links(&ids.iter().map(|i| i.0).collect::<Vec<_>>())
            .await?;
        Ok(())
    }

    /// Every tag with the number of links carrying it, sorted by name.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tags(&self) -> Result<Vec<(TagName, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.name, t.key, count(lt.link_id) AS n FROM tags t LEFT JOIN link_tags lt ON lt.tag_id = t.id \
             GROUP BY t.id ORDER BY t.key",
        )
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    TagName::from_stored(r.get("name"), r.get("key")),
                    r.get("n"),
                )
            })
            .collect())
    }

    /// The tag tree: every tag and every ancestor implied by a nested name (`lang` for
    /// `lang/rust`), in key order, with the links carrying the tag itself (`own`) and the
    /// distinct links in its whole subtree (`total`).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tag_tree(&self) -> Result<Vec<TagNode>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.name, t.key, lt.link_id FROM tags t LEFT JOIN link_tags lt ON lt.tag_id = t.id",
        )
        .fetch_all(self.db())
        .await?;
        let mut nodes: BTreeMap<String, (String, i64, HashSet<i64>)> = BTreeMap::new();
        for r in rows {
            let (name, key): (String, String) = (r.get("name"), r.get("key"));
            let link: Option<i64> = r.get("link_id");
            let name_parts: Vec<&str> = name.split('/').collect();
            let key_parts: Vec<&str> = key.split('/').collect();
            for depth in 1..=key_parts.len() {
                let k = key_parts[..depth].join("/");
                let node = nodes.entry(k).or_insert_with(|| {
                    (
                        name_parts[..depth.min(name_parts.len())].join("/"),
                        0,
                        HashSet::new(),
                    )
                });
                if let Some(l) = link {
                    node.2.insert(l);
                    if depth == key_parts.len() {
                        node.1 += 1;
                    }
                }
            }
        }
        Ok(nodes
            .into_iter()
            .map(|(key, (name, own, links))| TagNode {
                depth: key.matches('/').count(),
                name,
                key,
                own,
                total: links.len() as i64,
            })
            .collect())
    }

    /// The tags right under `parent` (the top-level ones for `None`), each with the
    /// distinct links in its subtree; for the chips of a list. The names come from the
    /// database, the counts from the search index, where every link carries its tags'
    /// keys with their ancestors: counting one term is counting a subtree's distinct links
    /// (SQLite's `count(DISTINCT)` over every tagging took 12 to 40 ms with 10,000 links).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn tag_children(&self, parent: Option<&TagName>) -> Result<Vec<TagNode>, StoreError> {
        let prefix = parent.map_or_else(String::new, |p| format!("{}/", p.key()));
        let depth = prefix.matches('/').count() + 1;
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, key FROM tags")
            .fetch_all(self.db())
            .await?;
        // Each child's key, and the least of its spellings (like `min(name)`).
        let mut children: BTreeMap<String, String> = BTreeMap::new();
        for (name, key) in rows {
            if !key.starts_with(&prefix) {
                continue;
            }
            let child_key = key.split('/').take(depth).collect::<Vec<_>>().join("/");
            let child_name = name.split('/').take(depth).collect::<Vec<_>>().join("/");
            children
                .entry(child_key)
                .and_modify(|n| {
                    if child_name < *n {
                        n.clone_from(&child_name);
                    }
                })
                .or_insert(child_name);
        }
        let keys: Vec<&str> = children.keys().map(String::as_str).collect();
        let counts = self.index().count_tag_keys(&keys)?;
        Ok(children
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|((key, name), total)| TagNode {
                depth: depth - 1,
                name: name.clone(),
                key: key.clone(),
                own: 0,
                total,
            })
            .collect())
    }

    /// [`Library::tag_children`] counted by SQLite: what the index's counts are checked
    /// against in tests.
    #[cfg(test)]
    async fn tag_children_sql(&self, parent: Option<&TagName>) -> Result<Vec<TagNode>, StoreError> {
        let prefix = parent.map_or_else(String::new, |p| format!("{}/", p.key()));
        // Lengths in characters: SQLite's substr and instr count characters.
        let plen = prefix.chars().count() as i64;
        let rows = sqlx::query(
            "SELECT x.child AS key, min(x.display) AS name, count(DISTINCT lt.link_id) AS n FROM ( \
               SELECT t.id, \
                 CASE WHEN instr(substr(t.key, ?1 + 1), '/') = 0 THEN t.key \
                      ELSE substr(t.key, 1, ?1 + instr(substr(t.key, ?1 + 1), '/') - 1) END AS child, \
                 CASE WHEN instr(substr(t.name, ?1 + 1), '/') = 0 THEN t.name \
                      ELSE substr(t.name, 1, ?1 + instr(substr(t.name, ?1 + 1), '/') - 1) END AS display \
               FROM tags t WHERE ?1 = 0 OR substr(t.key, 1, ?1) = ?2 \
             ) x JOIN link_tags lt ON lt.tag_id = x.id GROUP BY x.child ORDER BY x.child",
        )
        .bind(plen)
        .bind(&prefix)
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let key: String = r.get("key");
                TagNode {
                    depth: key.matches('/').count(),
                    name: r.get("name"),
                    key,
                    own: 0,
                    total: r.get("n"),
                }
            })
            .collect())
    }

    /// Renames `old` to `new`; tags nested under `old` move with it (`lang/rust` becomes
    /// `code/rust` when `lang` becomes `code`). Changing only the case is a rename too.
    ///
    /// # Errors
    /// [`StoreError::NoTag`] when nothing is named `old`; [`StoreError::TagExists`] when a
    /// tag would collide with an existing one.
    pub async fn rename_tag(&self, old: &TagName, new: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let touched = self.links_tagged(old).await?;
        let mut tx = self.write_tx().await?;
        let affected = tags_under(&mut tx, old).await?;
        if affected.is_empty() {
            return Err(StoreError::NoTag(old.to_string()));
        }
        for (id, name, _key) in &affected {
            let depth = old.as_str().split('/').count();
            let suffix: Vec<&str> = name.split('/').skip(depth).collect();
            let full = std::iter::once(new.as_str())
                .chain(suffix)
                .collect::<Vec<_>>()
                .join("/");
            let renamed = TagName::parse(&full).map_err(|_| StoreError::NoTag(name.clone()))?;
            let clash: Option<i64> =
                sqlx::query_scalar("SELECT id FROM tags WHERE key = ? AND id != ?")
                    .bind(renamed.key())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if clash.is_some() && !affected.iter().any(|(a, _, _)| Some(*a) == clash) {
                return Err(StoreError::TagExists(renamed.to_string()));
            }
            sqlx::query("UPDATE tags SET name = ?, key = ? WHERE id = ?")
                .bind(renamed.as_str())
                .bind(format!("\u{1}{}", renamed.key()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // Keys were given a temporary prefix (U+0001, which no tag name may contain) so that
        // renames within the subtree cannot clash with each other.
        sqlx::query("UPDATE tags SET key = substr(key, 2) WHERE substr(key, 1, 1) = char(1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(affected.len())
    }

    /// Moves every link of each tag in `from` (and the tags nested under them) to `into`,
    /// then deletes the `from` tags.
    ///
    /// # Errors
    /// [`StoreError::NoTag`] when a `from` tag does not exist.
    pub async fn merge_tags(&self, from: &[TagName], into: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let mut touched = Vec::new();
        for tag in from {
            touched.extend(self.links_tagged(tag).await?);
        }
        let mut tx = self.write_tx().await?;
        let target = upsert_tag(&mut tx, into).await?;
        let mut moved = 0;
        for tag in from {
            let under = tags_under(&mut tx, tag).await?;
            if under.is_empty() {
                return Err(StoreError::NoTag(tag.to_string()));
            }
            for (id, _, _) in under.into_iter().filter(|(id, _, _)| *id != target) {
                moved += sqlx::query("INSERT OR IGNORE INTO link_tags (link_id, tag_id) SELECT link_id, ? FROM link_tags WHERE tag_id = ?")
                    .bind(target)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected() as usize;
                sqlx::query("DELETE FROM tags WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(moved)
    }

    /// Deletes a tag and the tags nested under it from every link.
    ///
    /// # Errors
    /// [`StoreError::NoTag`].
    pub async fn delete_tag(&self, tag: &TagName) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        let touched = self.links_tagged(tag).await?;
        let mut tx = self.write_tx().await?;
        let under = tags_under(&mut tx, tag).await?;
        if under.is_empty() {
            return Err(StoreError::NoTag(tag.to_string()));
        }
        for (id, _, _) in &under {
            sqlx::query("DELETE FROM tags WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.reindex_links(&touched).await?;
        Ok(under.len())
    }

    /// Removes a link, its tags' associations and its snapshot rows. Blobs no longer
    /// referenced go at the next `gc`.
    ///
    /// # Errors
    /// [`StoreError::NoLink`].
    pub async fn remove(&self, id: LinkId) -> Result<(), StoreError> {
        let _pending = self.pending_change();
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM links WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NoLink(id));
        }
        prune_orphan_tags(&mut tx).await?;
        tx.commit().await?;
        self.reindex_links(&[id.0]).await?;
        Ok(())
    }

    /// Records the link's capture state.
    ///
    /// # Errors
    /// [`StoreError::NoLink`].
    pub async fn set_status(
        &self,
        id: LinkId,
        status: LinkStatus,
        failure: Option<&str>,
    ) -> Result<(), StoreError> {
        let n =
            sqlx::query("UPDATE links SET status = ?, failure = ?, updated_at = ? WHERE id = ?")
                .bind(status.as_str())
                .bind(failure)
                .bind(now_ms())
                .bind(id.0)
                .execute(self.writer())
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::NoLink(id));
        }
        Ok(())
    }

    /// Stores a capture as the link's next snapshot version: every part, the page and every
    /// fetched resource as blobs (each once, however many pages share it), then the rows,
    /// in one transaction. The link becomes `ok` and takes the page title unless the user
    /// edited it.
    ///
    /// # Errors
    /// [`StoreError::Blob`] when a blob cannot be written (disk full): no row is written
    /// then, and the blobs already written are collected by `gc`.
    pub async fn save_capture(&self, id: LinkId, capture: &Capture) -> Result<i64, StoreError> {
        self.save_capture_of_job(id, capture, None).await
    }

    /// [`Library::save_capture`], and the queue's `job` marked done in the same
    /// transaction.
    ///
    /// # Errors
    /// As [`Library::save_capture`].
    pub(crate) async fn save_capture_of_job(
        &self,
        id: LinkId,
        capture: &Capture,
        job: Option<i64>,
    ) -> Result<i64, StoreError> {
        let _pending = self.pending_change();
        let page_blob = self.blobs().put(&capture.page.bytes).await?;
        let mut parts: Vec<(BlobHash, &'static str)> = Vec::new();
        let root_blob = match (&capture.snapshot, &capture.parts) {
            (Snapshot::Html(_), Some(p)) => {
                for (hash, text) in &p.texts {
                    self.blobs().put(text.as_bytes()).await?;
                    parts.push((hash.clone(), "text"));
                }
                for (hash, bytes) in &p.binaries {
                    self.blobs().put(bytes).await?;
                    parts.push((hash.clone(), "binary"));
                }
                self.blobs().put(p.root.as_bytes()).await?
            }
            _ => page_blob.clone(),
        };
        let kind = if matches!(capture.snapshot, Snapshot::Html(_)) {
            "html"
        } else {
            "original"
        };
        let text_blob = match &capture.readable {
            Some(r) if !r.text.is_empty() => Some(self.blobs().put(r.text.as_bytes()).await?),
            _ => None,
        };
        let mut resource_blobs = Vec::with_capacity(capture.resources.len());
        for r in &capture.resources {
            resource_blobs.push(match &r.result {
                Ok(f) => Some(self.blobs().put(&f.bytes).await?),
                Err(_) => None,
            });
        }

        let mut tx = self.write_tx().await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT coalesce(max(version), 0) + 1 FROM snapshots WHERE link_id = ?",
        )
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
        let readable = capture.readable.as_ref();
        let title = readable.map(|r| r.title.clone()).unwrap_or_default();
        let snapshot_id: i64 = sqlx::query_scalar(
            "INSERT INTO snapshots (link_id, version, captured_at, final_url, http_status, media_type, kind, root_blob, page_blob, bytes, \
             title, text_blob, byline, excerpt, lang, site_name, published, elapsed_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(id.0)
        .bind(version)
        .bind(now_ms())
        .bind(capture.page.final_url.as_str())
        .bind(i64::from(capture.page.status))
        .bind(&capture.page.media_type)
        .bind(kind)
        .bind(root_blob.as_str())
        .bind(page_blob.as_str())
        .bind(capture.snapshot_bytes().len() as i64)
        .bind(&title)
        .bind(text_blob.as_ref().map(BlobHash::as_str))
        .bind(readable.and_then(|r| r.byline.as_deref()))
        .bind(readable.and_then(|r| r.excerpt.as_deref()))
        .bind(readable.and_then(|r| r.lang.as_deref()))
        .bind(readable.and_then(|r| r.site_name.as_deref()))
        .bind(readable.and_then(|r| r.published_time.as_deref()))
        .bind(capture.elapsed.as_millis() as i64)
        .fetch_one(&mut *tx)
        .await?;
        for (hash, kind) in &parts {
            sqlx::query(
                "INSERT OR IGNORE INTO snapshot_parts (snapshot_id, blob, kind) VALUES (?, ?, ?)",
            )
            .bind(snapshot_id)
            .bind(hash.as_str())
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        }
        for (seq, (r, blob)) in capture.resources.iter().zip(&resource_blobs).enumerate() {
            let (outcome, status, media, bytes, error) = match &r.result {
                Ok(f) => (
                    "inlined".to_owned(),
                    Some(i64::from(f.status)),
                    Some(f.media_type.clone()),
                    Some(f.bytes.len() as i64),
                    None,
                ),
                Err(failure) => (
                    failure.code().to_owned(),
                    None,
                    None,
                    None,
                    Some(failure.to_string()),
                ),
            };
            sqlx::query(
                "INSERT INTO snapshot_resources (snapshot_id, seq, url, kind, outcome, http_status, media_type, bytes, blob, error) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(snapshot_id)
            .bind(seq as i64)
            .bind(r.url.as_str())
            .bind(r.kind.as_str())
            .bind(outcome)
            .bind(status)
            .bind(media)
            .bind(bytes)
            .bind(blob.as_ref().map(BlobHash::as_str))
            .bind(error)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE links SET status = 'ok', failure = NULL, updated_at = ?, \
             title = CASE WHEN title_edited = 1 OR ? = '' THEN title ELSE ? END WHERE id = ?",
        )
        .bind(now_ms())
        .bind(&title)
        .bind(&title)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if let Some(job) = job {
            sqlx::query(
                "UPDATE jobs SET state = 'done', last_error = NULL, claimed_at = NULL WHERE id = ?",
            )
            .bind(job)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.reindex_links(&[id.0]).await?;
        Ok(version)
    }

    /// A link's versions, oldest first.
    ///
    /// # Errors
    /// [`StoreError::NoLink`].
    pub async fn versions(&self, id: LinkId) -> Result<Vec<Version>, StoreError> {
        self.get(id).await?;
        let rows = sqlx::query(
            "SELECT s.*, \
             (SELECT count(*) FROM snapshot_resources r WHERE r.snapshot_id = s.id AND r.outcome = 'inlined') AS inlined, \
             (SELECT count(*) FROM snapshot_resources r WHERE r.snapshot_id = s.id AND r.outcome != 'inlined') AS failed \
             FROM snapshots s WHERE s.link_id = ? ORDER BY s.version",
        )
        .bind(id.0)
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Version {
                version: r.get("version"),
                captured_at: r.get("captured_at"),
                final_url: r.get("final_url"),
                http_status: r.get::<i64, _>("http_status") as u16,
                media_type: r.get("media_type"),
                kind: r.get("kind"),
                bytes: r.get("bytes"),
                title: r.get("title"),
                inlined: r.get("inlined"),
                failed: r.get("failed"),
            })
            .collect())
    }

    /// What happened to every resource of a version, in document order.
    ///
    /// # Errors
    /// [`StoreError::NoLink`], [`StoreError::NoVersion`].
    pub async fn resources(
        &self,
        id: LinkId,
        version: i64,
    ) -> Result<Vec<ResourceRow>, StoreError> {
        let snapshot: Option<i64> =
            sqlx::query_scalar("SELECT id FROM snapshots WHERE link_id = ? AND version = ?")
                .bind(id.0)
                .bind(version)
                .fetch_optional(self.db())
                .await?;
        let Some(snapshot) = snapshot else {
            self.get(id).await?;
            return Err(StoreError::NoVersion { link: id, version });
        };
        let rows = sqlx::query(
            "SELECT url, kind, outcome, http_status, media_type, bytes, error FROM snapshot_resources \
             WHERE snapshot_id = ? ORDER BY seq",
        )
        .bind(snapshot)
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ResourceRow {
                url: r.get("url"),
                kind: r.get("kind"),
                outcome: r.get("outcome"),
                http_status: r.get::<Option<i64>, _>("http_status").map(|s| s as u16),
                media_type: r.get("media_type"),
                bytes: r.get("bytes"),
                error: r.get("error"),
            })
            .collect())
    }

    /// The file of a version (the latest when `version` is `None`), rebuilt from its
    /// parts: byte for byte what the capture produced. Returns the bytes and media type.
    ///
    /// # Errors
    /// [`StoreError::NoVersion`]; [`StoreError::Blob`] when a part is missing or damaged.
    pub async fn render(
        &self,
        id: LinkId,
        version: Option<i64>,
    ) -> Result<(Bytes, String), StoreError> {
        self.get(id).await?;
        let row = sqlx::query(
            "SELECT id, kind, root_blob, media_type FROM snapshots WHERE link_id = ? AND (? IS NULL OR version = ?) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(id.0)
        .bind(version)
        .bind(version)
        .fetch_optional(self.db())
        .await?
        .ok_or(StoreError::NoVersion {
            link: id,
            version: version.unwrap_or(0),
        })?;
        let root = stored_hash(row.get("root_blob"));
        let root_bytes = self.blobs().get(&root).await?;
        if row.get::<&str, _>("kind") != "html" {
            return Ok((root_bytes, row.get("media_type")));
        }
        let mut parts = SnapshotParts {
            root: String::from_utf8_lossy(&root_bytes).into_owned(),
            ..SnapshotParts::default()
        };
        let part_rows = sqlx::query("SELECT blob, kind FROM snapshot_parts WHERE snapshot_id = ?")
            .bind(row.get::<i64, _>("id"))
            .fetch_all(self.db())
            .await?;
        for p in part_rows {
            let hash = stored_hash(p.get("blob"));
            let bytes = self.blobs().get(&hash).await?;
            if p.get::<&str, _>("kind") == "text" {
                parts
                    .texts
                    .insert(hash, String::from_utf8_lossy(&bytes).into_owned());
            } else {
                parts.binaries.insert(hash, bytes);
            }
        }
        Ok((
            Bytes::from(parts.expand()),
            "text/html; charset=utf-8".to_owned(),
        ))
    }

    /// Links matching `query` (full text over title, URL, note, tags and readable text;
    /// `"phrases"` in quotes) and `filter`, best first, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn search(
        &self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<SearchResult>, StoreError> {
        // Every filter but the capture status (which changes without re-indexing) and an id
        // list is part of the index query: only links that pass are ranked.
        let in_index = filter.status.is_none() && filter.ids.is_none();
        // Otherwise a filter that selects few links (MAX_SELECTIVE) is applied first, inside
        // the index; one that selects many is applied to ranked candidates, eight times more
        // each round until enough survive (MAX_FILTERED_CANDIDATES at most).
        let selected = if in_index {
            None
        } else {
            self.filter_ids(filter, MAX_SELECTIVE + 1).await?
        };
        let selective = selected
            .as_ref()
            .is_some_and(|ids| ids.len() <= MAX_SELECTIVE);
        let mut candidates = if in_index || selective {
            limit
        } else {
            (limit * 20).max(200)
        };
        let (kept, mut links) = loop {
            let hits = match &selected {
                _ if in_index => self.index().search_filtered(
                    query,
                    &IndexFilter {
                        tags: filter.tags.clone(),
                        domain: filter.domain.clone(),
                        since: filter.since,
                        until: filter.until,
                        favourite: filter.favourite,
                        unread: filter.unread,
                    },
                    limit,
                )?,
                Some(ids) if selective => self.index().search_within(query, ids, limit)?,
                _ => self
                    .index()
                    .search(query, candidates.min(MAX_FILTERED_CANDIDATES))?,
            };
            let mut kept: Vec<(i64, f32)> = Vec::with_capacity(limit);
            let mut links: std::collections::HashMap<i64, Link> = std::collections::HashMap::new();
            for chunk in hits.chunks(INDEX_CHUNK) {
                let restricted = Filter {
                    ids: Some(chunk.iter().map(|(id, _)| LinkId(*id)).collect()),
                    ..filter.clone()
                };
                links.extend(
                    self.list(&restricted)
                        .await?
                        .into_iter()
                        .map(|l| (l.id.0, l)),
                );
                let room = limit - kept.len();
                kept.extend(
                    chunk
                        .iter()
                        .filter(|(id, _)| links.contains_key(id))
                        .take(room),
                );
                if kept.len() >= limit {
                    break;
                }
            }
            let exhausted = hits.len() < candidates.min(MAX_FILTERED_CANDIDATES);
            if in_index
                || selective
                || kept.len() >= limit
                || exhausted
                || candidates >= MAX_FILTERED_CANDIDATES
            {
                break (kept, links);
            }
            candidates *= 8;
        };
        let ids: Vec<i64> = kept.iter().map(|(id, _)| *id).collect();
        let mut snippets = self.index().snippets(query, &ids)?;
        Ok(kept
            .into_iter()
            .filter_map(|(id, score)| {
                links.remove(&id).map(|link| SearchResult {
                    link,
                    score,
                    snippet: snippets.remove(&id).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Ids of the links `filter` selects, at most `max`; `None` when the filter is empty.
    async fn filter_ids(
        &self,
        filter: &Filter,
        max: usize,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let mut qb =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT l.id FROM links l WHERE 1 = 1");
        filter.push_sql(&mut qb);
        qb.push(" LIMIT ").push_bind(max as i64);
        let ids: Vec<i64> = qb.build_query_scalar().fetch_all(self.db()).await?;
        Ok(Some(ids))
    }

    /// Ids of the links carrying `tag` or a tag under it.
    async fn links_tagged(&self, tag: &TagName) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lt.link_id FROM link_tags lt JOIN tags t ON t.id = lt.tag_id WHERE t.key = ? OR substr(t.key, 1, ?) = ?",
        )
        .bind(subtree(tag).0)
        .bind(subtree(tag).1)
        .bind(subtree(tag).2)
        .fetch_all(self.db())
        .await?)
    }

    /// The readable text of a version.
    ///
    /// # Errors
    /// [`StoreError::NoVersion`]; [`StoreError::Blob`] when the text blob is damaged.
    pub async fn version_text(&self, id: LinkId, version: i64) -> Result<String, StoreError> {
        self.get(id).await?;
        let row: Option<Option<String>> =
            sqlx::query_scalar("SELECT text_blob FROM snapshots WHERE link_id = ? AND version = ?")
                .bind(id.0)
                .bind(version)
                .fetch_optional(self.db())
                .await?;
        match row {
            None => Err(StoreError::NoVersion { link: id, version }),
            Some(None) => Ok(String::new()),
            Some(Some(h)) => Ok(String::from_utf8_lossy(
                &self.blobs().get(&stored_hash(&h)).await?,
            )
            .into_owned()),
        }
    }

    /// Every blob name the database references, with what references it.
    async fn referenced_blobs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT root_blob AS blob, 'snapshot ' || id || ' root' AS what FROM snapshots \
             UNION ALL SELECT page_blob, 'snapshot ' || id || ' page' FROM snapshots \
             UNION ALL SELECT text_blob, 'snapshot ' || id || ' text' FROM snapshots WHERE text_blob IS NOT NULL \
             UNION ALL SELECT blob, 'snapshot ' || snapshot_id || ' part' FROM snapshot_parts \
             UNION ALL SELECT blob, 'snapshot ' || snapshot_id || ' resource ' || seq FROM snapshot_resources WHERE blob IS NOT NULL",
        )
        .fetch_all(self.db())
        .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            out.entry(r.get::<String, _>("blob"))
                .or_insert_with(|| r.get::<String, _>("what"));
        }
        Ok(out)
    }

    /// Re-hashes every blob and checks references both ways.
    ///
    /// # Errors
    /// [`StoreError::Db`] or a store that cannot be listed.
    pub async fn fsck(&self) -> Result<FsckReport, StoreError> {
        let referenced = self.referenced_blobs().await?;
        let stored = self.blobs().list().await?;
        let mut report = FsckReport::default();
        let present: HashSet<String> = stored.iter().map(|b| b.hash.to_string()).collect();
        for entry in &stored {
            report.blobs_checked += 1;
            match self.blobs().get(&entry.hash).await {
                Ok(_) => {}
                Err(e) => {
                    let what = referenced
                        .get(entry.hash.as_str())
                        .cloned()
                        .unwrap_or_else(|| "unreferenced blob".to_owned());
                    report
                        .damaged
                        .push((what, entry.hash.to_string(), e.to_string()));
                }
            }
            if !referenced.contains_key(entry.hash.as_str()) {
                report.unreferenced += 1;
            }
        }
        for (blob, what) in &referenced {
            if !present.contains(blob) {
                report
                    .damaged
                    .push((what.clone(), blob.clone(), "missing".to_owned()));
            }
        }
        let (missing, extra) = self.index_disagreement().await?;
        report.index_missing = missing.len();
        report.index_extra = extra.len();
        // A link shown as capturing must have a running job; one shown as queued that was
        // ever given a job must still have one that will get to it. (A link imported
        // without a capture is queued with no job at all: waiting for `recapture`.)
        report.stranded = sqlx::query_scalar(
            "SELECT l.id FROM links l WHERE \
             (l.status = 'capturing' AND NOT EXISTS \
               (SELECT 1 FROM jobs j WHERE j.link_id = l.id AND j.state = 'running')) \
             OR (l.status = 'queued' AND EXISTS (SELECT 1 FROM jobs j WHERE j.link_id = l.id) \
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.link_id = l.id AND j.state IN ('queued', 'running')))",
        )
        .fetch_all(self.db())
        .await?
        .into_iter()
        .map(LinkId)
        .collect();
        Ok(report)
    }

    /// Removes blobs no row references, except those younger than [`GC_GRACE`].
    ///
    /// # Errors
    /// [`StoreError::Db`] or [`StoreError::Blob`].
    pub async fn gc(&self) -> Result<GcReport, StoreError> {
        self.gc_older_than(GC_GRACE).await
    }

    /// [`Library::gc`] with another grace period.
    ///
    /// # Errors
    /// As [`Library::gc`].
    pub async fn gc_older_than(&self, grace: Duration) -> Result<GcReport, StoreError> {
        let referenced: BTreeSet<String> = self.referenced_blobs().await?.into_keys().collect();
        let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(UNIX_EPOCH);
        let mut report = GcReport::default();
        for entry in self.blobs().list().await? {
            if referenced.contains(entry.hash.as_str()) {
                continue;
            }
            if entry.modified > cutoff {
                report.kept_young += 1;
                continue;
            }
            self.blobs().delete(&entry.hash).await?;
            report.removed += 1;
            report.freed_bytes += entry.stored_bytes;
        }
        Ok(report)
    }
}

/// The id the next row of `table` (`links` or `users`) gets: above every id it has now and
/// every id it ever had (`id_high_water`, kept by a trigger on delete), so an id is never
/// handed out twice. Read inside the write transaction that inserts.
pub(crate) async fn next_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    table: &'static str,
) -> Result<i64, StoreError> {
    let sql = match table {
        "links" => {
            "SELECT max(coalesce((SELECT max(id) FROM links), 0), \
             coalesce((SELECT high FROM id_high_water WHERE tbl = 'links'), 0)) + 1"
        }
        _ => {
            "SELECT max(coalesce((SELECT max(id) FROM users), 0), \
             coalesce((SELECT high FROM id_high_water WHERE tbl = 'users'), 0)) + 1"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_one(&mut **tx).await?)
}

pub(crate) fn stored_hash(s: &str) -> BlobHash {
    // Written by this code from a BlobHash; a hand-edited row that is not a hash names a
    // blob that cannot exist, which the blob store then reports as missing.
    BlobHash::parse(s).unwrap_or_else(|| BlobHash::of(s.as_bytes()))
}

async fn upsert_tag(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tag: &TagName,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO tags (name, key) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING id")
        .bind(tag.as_str())
        .bind(tag.key())
        .fetch_one(&mut **tx)
        .await
}

/// A tag lives through its links: one that no link carries any more goes.
async fn prune_orphan_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM link_tags lt WHERE lt.tag_id = tags.id)",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The tag and every tag nested under it: (id, name, key).
async fn tags_under(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    tag: &TagName,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, key FROM tags WHERE key = ? OR substr(key, 1, ?) = ? ORDER BY key",
    )
    .bind(subtree(tag).0)
    .bind(subtree(tag).1)
    .bind(subtree(tag).2)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.get("id"), r.get("name"), r.get("key")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_capture_cut_off_by_a_crash_is_queued_again_when_the_library_reopens() {
        let dir = std::env::temp_dir().join(format!("linksnap-requeue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = NormalizedUrl::parse("https://a.test/cut-off", &UrlRules::default()).unwrap();
        let (id, job) = {
            let lib = Library::open(&dir).await.unwrap();
            let (id, _) = lib.add(&url, &[], None).await.unwrap();
            let job = lib.enqueue(id).await.unwrap();
            let claimed = lib.claim(Some(job)).await.unwrap().unwrap();
            // What `run_job` does first; then the process dies.
            lib.set_status(claimed.link, LinkStatus::Capturing, None)
                .await
                .unwrap();
            (id, job)
        };
        let lib = Library::open(&dir).await.unwrap();
        assert_eq!(lib.get(id).await.unwrap().status, LinkStatus::Queued);
        assert_eq!(lib.job(job).await.unwrap().unwrap().state, "queued");
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_capture_that_crashes_the_process_twice_is_failed_not_queued_forever() {
        let dir = std::env::temp_dir().join(format!("linksnap-poison-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = NormalizedUrl::parse("https://a.test/poison", &UrlRules::default()).unwrap();
        let (id, job) = {
            let lib = Library::open(&dir).await.unwrap();
            let (id, job) = lib.add_queued(&url, &[], None).await.unwrap();
            (id, job.unwrap())
        };
        for crash in 1..=2 {
            let lib = Library::open(&dir).await.unwrap();
            assert_eq!(
                lib.job(job).await.unwrap().unwrap().state,
                "queued",
                "{crash}"
            );
            // Claimed (counted in the database before the capture starts); then the
            // process dies mid-capture.
            lib.claim(Some(job)).await.unwrap().unwrap();
            lib.set_status(id, LinkStatus::Capturing, None)
                .await
                .unwrap();
        }
        let lib = Library::open(&dir).await.unwrap();
        let j = lib.job(job).await.unwrap().unwrap();
        assert_eq!(j.state, "failed");
        assert!(j.last_error.unwrap().contains("crashed or hung 2 times"));
        let link = lib.get(id).await.unwrap();
        assert_eq!(link.status, LinkStatus::Failed);
        assert!(
            lib.claim(None).await.unwrap().is_none(),
            "never claimed again"
        );
        // A recapture is a new job, tried again.
        let again = lib.enqueue(id).await.unwrap();
        assert_eq!(lib.claim(None).await.unwrap().unwrap().id, again);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn ids_are_never_handed_out_twice() {
        let dir = std::env::temp_dir().join(format!("linksnap-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rules = UrlRules::default();
        let lib = Library::open(&dir).await.unwrap();
        let url = |n: u32| NormalizedUrl::parse(&format!("https://a.test/{n}"), &rules).unwrap();
        let (a, _) = lib.add(&url(1), &[], None).await.unwrap();
        let (b, _) = lib.add(&url(2), &[], None).await.unwrap();
        lib.remove(b).await.unwrap();
        let (c, _) = lib.add(&url(3), &[], None).await.unwrap();
        assert!(c.0 > b.0, "{c} reuses the removed {b}");
        lib.remove(c).await.unwrap();
        // Imports too.
        let mut import = lib.begin_import(false).await.unwrap();
        import
            .add(vec![crate::import::ImportItem {
                url: "https://a.test/4".into(),
                ..Default::default()
            }])
            .await
            .unwrap();
        import.commit().await.unwrap();
        let ids: Vec<i64> = lib
            .list(&Filter::default())
            .await
            .unwrap()
            .iter()
            .map(|l| l.id.0)
            .collect();
        assert!(ids.iter().all(|i| *i == a.0 || *i > c.0), "{ids:?}");
        // Users: the removed newest user's id (and library) is not the next user's.
        lib.create_user("ann", "password one", true).await.unwrap();
        let bob = lib.create_user("bob", "password two", false).await.unwrap();
        lib.remove_user("bob").await.unwrap();
        let cy = lib
            .create_user("cy", "password three", false)
            .await
            .unwrap();
        assert!(cy.id > bob.id);
        assert_ne!(cy.library, bob.library);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn links_added_before_a_crash_are_indexed_when_the_library_reopens() {
        let dir = std::env::temp_dir().join(format!("linksnap-catchup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rules = UrlRules::default();
        {
            let lib = Library::open(&dir).await.unwrap();
            lib.add(
                &NormalizedUrl::parse("https://a.test/committed", &rules).unwrap(),
                &[],
                None,
            )
            .await
            .unwrap();
            for i in 0..3 {
                let url =
                    NormalizedUrl::parse(&format!("https://a.test/pending-{i}"), &rules).unwrap();
                lib.add_unindexed(&url, &[], Some("zanzibar"))
                    .await
                    .unwrap();
            }
            // Dropped without commit_index: the index writer's pending documents are lost,
            // as if the process had died.
            assert!(
                lib.search("zanzibar", &Filter::default(), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        let lib = Library::open(&dir).await.unwrap();
        assert_eq!(
            lib.search("zanzibar", &Filter::default(), 10)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            lib.search("committed", &Filter::default(), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod search_filter_tests {
    use super::*;

    /// Every filter a search applies inside the index selects exactly the links the
    /// database's filter does, after adds, edits, retags, renames and removals.
    #[tokio::test]
    async fn index_filters_agree_with_the_database() {
        let dir = std::env::temp_dir().join(format!("linksnap-filters-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = Library::open(&dir).await.unwrap();
        let rules = UrlRules::default();
        let tag = |t: &str| TagName::parse(t).unwrap();
        let mut ids = Vec::new();
        for i in 0..40 {
            let host = ["a.example.org", "b.example.org", "example.net", "其他.test"][i % 4];
            let url = NormalizedUrl::parse(&format!("https://{host}/p{i}"), &rules).unwrap();
            let tags: Vec<TagName> = match i % 5 {
                0 => vec![],
                1 => vec![tag("lang/rust")],
                2 => vec![tag("lang/go"), tag("编程")],
                3 => vec![tag("Lang")],
                _ => vec![tag("news")],
            };
            let (id, _) = lib
                .add_unindexed(&url, &tags, Some("common words zebra"))
                .await
                .unwrap();
            ids.push(id);
        }
        lib.commit_index().await.unwrap();
        for id in ids.iter().step_by(3) {
            lib.edit(
                *id,
                &EditLink {
                    favourite: Some(true),
                    unread: Some(false),
                    ..EditLink::default()
                },
            )
            .await
            .unwrap();
        }
        lib.retag(&ids[..4], &[tag("lang/rust/async")], &[])
            .await
            .unwrap();
        lib.rename_tag(&tag("news"), &tag("press/news"))
            .await
            .unwrap();
        lib.remove(ids[1]).await.unwrap();
        let expr = |e: &str| vec![TagExpr::parse(e).unwrap()];
        let filters = vec![
            Filter::default(),
            Filter {
                tags: expr("lang"),
                ..Filter::default()
            },
            Filter {
                tags: expr("lang/rust"),
                ..Filter::default()
            },
            Filter {
                tags: expr("NOT lang"),
                ..Filter::default()
            },
            Filter {
                tags: expr("UNTAGGED"),
                ..Filter::default()
            },
            Filter {
                tags: expr("编程 OR press"),
                ..Filter::default()
            },
            Filter {
                tags: expr("press/news"),
                ..Filter::default()
            },
            Filter {
                tags: expr("news"),
                ..Filter::default()
            },
            Filter {
                domain: Some("example.org".into()),
                ..Filter::default()
            },
            Filter {
                domain: Some("b.example.org".into()),
                ..Filter::default()
            },
            Filter {
                favourite: Some(true),
                ..Filter::default()
            },
            Filter {
                unread: Some(true),
                tags: expr("lang AND NOT lang/go"),
                ..Filter::default()
            },
            Filter {
                since: Some(lib.get(ids[10]).await.unwrap().created_at),
                until: Some(lib.get(ids[30]).await.unwrap().created_at),
                ..Filter::default()
            },
        ];
        for f in &filters {
            let mut want: Vec<i64> = lib.list(f).await.unwrap().iter().map(|l| l.id.0).collect();
            // The index alone (a search re-checks its hits against the database, which
            // would hide a wrong index filter).
            let mut got: Vec<i64> = lib
                .index()
                .search_filtered(
                    "zebra",
                    &IndexFilter {
                        tags: f.tags.clone(),
                        domain: f.domain.clone(),
                        since: f.since,
                        until: f.until,
                        favourite: f.favourite,
                        unread: f.unread,
                    },
                    100,
                )
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let hits: Vec<i64> = lib
                .search("zebra", f, 100)
                .await
                .unwrap()
                .iter()
                .map(|r| r.link.id.0)
                .collect();
            assert_eq!(hits.len(), got.len(), "{f:?}");
            want.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, want, "{f:?}");
        }
        // The tree has the implied `lang` with its subtree's distinct links.
        let tree = lib.tag_tree().await.unwrap();
        let node = |k: &str| tree.iter().find(|n| n.key == k).cloned().unwrap();
        let lang = node("lang");
        assert_eq!(lang.depth, 0);
        let mut in_lang = listed(&lib, &expr("lang")).await;
        in_lang.dedup();
        assert_eq!(lang.total, in_lang.len() as i64);
        assert_eq!(node("lang/rust/async").depth, 2);
        // The chips' query agrees with the tree.
        for parent in [None, Some("lang"), Some("lang/rust")] {
            let p = parent.map(|p| TagName::parse(p).unwrap());
            let children = lib.tag_children(p.as_ref()).await.unwrap();
            let by_sql = lib.tag_children_sql(p.as_ref()).await.unwrap();
            let pairs = |v: &[TagNode]| -> Vec<(String, String, i64, usize)> {
                v.iter()
                    .map(|n| (n.key.clone(), n.name.clone(), n.total, n.depth))
                    .collect()
            };
            assert_eq!(pairs(&children), pairs(&by_sql), "{parent:?}");
            let want: Vec<(String, i64)> = tree
                .iter()
                .filter(|n| match parent {
                    None => n.depth == 0,
                    Some(p) => n
                        .key
                        .strip_prefix(&format!("{p}/"))
                        .is_some_and(|rest| !rest.contains('/')),
                })
                .map(|n| (n.key.clone(), n.total))
                .collect();
            let got: Vec<(String, i64)> =
                children.iter().map(|n| (n.key.clone(), n.total)).collect();
            assert_eq!(got, want, "{parent:?}");
            assert!(!got.is_empty(), "{parent:?}");
        }
        assert_eq!(node("press").own, 0);
        assert!(node("press").total > 0);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn listed(lib: &Library, tags: &[TagExpr]) -> Vec<i64> {
        let f = Filter {
            tags: tags.to_vec(),
            ..Filter::default()
        };
        lib.list(&f).await.unwrap().iter().map(|l| l.id.0).collect()
    }
}
