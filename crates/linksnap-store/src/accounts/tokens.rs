//! API tokens: created with a name (unique per user) and scopes, shown once, kept only as a
//! hash, revoked by name.

use super::Accounts;
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::secrets::{hash, hex};

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "lsk_";
/// Longest token name, in characters.
pub const MAX_TOKEN_NAME: usize = 64;
/// How many characters of a secret a listing shows.
const SHOWN: usize = TOKEN_PREFIX.len() + 6;

/// One thing a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read links, search, snapshots, exports.
    Read,
    /// Add, change and remove links and tags; import.
    Write,
    /// Create and revoke public share links.
    Share,
    /// Network operations (statistics, bans, `/metrics`) for an administrator's token.
    Admin,
}

impl Scope {
    const ALL: [Self; 4] = [Self::Read, Self::Write, Self::Share, Self::Admin];

    fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Share => 4,
            Self::Admin => 8,
        }
    }

    /// Its name: `read`, `write`, `share`, `admin`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Share => "share",
            Self::Admin => "admin",
        }
    }
}

/// What a token may do: a set of [`Scope`]s. Parsed once from `read,write` (or spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope (what tokens made before scopes existed have).
    pub const ALL: Self = Self(15);

    /// Parses a list of scope names.
    ///
    /// # Errors
    /// [`TokenError::BadScope`] naming the word.
    pub fn parse(list: &str) -> Result<Self, TokenError> {
        let mut bits = 0u8;
        for word in list.split([',', ' ']).filter(|w| !w.trim().is_empty()) {
            let scope = Scope::ALL
                .into_iter()
                .find(|s| s.name().eq_ignore_ascii_case(word.trim()))
                .ok_or_else(|| TokenError::BadScope(word.trim().to_owned()))?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(TokenError::BadScope(String::new()));
        }
        Ok(Self(bits))
    }

    /// Whether `scope` is granted.
    #[must_use]
    pub fn allows(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The granted scopes' names, in a fixed order.
    #[must_use]
    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.allows(*s))
            .map(Scope::name)
            .collect()
    }

    fn stored(self) -> String {
        self.names().join(" ")
    }

    /// As stored; an unreadable value grants nothing.
    fn from_stored(s: &str) -> Self {
        Self::parse(s).unwrap_or(Self(0))
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub id: i64,
    pub name: String,
    /// The user it acts for (on their library); `None`: the data directory's own library.
    pub user_id: Option<i64>,
    /// The secret's first characters.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// What it may do.
    pub scopes: Scopes,
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
    #[error("`{0}` is not a scope (read, write, share, admin)")]
    BadScope(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// A token's row: id, name, user, prefix, created, last used, scopes.
type TokenRow = (i64, String, Option<i64>, String, i64, Option<i64>, String);

fn token_of((id, name, user_id, prefix, created_at, last_used_at, scopes): TokenRow) -> Token {
    Token {
        id,
        name,
        user_id,
        prefix,
        created_at,
        last_used_at,
        scopes: Scopes::from_stored(&scopes),
    }
}

fn valid_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_TOKEN_NAME).contains(&n) && !name.chars().any(char::is_control)
}

impl Accounts {
    /// Creates a token; returns it and its secret, which is not stored and cannot be shown
    /// again.
    ///
    /// # Errors
    /// [`TokenError`]: a bad or taken name, or the database.
    pub async fn create_token(
        &self,
        name: &str,
        user_id: Option<i64>,
        scopes: Scopes,
    ) -> Result<(Token, String), TokenError> {
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
            "INSERT INTO api_tokens (name, hash, prefix, created_at, user_id, scopes) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(&hash(&secret)[..])
        .bind(&prefix)
        .bind(now)
        .bind(user_id)
        .bind(scopes.stored())
        .fetch_optional(self.writer())
        .await?;
        let Some(id) = inserted else {
            return Err(TokenError::Exists(name.to_owned()));
        };
        Ok((
            Token {
                id,
                name: name.to_owned(),
                user_id,
                prefix,
                created_at: now,
                last_used_at: None,
                scopes,
            },
            secret,
        ))
    }

