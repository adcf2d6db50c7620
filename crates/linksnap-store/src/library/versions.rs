//! Snapshot versions of a link: saving a capture, listing versions and resources,
//! rendering a snapshot, a version's readable text.

use bytes::Bytes;
use linksnap_capture::{Capture, SnapshotParts};
use sqlx::Row as _;

use crate::library::{Library, LinkId, StoreError, stored_hash};

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
    /// `static` or `browser`: which engine made it.
    pub engine: String,
    /// Which renderings a browser engine kept of it.
    pub screenshot: bool,
    pub thumbnail: bool,
    pub pdf: bool,
}

/// What a browser engine drew of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rendering {
    /// The whole page, PNG.
    Screenshot,
    /// The page's top, small, JPEG.
    Thumbnail,
    /// The page printed, PDF.
    Pdf,
}

impl Rendering {
    /// `screenshot`, `thumbnail` or `pdf`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "screenshot" => Some(Self::Screenshot),
            "thumbnail" => Some(Self::Thumbnail),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// Its media type.
    #[must_use]
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Screenshot => "image/png",
            Self::Thumbnail => "image/jpeg",
            Self::Pdf => "application/pdf",
        }
    }

    /// The query for its blob, of a link (`?`) at a version (`?`, `?`; null: the latest).
    fn query(self) -> &'static str {
        match self {
            Self::Screenshot => {
                "SELECT screenshot_blob FROM snapshots WHERE link_id = ? AND (? IS NULL OR version = ?) \
                 ORDER BY version DESC LIMIT 1"
            }
            Self::Thumbnail => {
                "SELECT thumbnail_blob FROM snapshots WHERE link_id = ? AND (? IS NULL OR version = ?) \
                 ORDER BY version DESC LIMIT 1"
            }
            Self::Pdf => {
                "SELECT pdf_blob FROM snapshots WHERE link_id = ? AND (? IS NULL OR version = ?) \
                 ORDER BY version DESC LIMIT 1"
            }
        }
    }
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

impl Library {
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
                engine: r.get("engine"),
                screenshot: r.get::<Option<String>, _>("screenshot_blob").is_some(),
                thumbnail: r.get::<Option<String>, _>("thumbnail_blob").is_some(),
                pdf: r.get::<Option<String>, _>("pdf_blob").is_some(),
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

    /// A rendering of a version (the latest when `version` is `None`), if the browser
    /// engine kept one.
    ///
    /// # Errors
    /// [`StoreError::NoVersion`] when there is no such version or it has no such
    /// rendering; [`StoreError::Blob`].
    pub async fn rendering(
        &self,
        id: LinkId,
        version: Option<i64>,
        what: Rendering,
    ) -> Result<Bytes, StoreError> {
        self.get(id).await?;
        let blob: Option<String> = sqlx::query_scalar(what.query())
            .bind(id.0)
            .bind(version)
            .bind(version)
            .fetch_optional(self.db())
            .await?
            .flatten();
        let blob = blob.ok_or(StoreError::NoVersion {
            link: id,
            version: version.unwrap_or(0),
        })?;
        Ok(self.blobs().get(&stored_hash(&blob)).await?)
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
}
