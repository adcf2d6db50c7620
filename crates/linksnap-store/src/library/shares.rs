//! Share links: a public, revocable address of one link's snapshot (a fixed version or
//! always the latest), kept only as a hash of its secret.

use super::Library;
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::secrets::{hash, random_hex};

/// A public share link of a snapshot (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub id: i64,
    pub link: crate::domain::LinkId,
    /// `None`: always the latest version.
    pub version: Option<i64>,
    /// The secret's first characters.
    pub prefix: String,
    pub created_at: i64,
}

impl Library {
    /// Creates a share link of `link` (a fixed `version`, or always the latest); returns it
    /// and its secret, shown once.
    ///
    /// # Errors
    /// [`StoreError::NoLink`], [`StoreError::NoVersion`], or the database.
    pub async fn create_share(
        &self,
        link: crate::domain::LinkId,
        version: Option<i64>,
    ) -> Result<(Share, String), StoreError> {
        let versions = self.versions(link).await?;
        if let Some(v) = version
            && !versions.iter().any(|x| x.version == v)
        {
            return Err(StoreError::NoVersion { link, version: v });
        }
        if versions.is_empty() {
            return Err(StoreError::NoVersion { link, version: 0 });
        }
        let secret = random_hex()?;
        let prefix = secret[..8].to_owned();
        let now = now_ms();
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO shares (link_id, version, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(link.0)
        .bind(version)
        .bind(&hash(&secret)[..])
        .bind(&prefix)
        .bind(now)
        .fetch_one(self.writer())
        .await?;
        Ok((
            Share {
                id,
                link,
                version,
                prefix,
                created_at: now,
            },
            secret,
        ))
    }

    /// A link's share links, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn shares(&self, link: crate::domain::LinkId) -> Result<Vec<Share>, StoreError> {
        self.shares_where(Some(link)).await
    }

    /// Every share link of the library, newest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn all_shares(&self) -> Result<Vec<Share>, StoreError> {
        let mut all = self.shares_where(None).await?;
        all.reverse();
        Ok(all)
    }

    async fn shares_where(
        &self,
        link: Option<crate::domain::LinkId>,
    ) -> Result<Vec<Share>, StoreError> {
        let rows: Vec<(i64, i64, Option<i64>, String, i64)> = sqlx::query_as(
            "SELECT id, link_id, version, prefix, created_at FROM shares \
             WHERE ?1 IS NULL OR link_id = ?1 ORDER BY id",
        )
        .bind(link.map(|l| l.0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, link, version, prefix, created_at)| Share {
                id,
                link: crate::domain::LinkId(link),
                version,
                prefix,
                created_at,
            })
            .collect())
    }

    /// Revokes a share link: it stops working at once. Returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn revoke_share(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM shares WHERE id = ?")
            .bind(id)
            .execute(self.writer())
            .await?
            .rows_affected()
            > 0)
    }

    /// What a share secret opens: the link and version (`None`: the latest).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn resolve_share(
        &self,
        secret: &str,
    ) -> Result<Option<(crate::domain::LinkId, Option<i64>)>, StoreError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT link_id, version FROM shares WHERE hash = ?")
                .bind(&hash(secret)[..])
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(l, v)| (crate::domain::LinkId(l), v)))
    }
}
