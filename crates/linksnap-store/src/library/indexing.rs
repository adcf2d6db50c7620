//! Keeping the search index in step with the database: what is handed to the index
//! writer, the watermark each index commit records, and the repairs that bring a lagging,
//! damaged or deleted index back without a restart.
//!
//! The index is derived data. A change commits to the database first, then its links are
//! handed to the index writer, then the index commits with a watermark: every change
//! stamped (`links.updated_at`) before the watermark is in the index. Writers run
//! concurrently, so the watermark is not simply "now": each change registers the time it
//! began ([`PendingChange`]) before its database transaction, and an index commit records
//! the oldest of those still open. A change whose indexing fails leaves the index
//! `behind`; [`Library::maintain_index`] (workers call it, and every index commit first)
//! catches up from the watermark, reconciles the index's ids with the database's, and
//! rebuilds the index from scratch when it cannot be written at all.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::library::filter::Filter;
use crate::library::{Library, LinkId, StoreError, now_ms, stored_hash};
use crate::search::{SearchDoc, SearchIndex};

/// Links indexed per database query.
pub(crate) const INDEX_CHUNK: usize = 500;

/// The library's search index and what it knows of its own lag.
#[derive(Debug)]
pub(crate) struct IndexState {
    /// The index; replaced whole by a rebuild.
    index: RwLock<Arc<SearchIndex>>,
    /// Where it lives.
    dir: PathBuf,
    /// Changes begun and not yet handed to the index writer: ticket → start (Unix ms).
    pending: Arc<Mutex<BTreeMap<u64, i64>>>,
    next_ticket: AtomicU64,
    /// Set when indexing or an index commit failed: the index misses changes until
    /// [`Library::maintain_index`] catches up.
    behind: AtomicBool,
    /// One repair at a time.
    repair: tokio::sync::Mutex<()>,
    /// One [`Library::index_docs`] at a time: each reads its links and writes their
    /// documents as one step, so a change that read a link before another change removed
    /// it cannot write the link's document back after the removal took it out.
    docs: tokio::sync::Mutex<()>,
}

/// A change between the start of its database transaction and the moment its links were
/// handed to the index writer. While it lives, no index commit records a watermark after
/// its start. Dropped when the change function returns.
#[derive(Debug)]
#[must_use = "the change is pending only while this lives"]
pub(crate) struct PendingChange {
    ticket: u64,
    pending: Arc<Mutex<BTreeMap<u64, i64>>>,
}

impl Drop for PendingChange {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.ticket);
    }
}

impl IndexState {
    pub(crate) fn new(index: SearchIndex, dir: PathBuf) -> Self {
        Self {
            index: RwLock::new(Arc::new(index)),
            dir,
            pending: Arc::default(),
            next_ticket: AtomicU64::new(0),
            behind: AtomicBool::new(false),
            repair: tokio::sync::Mutex::new(()),
            docs: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn get(&self) -> Arc<SearchIndex> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, index: SearchIndex) {
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(index);
    }

    /// The watermark an index commit may record now.
    fn watermark(&self) -> i64 {
        let now = now_ms();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .copied()
            .min()
            .map_or(now, |oldest| oldest.min(now))
    }
}

/// Opens the index in `dir`, or makes a new one after moving a damaged one aside (it is
/// derived data). Returns the index and whether it must be built from the database.
pub(crate) fn open_index(root: &Path, dir: &Path) -> Result<(SearchIndex, bool), String> {
    let fresh = !dir.join("meta.json").exists();
    match SearchIndex::open(dir) {
        Ok(s) => Ok((s, fresh)),
        Err(e) if e.is_outdated() => {
            // Derived data in an older layout: rebuild it in the new one.
            tracing::info!("rebuilding the search index for this version of linksnap");
            std::fs::remove_dir_all(dir).map_err(|e| e.to_string())?;
            let s = SearchIndex::open(dir).map_err(|e| e.to_string())?;
            Ok((s, true))
        }
        Err(e) => {
            let aside = root.join(format!("index.damaged-{}", now_ms()));
            tracing::warn!(error = %e, aside = %aside.display(), "the search index is damaged; rebuilding it");
            if dir.exists() {
                std::fs::rename(dir, &aside).map_err(|e| e.to_string())?;
            }
            let s = SearchIndex::open(dir).map_err(|e| e.to_string())?;
            Ok((s, true))
        }
    }
}

impl Library {
    pub(crate) fn index(&self) -> Arc<SearchIndex> {
        self.search.get()
    }

