//! Integrity of the library: `fsck` re-hashes every blob and checks every reference,
//! `gc` removes blobs nothing references.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row as _;

use crate::library::{GC_GRACE, Library, LinkId, StoreError};

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

impl Library {
    /// Every blob name the database references, with what references it.
    async fn referenced_blobs(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = sqlx::query(
            "SELECT root_blob AS blob, 'snapshot ' || id || ' root' AS what FROM snapshots \
             UNION ALL SELECT page_blob, 'snapshot ' || id || ' page' FROM snapshots \
             UNION ALL SELECT text_blob, 'snapshot ' || id || ' text' FROM snapshots WHERE text_blob IS NOT NULL \
             UNION ALL SELECT screenshot_blob, 'snapshot ' || id || ' screenshot' FROM snapshots WHERE screenshot_blob IS NOT NULL \
             UNION ALL SELECT thumbnail_blob, 'snapshot ' || id || ' thumbnail' FROM snapshots WHERE thumbnail_blob IS NOT NULL \
             UNION ALL SELECT pdf_blob, 'snapshot ' || id || ' pdf' FROM snapshots WHERE pdf_blob IS NOT NULL \
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