    /// Every token, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, name, user_id, prefix, created_at, last_used_at, scopes FROM api_tokens ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(token_of).collect())
    }

    /// Revokes (deletes) the token named `name` of `user_id` (`None`: the operator's own
    /// tokens): requests carrying it fail from now on.
    ///
    /// # Errors
    /// [`TokenError::NoToken`], or the database.
    pub async fn revoke_token(&self, name: &str, user_id: Option<i64>) -> Result<(), TokenError> {
        let gone = sqlx::query("DELETE FROM api_tokens WHERE name = ? AND user_id IS ?")
            .bind(name.trim())
            .bind(user_id)
            .execute(self.writer())
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(TokenError::NoToken(name.trim().to_owned()));
        }
        Ok(())
    }

    /// Revokes every token of a user; returns how many there were.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn revoke_tokens_of(&self, user_id: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM api_tokens WHERE user_id = ?")
            .bind(user_id)
            .execute(self.writer())
            .await?
            .rows_affected())
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
        let key = hash(secret);
        let now = now_ms();
        let generation = self.generation();
        let recent = |t: &Token| t.last_used_at.is_some_and(|t| now - t <= 60_000);
        if let Some(Some(token)) = self.credentials.at(generation, |r| {
            r.tokens.get(&key).filter(|t| recent(t)).cloned()
        }) {
            return Ok(Some(Token {
                last_used_at: Some(now),
                ..token
            }));
        }
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT id, name, user_id, prefix, created_at, last_used_at, scopes FROM api_tokens WHERE hash = ?",
        )
        .bind(&key[..])
        .fetch_optional(self.pool())
        .await?;
        let Some(mut token) = row.map(token_of) else {
            return Ok(None);
        };
        if recent(&token) {
            self.credentials
                .at(generation, |r| r.tokens.insert(key, token.clone()));
        } else {
            // A write, which moves the generation: the next request reads the row again
            // and remembers it.
            sqlx::query("UPDATE api_tokens SET last_used_at = ? WHERE id = ?")
                .bind(now)
                .bind(token.id)
                .execute(self.writer())
                .await?;
        }
        token.last_used_at = Some(now);
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_shown_once_kept_hashed_and_revocable() {
        let dir = std::env::temp_dir().join(format!("linksnap-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = super::super::for_test(&dir).await;
        let (token, secret) = lib.create_token(" ci ", None, Scopes::ALL).await.unwrap();
        assert_eq!(token.name, "ci");
        assert!(secret.starts_with(TOKEN_PREFIX) && secret.len() == TOKEN_PREFIX.len() + 64);
        assert!(matches!(
            lib.create_token("ci", None, Scopes::ALL).await,
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            lib.create_token("", None, Scopes::ALL).await,
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
        lib.revoke_token("ci", None).await.unwrap();
        assert!(lib.verify_token(&secret).await.unwrap().is_none());
        assert!(matches!(
            lib.revoke_token("ci", None).await,
            Err(TokenError::NoToken(_))
        ));
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn token_names_are_per_user_and_scopes_are_kept() {
        let dir = std::env::temp_dir().join(format!("linksnap-scopes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = super::super::for_test(&dir).await;
        let ann = lib.create_user("ann", "correct horse", true).await.unwrap();
        let bob = lib
            .create_user("bob", "battery staple", false)
            .await
            .unwrap();
        let read = Scopes::parse("read").unwrap();
        let (a, _) = lib.create_token("ci", Some(ann.id), read).await.unwrap();
        // Another user may use the same name: names say nothing across users.
        let (b, secret) = lib
            .create_token("ci", Some(bob.id), Scopes::parse("read, write").unwrap())
            .await
            .unwrap();
        assert!(matches!(
            lib.create_token("ci", Some(bob.id), read).await,
            Err(TokenError::Exists(_))
        ));
        assert!(lib.create_token("ci", None, read).await.is_ok());
        assert_eq!(a.scopes.names(), ["read"]);
        let seen = lib.verify_token(&secret).await.unwrap().unwrap();
        assert_eq!(
            (seen.id, seen.scopes.names()),
            (b.id, vec!["read", "write"])
        );
        assert!(seen.scopes.allows(Scope::Write) && !seen.scopes.allows(Scope::Share));
        assert!(matches!(Scopes::parse("read,root"), Err(TokenError::BadScope(w)) if w == "root"));
        assert!(Scopes::parse(" ").is_err());
        // Revoking names the owner; revoking all of a user's leaves the others'.
        lib.revoke_token("ci", Some(ann.id)).await.unwrap();
        assert!(lib.verify_token(&secret).await.unwrap().is_some());
        assert_eq!(lib.revoke_tokens_of(bob.id).await.unwrap(), 1);
        assert!(lib.verify_token(&secret).await.unwrap().is_none());
        assert_eq!(lib.tokens().await.unwrap().len(), 1);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
