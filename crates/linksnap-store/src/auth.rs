//! API tokens: created with a name, shown once, kept only as a hash, revoked by name.

use crate::library::{Library, StoreError, now_ms};

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "lsk_";
/// Longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 64;
/// How many characters of a secret a listing shows.
const SHOWN: usize = TOKEN_PREFIX.len() + 6;

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// The secret's first characters.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// Why a token operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token name must be 1 to {MAX_TOKEN_NAME} printable characters")]
    InvalidName,
    #[error("a token named `{0}` exists already")]
    Exists(String),
    #[error("no token named `{0}`")]
    NoToken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn hash(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_TOKEN_NAME).contains(&n) && !name.chars().any(char::is_control)
}

impl Library {
    /// Creates a token; returns it and its secret, which is not stored and cannot be shown
    /// again.
    ///
    /// # Errors
    /// [`TokenError`]: a bad or taken name, or the database.
    pub async fn create_token(&self, name: &str) -> Result<(Token, String), TokenError> {
        let name = name.trim();
        if !valid_name(name) {
            return Err(TokenError::InvalidName);
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| {
            TokenError::Store(StoreError::Db(sqlx::Error::Io(std::io::Error::other(
                e.to_string(),
            ))))
        })?;
        let secret = format!("{TOKEN_PREFIX}{}", hex(&random));
        let now = now_ms();
        let prefix = secret[..SHOWN].to_owned();
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO api_tokens (name, hash, prefix, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(&hash(&secret)[..])
        .bind(&prefix)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(id) = inserted else {
            return Err(TokenError::Exists(name.to_owned()));
        };
        Ok((
            Token {
                id,
                name: name.to_owned(),
                prefix,
                created_at: now,
                last_used_at: None,
            },
            secret,
        ))
    }

    /// Every token, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_tokens ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, prefix, created_at, last_used_at)| Token {
                id,
                name,
                prefix,
                created_at,
                last_used_at,
            })
            .collect())
    }

    /// Revokes (deletes) the token named `name`: requests carrying it fail from now on.
    ///
    /// # Errors
    /// [`TokenError::NoToken`], or the database.
    pub async fn revoke_token(&self, name: &str) -> Result<(), TokenError> {
        let gone = sqlx::query("DELETE FROM api_tokens WHERE name = ?")
            .bind(name.trim())
            .execute(self.pool())
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(TokenError::NoToken(name.trim().to_owned()));
        }
        Ok(())
    }

    /// The token whose secret this is, if any; records its use (at most once a minute, so
    /// that a busy client does not turn every request into a write).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn verify_token(&self, secret: &str) -> Result<Option<Token>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let row: Option<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, prefix, created_at, last_used_at FROM api_tokens WHERE hash = ?",
        )
        .bind(&hash(secret)[..])
        .fetch_optional(self.pool())
        .await?;
        let Some((id, name, prefix, created_at, last_used_at)) = row else {
            return Ok(None);
        };
        let now = now_ms();
        if last_used_at.is_none_or(|t| now - t > 60_000) {
            sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Token {
            id,
            name,
            prefix,
            created_at,
            last_used_at: Some(now),
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_shown_once_kept_hashed_and_revocable() {
        let dir = std::env::temp_dir().join(format!("linksnap-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = Library::open(&dir).await.unwrap();
        let (token, secret) = lib.create_token(" ci ").await.unwrap();
        assert_eq!(token.name, "ci");
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == TOKEN_PREFIX.len() + 64);
        assert!(matches!(
            lib.create_token("ci").await,
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            lib.create_token("").await,
            Err(TokenError::InvalidName)
        ));
        assert_eq!(
            lib.verify_token(&secret).await.unwrap().unwrap().id,
            token.id
        );
        assert!(lib.verify_token("lsk_00").await.unwrap().is_none());
        // The secret itself is nowhere in the database file.
        let db = std::fs::read(dir.join("linksnap.db")).unwrap_or_default();
        let wal = std::fs::read(dir.join("linksnap.db-wal")).unwrap_or_default();
        for bytes in [db, wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
        lib.revoke_token("ci").await.unwrap();
        assert!(lib.verify_token(&secret).await.unwrap().is_none());
        assert!(matches!(
            lib.revoke_token("ci").await,
            Err(TokenError::NoToken(_))
        ));
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
