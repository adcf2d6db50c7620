//! The library's operations: links, tags, snapshot versions, integrity.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use linksnap_capture::{Capture, Snapshot};
use sqlx::{Row as _, SqlitePool};

use crate::blob::{BlobHash, BlobStore};
pub use crate::clock::now_ms;
use crate::datadir::{DataDir, OpenError};
pub use crate::domain::LinkId;
use crate::domain::{NormalizedUrl, TagName, UrlRules};
pub use crate::error::StoreError;
use filter::Filter;
use indexing::INDEX_CHUNK;
use tagsql::{prune_orphan_tags, upsert_tag};

pub mod filter;
pub(crate) mod find;
pub mod import;
pub(crate) mod indexing;
pub mod mail;
pub mod maintenance;
pub mod queue;
pub mod shares;
pub mod tags;
pub(crate) mod tagsql;
pub mod versions;

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
    /// Whether its latest version has a thumbnail (a browser capture's).
    pub thumbnail: bool,
}

/// What [`Library::edit`] changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EditLink {
    pub title: Option<String>,
    pub note: Option<String>,
    pub favourite: Option<bool>,
    pub unread: Option<bool>,
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
pub(crate) async fn check_tag_count(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
) -> Result<(), StoreError> {
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

/// The library: a data directory opened for writing.
#[derive(Debug)]
pub struct Library {
    dir: Arc<DataDir>,
    rules: UrlRules,
    /// The full-text index, derived from the database, and its lag.
    pub(crate) search: crate::library::indexing::IndexState,
    /// Unique among the libraries this process opened (see [`Library::id`]).
    id: u64,
}

/// Source of [`Library::id`].
static NEXT_LIBRARY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
        Self::open_as(path, rules).await
    }

    /// Opens (creating it if needed) a user's library, in a directory of its own: their
    /// links, tags, snapshots and index, and nothing else.
    ///
    /// # Errors
    /// As [`Library::open`].
    pub async fn open_user_library(path: &Path, rules: UrlRules) -> Result<Self, OpenError> {
        Self::open_as(path, rules).await
    }

    async fn open_as(path: &Path, rules: UrlRules) -> Result<Self, OpenError> {
        let dir = Arc::new(DataDir::open(path).await?);
        let index_dir = path.join("index");
        let (search, rebuild) =
            crate::library::indexing::open_index(path, &index_dir).map_err(|reason| {
                OpenError::Dir {
                    path: index_dir.clone(),
                    fault: crate::datadir::full_disk_fault(&index_dir),
                    reason: format!("{reason}{}", crate::datadir::space_hint(&index_dir)),
                }
            })?;
        let library = Self {
            dir,
            rules,
            search: crate::library::indexing::IndexState::new(search, index_dir.clone()),
            id: NEXT_LIBRARY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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
        Ok(library)
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

    /// The data directory, shared: what the accounts of the data directory's own library
    /// are kept over (see `Libraries::open`).
    pub(crate) fn shared_data_dir(&self) -> Arc<DataDir> {
        self.dir.clone()
    }

    /// The URL normalisation rules.
    pub fn url_rules(&self) -> &UrlRules {
        &self.rules
    }

    pub(crate) fn db(&self) -> &SqlitePool {
        &self.dir.db
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.dir.db
    }

    /// The writer connection, for a write of one statement.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.dir.writer
    }

    /// A write transaction (see [`DataDir::write_tx`]).
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.dir.write_tx().await
    }

    pub(crate) fn blobs(&self) -> &BlobStore {
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
                let next = crate::datadir::next_id(&mut tx, "links").await?;
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

    pub(crate) async fn list_range(
        &self,
        filter: &Filter,
        range: Option<(usize, usize)>,
    ) -> Result<Vec<Link>, StoreError> {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT l.id, l.url, l.title, l.note, l.favourite, l.unread, l.status, l.failure, l.created_at, l.updated_at, \
             (SELECT count(*) FROM snapshots s WHERE s.link_id = l.id) AS snapshots, \
             (SELECT s.thumbnail_blob IS NOT NULL FROM snapshots s WHERE s.link_id = l.id \
              ORDER BY s.version DESC LIMIT 1) AS thumbnail \
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
                thumbnail: row.get::<Option<i64>, _>("thumbnail") == Some(1),
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
        let drawn = &capture.renderings;
        let mut rendering_blobs = Vec::with_capacity(3);
        for bytes in [&drawn.screenshot, &drawn.thumbnail, &drawn.pdf] {
            rendering_blobs.push(match bytes {
                Some(b) => Some(self.blobs().put(b).await?),
                None => None,
            });
        }
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
             title, text_blob, byline, excerpt, lang, site_name, published, elapsed_ms, engine, \
             screenshot_blob, thumbnail_blob, pdf_blob) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .bind(capture.engine.as_str())
        .bind(rendering_blobs[0].as_ref().map(BlobHash::as_str))
        .bind(rendering_blobs[1].as_ref().map(BlobHash::as_str))
        .bind(rendering_blobs[2].as_ref().map(BlobHash::as_str))
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
}

pub(crate) fn stored_hash(s: &str) -> BlobHash {
    // Written by this code from a BlobHash; a hand-edited row that is not a hash names a
    // blob that cannot exist, which the blob store then reports as missing.
    BlobHash::parse(s).unwrap_or_else(|| BlobHash::of(s.as_bytes()))
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
        let libs = crate::Libraries::open(&dir, rules.clone()).await.unwrap();
        let (lib, accounts) = (libs.main().clone(), libs.accounts().clone());
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
            .add(vec![crate::library::import::ImportItem {
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
        accounts
            .create_user("ann", "password one", true)
            .await
            .unwrap();
        let bob = accounts
            .create_user("bob", "password two", false)
            .await
            .unwrap();
        accounts.remove_user("bob").await.unwrap();
        let cy = accounts
            .create_user("cy", "password three", false)
            .await
            .unwrap();
        assert!(cy.id > bob.id);
        assert_ne!(cy.library, bob.library);
        drop((lib, accounts, libs));
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
    use crate::domain::TagExpr;
    use crate::library::tags::TagNode;
    use crate::search::IndexFilter;

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
