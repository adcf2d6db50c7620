//! The accounts of a data directory: users and their sessions (`users`), API tokens
//! (`tokens`), bans (`bans`), the server's own secrets, and the credential cache that
//! sessions and tokens share. They live in the data directory's own database beside its
//! library, over the same [`DataDir`], and neither imports the other: a user's library has
//! no accounts, by construction (there is no `Accounts` for it).

use std::sync::Arc;

use crate::datadir::DataDir;
use crate::error::StoreError;
use crate::secrets::random_hex;

pub mod bans;
pub mod tokens;
pub mod users;

/// The accounts, bans and server secrets of a data directory.
#[derive(Debug)]
pub struct Accounts {
    dir: Arc<DataDir>,
    /// Sessions and tokens verified at the current generation.
    credentials: CredentialCache,
    /// The bans in force (see `bans`).
    live_bans: bans::LiveBans,
}

impl Accounts {
    /// The accounts kept in `dir`, the data directory's own database; loads the bans in
    /// force. Made once per data directory, by [`crate::Libraries::open`].
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub(crate) async fn open(dir: Arc<DataDir>) -> Result<Self, StoreError> {
        let accounts = Self {
            dir,
            credentials: CredentialCache::default(),
            live_bans: bans::LiveBans::default(),
        };
        accounts.bans().await?;
        Ok(accounts)
    }

    /// Moves with every commit to the database (see `Library::generation`): what the
    /// credential cache is keyed by.
    fn generation(&self) -> u64 {
        self.dir.commits.get()
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        &self.dir.db
    }

    fn writer(&self) -> &sqlx::SqlitePool {
        &self.dir.writer
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.dir.write_tx().await
    }

    /// A 256-bit secret of the server's, named `name`: made on first use and kept (in the
    /// data directory's own library), so what it signs stays valid across restarts.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn server_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let key = format!("secret:{name}");
        let fresh = random_hex()?;
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(&key)
            .bind(&fresh)
            .execute(self.writer())
            .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(&key)
            .fetch_one(self.pool())
            .await?;
        // The stored 256 random bits, as a key of exactly 32 bytes for this purpose.
        Ok(blake3::derive_key(
            &format!("linksnap server secret {name}"),
            stored.as_bytes(),
        ))
    }
}

/// Most credentials remembered for one generation of the library; past it the cache
/// starts over. Only credentials that verified are remembered, so this bounds the memory
/// of a server with very many live sessions, not of one sent garbage.
pub const MAX_CACHED_CREDENTIALS: usize = 10_000;

/// Sessions and tokens verified since the library last changed, so that a request with a
/// known credential does not query the database. Everything is forgotten when the
/// library's generation moves (a sign-out, a revoked token, an expired session deleted: any
/// commit), so nothing revoked is ever accepted from here; an expiry is checked on every hit.
#[derive(Debug, Default)]
pub(crate) struct CredentialCache(std::sync::Mutex<Remembered>);

#[derive(Debug, Default)]
pub(crate) struct Remembered {
    generation: u64,
    pub(crate) tokens: std::collections::HashMap<[u8; 32], tokens::Token>,
    /// The user, the CSRF token and when the session expires.
    sessions: std::collections::HashMap<[u8; 32], (users::User, String, i64)>,
}

impl CredentialCache {
    pub(crate) fn at<T>(&self, generation: u64, f: impl FnOnce(&mut Remembered) -> T) -> Option<T> {
        let mut r = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation > r.generation || r.tokens.len() + r.sessions.len() >= MAX_CACHED_CREDENTIALS
        {
            *r = Remembered {
                generation,
                ..Remembered::default()
            };
        }
        // A read from an older generation is neither answered nor remembered.
        (generation == r.generation).then(|| f(&mut r))
    }
}

/// The accounts of a data directory opened for a test (with its library, whose writer
/// lock they keep).
#[cfg(test)]
pub(crate) async fn for_test(path: &std::path::Path) -> Arc<Accounts> {
    crate::Libraries::open(path, crate::UrlRules::default())
        .await
        .unwrap()
        .accounts()
        .clone()
}
