//! The content-addressed blob store: every page, asset and snapshot part once, named by
//! the BLAKE3 hash of its content, zstd-compressed, in sharded paths (`ab/cd/<hash>.zst`).
//!
//! Behind `object_store`: the local filesystem now (temporary file, fsync, rename, and the
//! directory fsynced), an S3-compatible store later by configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::fault::Fault;
use futures_util::TryStreamExt as _;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

pub use linksnap_capture::PartHash as BlobHash;

/// zstd level for blobs: fast to write, ~3.5× on HTML and CSS.
pub const ZSTD_LEVEL: i32 = 3;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob by that name.
    #[error("blob {0} is missing")]
    NotFound(BlobHash),
    /// The stored bytes do not decompress or do not hash to their name.
    #[error("blob {hash} is damaged: {reason}")]
    Corrupt {
        /// Which blob.
        hash: BlobHash,
        /// What is wrong.
        reason: String,
    },
    /// The store itself failed (disk full, permissions…).
    #[error("blob store: {reason}")]
    Store {
        /// What failed.
        reason: String,
        /// The machine's fault behind it, when it is one.
        fault: Option<Fault>,
    },
}

impl BlobError {
    fn store(e: &(dyn std::error::Error + 'static)) -> Self {
        Self::Store {
            reason: e.to_string(),
            fault: Fault::of_chain(e),
        }
    }

    /// The machine's fault behind this error, when it is one.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Self::Store { fault, .. } => *fault,
            _ => None,
        }
    }
}

/// A blob as listed.
#[derive(Debug, Clone)]
pub struct BlobEntry {
    /// Its name.
    pub hash: BlobHash,
    /// Compressed size on disk.
    pub stored_bytes: u64,
    /// When it was written.
    pub modified: SystemTime,
}

/// The blob store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A store in the local directory `dir` (created if missing), writes fsynced.
    ///
    /// # Errors
    /// When the directory cannot be created or opened.
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Store {
            reason: format!("{}: {e}", dir.display()),
            fault: Fault::of_io(&e),
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| BlobError::store(&e))?
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(fs),
        })
    }

    fn path(hash: &BlobHash) -> ObjectPath {
        let h = hash.as_str();
        ObjectPath::from(format!("{}/{}/{}.zst", &h[..2], &h[2..4], h))
    }

    /// Stores `bytes`; returns their name. Storing what is already there does nothing.
    ///
    /// # Errors
    /// [`BlobError::Store`] when writing fails (disk full…); nothing partial is left.
    pub async fn put(&self, bytes: &[u8]) -> Result<BlobHash, BlobError> {
        let hash = BlobHash::of(bytes);
        let path = Self::path(&hash);
        if self.store.head(&path).await.is_ok() {
            return Ok(hash);
        }
        let compressed =
            zstd::bulk::compress(bytes, ZSTD_LEVEL).map_err(|e| BlobError::store(&e))?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(compressed), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(hash),
            Err(e) => Err(BlobError::store(&e)),
        }
    }

    /// Reads a blob, checking that it hashes to its name.
    ///
    /// # Errors
    /// [`BlobError::NotFound`], [`BlobError::Corrupt`] or [`BlobError::Store`].
    pub async fn get(&self, hash: &BlobHash) -> Result<Bytes, BlobError> {
        let stored = match self.store.get(&Self::path(hash)).await {
            Ok(r) => r.bytes().await.map_err(|e| BlobError::store(&e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound(hash.clone()));
            }
            Err(e) => return Err(BlobError::store(&e)),
        };
        let checked = match zstd::decode_all(&stored[..]) {
            Ok(bytes) if BlobHash::of(&bytes) == *hash => Ok(bytes),
            Ok(_) => Err("content does not match its hash".to_owned()),
            Err(e) => Err(format!("does not decompress: {e}")),
        };
        match checked {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(reason) => {
                self.quarantine(hash).await;
                Err(BlobError::Corrupt {
                    hash: hash.clone(),
                    reason,
                })
            }
        }
    }

    /// Moves a damaged blob aside (`….zst.damaged`, which no listing counts), so that the
    /// next write of the same content (a recapture) stores it whole again instead of
    /// finding the damaged one there.
    async fn quarantine(&self, hash: &BlobHash) {
        let from = Self::path(hash);
        let to = ObjectPath::from(format!("{from}.damaged"));
        match self.store.rename(&from, &to).await {
            Ok(()) => tracing::warn!(blob = %hash, aside = %to, "a damaged blob was moved aside"),
            Err(e) => {
                tracing::warn!(blob = %hash, error = %e, "a damaged blob could not be moved aside")
            }
        }
    }

    /// Whether a blob exists (without reading it).
    ///
    /// # Errors
    /// [`BlobError::Store`] when the store cannot answer.
    pub async fn contains(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        match self.store.head(&Self::path(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(BlobError::store(&e)),
        }
    }

    /// Every blob. Files that are not blobs (staging files of an interrupted write) are
    /// skipped.
    ///
    /// # Errors
    /// [`BlobError::Store`].
    pub async fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let metas: Vec<_> = self
            .store
            .list(None)
            .try_collect()
            .await
            .map_err(|e| BlobError::store(&e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.strip_suffix(".zst")?;
                Some(BlobEntry {
                    hash: BlobHash::parse(name)?,
                    stored_bytes: m.size,
                    modified: m.last_modified.into(),
                })
            })
            .collect())
    }

    /// Removes a blob.
    ///
    /// # Errors
    /// [`BlobError::Store`].
    pub async fn delete(&self, hash: &BlobHash) -> Result<(), BlobError> {
        match self.store.delete(&Self::path(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::store(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_deduplicate_and_detect_damage() {
        let dir = std::env::temp_dir().join(format!("linksnap-blob-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = BlobStore::local(&dir).unwrap();
        let body = "body { color: red } ".repeat(1000);
        let h = store.put(body.as_bytes()).await.unwrap();
        assert_eq!(store.put(body.as_bytes()).await.unwrap(), h);
        assert_eq!(store.get(&h).await.unwrap(), body.as_bytes());
        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(
            listed[0].stored_bytes < 1000,
            "compressed: {}",
            listed[0].stored_bytes
        );
        let file = dir
            .join(&h.as_str()[..2])
            .join(&h.as_str()[2..4])
            .join(format!("{h}.zst"));
        assert!(file.is_file());
        // Damage: different content under the same name.
        std::fs::write(&file, zstd::bulk::compress(b"tampered", 3).unwrap()).unwrap();
        assert!(matches!(
            store.get(&h).await,
            Err(BlobError::Corrupt { .. })
        ));
        // Moved aside: the same content written again is stored whole.
        assert!(!file.exists());
        assert!(file.with_extension("zst.damaged").is_file());
        assert!(matches!(store.get(&h).await, Err(BlobError::NotFound(_))));
        assert_eq!(store.put(body.as_bytes()).await.unwrap(), h);
        assert_eq!(store.get(&h).await.unwrap(), body.as_bytes());
        std::fs::write(&file, b"not zstd").unwrap();
        assert!(matches!(
            store.get(&h).await,
            Err(BlobError::Corrupt { .. })
        ));
        assert_eq!(store.list().await.unwrap().len(), 0, "aside is not a blob");
        store.put(body.as_bytes()).await.unwrap();
        store.delete(&h).await.unwrap();
        assert!(matches!(store.get(&h).await, Err(BlobError::NotFound(_))));
        assert!(!store.contains(&h).await.unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