    /// Registers a change that is about to begin: call it before the change's database
    /// transaction and keep it until the change's links are handed to the index.
    pub(crate) fn pending_change(&self) -> PendingChange {
        let state = &self.search;
        let ticket = state.next_ticket.fetch_add(1, Ordering::Relaxed);
        state
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ticket, now_ms());
        PendingChange {
            ticket,
            pending: state.pending.clone(),
        }
    }

    /// Whether the index is known to miss changes (a failed indexing not yet repaired).
    #[must_use]
    pub fn index_behind(&self) -> bool {
        self.search.behind.load(Ordering::SeqCst)
    }

    /// Rebuilds the search index from the database. Returns the number of links indexed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn reindex(&self) -> Result<usize, StoreError> {
        let _pending = self.pending_change();
        self.index().clear()?;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM links")
            .fetch_all(self.pool())
            .await?;
        for chunk in ids.chunks(INDEX_CHUNK) {
            self.index_docs(chunk).await?;
        }
        self.commit_index_now()?;
        self.search.behind.store(false, Ordering::SeqCst);
        Ok(ids.len())
    }

    /// Re-indexes these links (a removed one leaves the index) and commits. Called after
    /// the change committed to the database, so a failure here does not undo or fail the
    /// change: the index is marked behind and repaired by [`Library::maintain_index`].
    pub(crate) async fn reindex_links(&self, ids: &[i64]) -> Result<(), StoreError> {
        // Chunks keep each query under SQLite's limit on bound variables.
        for chunk in ids.chunks(INDEX_CHUNK) {
            if let Err(e) = self.index_docs(chunk).await {
                self.fell_behind(&e);
                return Ok(());
            }
        }
        self.commit_index().await
    }

    pub(crate) fn fell_behind(&self, e: &StoreError) {
        if !self.search.behind.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %e, "the search index misses changes; it will catch up");
        }
    }

    /// Commits pending index changes (after [`Library::add_unindexed`]). A failed commit
    /// is not an error of the change (the database has it): the index is marked behind.
    ///
    /// # Errors
    /// None today; kept fallible for callers that batch.
    pub async fn commit_index(&self) -> Result<(), StoreError> {
        if self.index_behind() {
            // The repair commits everything, this change included.
            if let Err(e) = self.maintain_index().await {
                tracing::warn!(error = %e, "the search index could not catch up yet");
            }
            return Ok(());
        }
        if let Err(e) = self.commit_index_now() {
            self.fell_behind(&e);
        }
        Ok(())
    }

    fn commit_index_now(&self) -> Result<(), StoreError> {
        self.index().commit(self.search.watermark())?;
        // After the reload: a search that starts now sees the new index.
        self.data_dir().commits.bump();
        Ok(())
    }

    /// Brings an index that fell behind up to date: the links changed since its watermark,
    /// then its ids against the database's; when the index cannot be written at all (its
    /// directory was deleted, its files damaged), a new one is built from the database
    /// and takes its place. Does nothing when the index is not behind.
    ///
    /// # Errors
    /// [`StoreError`] when even a rebuild fails (a full disk): the index stays behind.
    pub async fn maintain_index(&self) -> Result<(), StoreError> {
        if !self.index_behind() {
            return Ok(());
        }
        let _one = self.search.repair.lock().await;
        if !self.index_behind() {
            return Ok(());
        }
        // Cleared first: a change failing during the repair sets it again.
        self.search.behind.store(false, Ordering::SeqCst);
        // The writer that failed is in an unknown state: close it and open the index
        // afresh from its last commit (or build a new one where there is none, or it is
        // damaged), then catch up from that commit's watermark.
        let repaired = async {
            self.index().close();
            let root = self.data_dir().path.clone();
            let (fresh, rebuild) = open_index(&root, &self.search.dir).map_err(|reason| {
                StoreError::Search(crate::search::SearchError::message(reason))
            })?;
            self.search.replace(fresh);
            if rebuild {
                self.reindex().await?;
            } else {
                self.catch_up_index().await?;
                self.reconcile_index().await?;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        match repaired {
            Ok(()) => {
                tracing::warn!("the search index caught up");
                Ok(())
            }
            Err(e) => {
                self.search.behind.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Indexes the links changed after the index's watermark: what a process that died
    /// between a database commit and an index commit left out.
    pub(crate) async fn catch_up_index(&self) -> Result<(), StoreError> {
        let Some(mark) = self.index().watermark() else {
            self.reindex().await?;
            return Ok(());
        };
        let _pending = self.pending_change();
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM links WHERE updated_at >= ?")
            .bind(mark)
            .fetch_all(self.pool())
            .await?;
        if !ids.is_empty() {
            tracing::info!(
                links = ids.len(),
                "indexing links changed after the last index commit"
            );
            for chunk in ids.chunks(INDEX_CHUNK) {
                self.index_docs(chunk).await?;
            }
        }
        self.commit_index_now()
    }

    /// Makes the index hold exactly the database's links: indexes the ones it lacks and
    /// drops the ones the database no longer has (a removal whose index commit was lost).
    /// Returns how many documents it added and removed.
    ///
    /// # Errors
    /// [`StoreError`].
    pub(crate) async fn reconcile_index(&self) -> Result<(usize, usize), StoreError> {
        let (missing, extra) = self.index_disagreement().await?;
        if missing.is_empty() && extra.is_empty() {
            return Ok((0, 0));
        }
        tracing::info!(
            missing = missing.len(),
            extra = extra.len(),
            "the search index disagreed with the database; repairing it"
        );
        let _pending = self.pending_change();
        for chunk in missing.chunks(INDEX_CHUNK) {
            self.index_docs(chunk).await?;
        }
        let index = self.index();
        for id in &extra {
            index.delete(*id)?;
        }
        self.commit_index_now()?;
        Ok((missing.len(), extra.len()))
    }

    /// Links the database has and the index lacks, and documents of the index whose link
    /// the database no longer has.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn index_disagreement(&self) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
        let in_db: Vec<i64> = sqlx::query_scalar("SELECT id FROM links ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        let in_index = self.index().all_ids()?;
        let db_set: HashSet<i64> = in_db.iter().copied().collect();
        let index_set: HashSet<i64> = in_index.iter().copied().collect();
        let missing = in_db
            .into_iter()
            .filter(|id| !index_set.contains(id))
            .collect();
        let mut extra: Vec<i64> = in_index
            .into_iter()
            .filter(|id| !db_set.contains(id))
            .collect();
        extra.dedup();
        Ok((missing, extra))
    }

    pub(crate) async fn index_docs(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let _one_at_a_time = self.search.docs.lock().await;
        let filter = Filter {
            ids: Some(ids.iter().map(|i| LinkId(*i)).collect()),
            ..Filter::default()
        };
        let links = self.list(&filter).await?;
        let present: HashSet<i64> = links.iter().map(|l| l.id.0).collect();
        let index = self.index();
        for id in ids.iter().filter(|i| !present.contains(i)) {
            index.delete(*id)?;
        }
        for link in links {
            let text_blob: Option<String> = sqlx::query_scalar(
                "SELECT text_blob FROM snapshots WHERE link_id = ? ORDER BY version DESC LIMIT 1",
            )
            .bind(link.id.0)
            .fetch_optional(self.pool())
            .await?
            .flatten();
            let text = match text_blob {
                Some(h) => match self.data_dir().blobs.get(&stored_hash(&h)).await {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    // A damaged text blob is fsck's to report; the link stays findable by
                    // everything else.
                    Err(e) => {
                        tracing::warn!(link = link.id.0, error = %e, "readable text unavailable for the index");
                        String::new()
                    }
                },
                None => String::new(),
            };
            index.upsert(&SearchDoc {
                link_id: link.id.0,
                title: link.title.clone(),
                url: link.url.to_string(),
                note: link.note.clone(),
                tags: link.tags.iter().map(|t| t.as_str().to_owned()).collect(),
                text,
                tag_keys: link.tags.iter().map(|t| t.key().to_owned()).collect(),
                host: link.url.host().to_owned(),
                created_at: link.created_at,
                favourite: link.favourite,
                unread: link.unread,
            })?;
        }
        Ok(())
    }
}
