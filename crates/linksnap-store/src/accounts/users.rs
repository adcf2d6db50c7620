//! People: users (passwords hashed with argon2id) and their sessions (a random secret in
//! a cookie, kept only as a hash, with the CSRF token of their forms).

use super::Accounts;
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::secrets::{hash, random_hex};

/// Longest user name, in characters.
pub const MAX_USER_NAME: usize = 64;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes (argon2 hashes any length; this bounds the work a request
/// can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How long a session lasts without signing in again.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// Their library's directory, relative to the data directory; `None`: the data
    /// directory's own library.
    pub library: Option<String>,
}

/// A query selecting a [`User`]'s columns (of `users u`), then `$rest`.
macro_rules! select_user {
    ($rest:literal) => {
        concat!(
            "SELECT u.id, u.name, u.is_admin, u.created_at, u.library",
            $rest
        )
    };
}

impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for User {
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            is_admin: row.try_get::<i64, _>("is_admin")? != 0,
            created_at: row.try_get("created_at")?,
            library: row.try_get("library")?,
        })
    }
}

/// A new session: the secret for the cookie (not stored) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub secret: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// Why a user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "a user name must be 1 to {MAX_USER_NAME} characters: letters, digits, `.`, `_`, `-`, `@`"
    )]
    InvalidName,
    #[error(
        "a password must be {MIN_PASSWORD_CHARS} characters or more (and at most {MAX_PASSWORD_BYTES} bytes)"
    )]
    WeakPassword,
    #[error("a user named `{0}` exists already")]
    Exists(String),
    #[error("no user named `{0}`")]
    NoUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UserError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

fn valid_user_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=MAX_USER_NAME).contains(&n)
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

fn check_password_shape(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::WeakPassword);
    }
    Ok(())
}

/// argon2id with the crate's default parameters (19 MiB, 2 passes), off the async threads.
async fn hash_password(password: &str) -> Result<String, StoreError> {
    use argon2::password_hash::{PasswordHasher as _, SaltString, rand_core::OsRng};
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| StoreError::Db(sqlx::Error::Io(std::io::Error::other(e.to_string()))))?
    .map_err(|e| StoreError::Db(sqlx::Error::Io(std::io::Error::other(e.to_string()))))
}

async fn password_matches(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier as _};
    let (password, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

impl Accounts {
    /// Creates a user.
    ///
    /// # Errors
    /// [`UserError`]: a bad name, a weak password, a taken name, or the database.
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User, UserError> {
        let name = name.trim();
        if !valid_user_name(name) {
            return Err(UserError::InvalidName);
        }
        check_password_shape(password)?;
        let phc = hash_password(password).await?;
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        // Never a removed user's id: their library directory was `users/ID`.
        let next = crate::datadir::next_id(&mut tx, "users").await?;
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(next)
        .bind(name)
        .bind(&phc)
        .bind(i64::from(is_admin))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| UserError::Exists(name.to_owned()))?;
        // The first user ever owns this data directory's library; every later one gets a
        // library of their own (created when first opened).
        let first = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('own_library_user', ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let library = (!first).then(|| format!("users/{id}"));
        if let Some(dir) = &library {
            // A directory there was left by a version that reused ids: never adopted.
            set_aside(&self.dir.path, dir, "orphaned")?;
        }
        sqlx::query("UPDATE users SET library = ? WHERE id = ?")
            .bind(&library)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(User {
            id,
            name: name.to_owned(),
            is_admin,
            created_at: now,
            library,
        })
    }

    /// Every user, by name.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(
            sqlx::query_as(select_user!(" FROM users u ORDER BY u.name COLLATE NOCASE"))
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// The user with this id.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        Ok(sqlx::query_as(select_user!(" FROM users u WHERE u.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// The user with this name (case-insensitive).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        // `name` is COLLATE NOCASE: the comparison ignores case.
        Ok(
            sqlx::query_as(select_user!(" FROM users u WHERE u.name = ?"))
                .bind(name.trim())
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Removes a user and their sessions.
    ///
    /// # Errors
    /// [`UserError::NoUser`], or the database.
    pub async fn remove_user(&self, name: &str) -> Result<(), UserError> {
        let gone: Option<Option<String>> =
            sqlx::query_scalar("DELETE FROM users WHERE name = ? RETURNING library")
                .bind(name.trim())
                .fetch_optional(self.writer())
                .await?;
        let Some(library) = gone else {
            return Err(UserError::NoUser(name.trim().to_owned()));
        };
        // The library is kept (an operator may want it back) but moved aside, where no
        // user's library is ever looked for: its links, snapshots and share links are gone
        // from the server, and a later user cannot open it.
        if let Some(dir) = library {
            set_aside(&self.dir.path, &dir, "removed")?;
        }
        Ok(())
    }

    /// Sets a user's password and ends their sessions.
    ///
    /// # Errors
    /// [`UserError`].
    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), UserError> {
        check_password_shape(password)?;
        let phc = hash_password(password).await?;
        let mut tx = self.write_tx().await?;
        let id: Option<i64> =
            sqlx::query_scalar("UPDATE users SET password_hash = ? WHERE name = ? RETURNING id")
                .bind(&phc)
                .bind(name.trim())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = id else {
            return Err(UserError::NoUser(name.trim().to_owned()));
        };
        sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user with this name and password, if they match. Takes as long for an unknown
    /// name as for a wrong password.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn check_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<sqlx::sqlite::SqliteRow> = sqlx::query(select_user!(
            ", u.password_hash FROM users u WHERE u.name = ?"
        ))
        .bind(name.trim())
        .fetch_optional(self.pool())
        .await?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let Some(row) = row else {
            // As much work as checking a password, so that an unknown name does not
            // answer faster than a wrong password.
            let _ = hash_password(password).await;
            return Ok(None);
        };
        let phc: String = sqlx::Row::try_get(&row, "password_hash")?;
        let user = <User as sqlx::FromRow<_>>::from_row(&row)?;
        Ok(password_matches(password, &phc).await.then_some(user))
    }

    /// Starts a session for `user`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn create_session(&self, user: i64) -> Result<NewSession, StoreError> {
        let secret = random_hex()?;
        let csrf = random_hex()?;
        let now = now_ms();
        let expires_at = now + i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&hash(&secret)[..])
        .bind(user)
        .bind(&csrf)
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        // Expired sessions go whenever a new one starts.
        sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(NewSession {
            secret,
            csrf,
            expires_at,
        })
    }

    /// The user and CSRF token of a live session.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn session(&self, secret: &str) -> Result<Option<(User, String)>, StoreError> {
        let key = hash(secret);
        let now = now_ms();
        let generation = self.generation();
        if let Some(Some((user, csrf))) = self.credentials.at(generation, |r| {
            r.sessions
                .get(&key)
                .filter(|(_, _, expires)| *expires > now)
                .map(|(u, c, _)| (u.clone(), c.clone()))
        }) {
            return Ok(Some((user, csrf)));
        }
        let row: Option<sqlx::sqlite::SqliteRow> = sqlx::query(select_user!(
            ", s.csrf, s.expires_at FROM sessions s \
             JOIN users u ON u.id = s.user_id WHERE s.hash = ? AND s.expires_at > ?"
        ))
        .bind(&key[..])
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let csrf: String = sqlx::Row::try_get(&row, "csrf")?;
        let expires: i64 = sqlx::Row::try_get(&row, "expires_at")?;
        let user = <User as sqlx::FromRow<_>>::from_row(&row)?;
        self.credentials.at(generation, |r| {
            r.sessions
                .insert(key, (user.clone(), csrf.clone(), expires))
        });
        Ok(Some((user, csrf)))
    }

    /// Ends a session (signing out).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn end_session(&self, secret: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE hash = ?")
            .bind(&hash(secret)[..])
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// Moves the library directory `dir` (relative to the data directory `root`), if there is
/// one, to `users/WHY-ID-TIME`, which is no user's library.
fn set_aside(root: &std::path::Path, dir: &str, why: &str) -> Result<(), UserError> {
    let from = root.join(dir);
    if !from.exists() {
        return Ok(());
    }
    let id = dir.rsplit('/').next().unwrap_or("x");
    let to = root.join(format!("users/{why}-{id}-{}", now_ms()));
    std::fs::rename(&from, &to).map_err(|e| {
        UserError::Store(StoreError::Blob(crate::blob::BlobError::Store {
            reason: format!("moving {} aside: {e}", from.display()),
            fault: crate::fault::Fault::of_io(&e),
        }))
    })?;
    tracing::warn!(from = %from.display(), to = %to.display(), "a user's library was moved aside");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_sign_in_with_their_password_and_sessions_end() {
        let dir = std::env::temp_dir().join(format!("linksnap-users-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = super::super::for_test(&dir).await;
        let ann = lib.create_user("ann", "correct horse", true).await.unwrap();
        assert!(ann.is_admin);
        assert!(matches!(
            lib.create_user("ANN", "another pass", false).await,
            Err(UserError::Exists(_))
        ));
        assert!(matches!(
            lib.create_user("bob", "short", false).await,
            Err(UserError::WeakPassword)
        ));
        assert!(matches!(
            lib.create_user("bob smith", "long enough", false).await,
            Err(UserError::InvalidName)
        ));
        assert_eq!(
            lib.check_password("ann", "correct horse").await.unwrap(),
            Some(ann.clone())
        );
        assert_eq!(
            lib.check_password("ann", "wrong horse").await.unwrap(),
            None
        );
        assert_eq!(
            lib.check_password("nobody", "correct horse").await.unwrap(),
            None
        );
        let s = lib.create_session(ann.id).await.unwrap();
        let (who, csrf) = lib.session(&s.secret).await.unwrap().unwrap();
        assert_eq!((who.id, csrf), (ann.id, s.csrf.clone()));
        assert!(lib.session("not a session").await.unwrap().is_none());
        // A new password ends every session.
        lib.set_password("ann", "battery staple").await.unwrap();
        assert!(lib.session(&s.secret).await.unwrap().is_none());
        assert!(
            lib.check_password("ann", "battery staple")
                .await
                .unwrap()
                .is_some()
        );
        // The password is stored only as an argon2id hash.
        let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
            .fetch_one(lib.pool())
            .await
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        let s = lib.create_session(ann.id).await.unwrap();
        lib.end_session(&s.secret).await.unwrap();
        assert!(lib.session(&s.secret).await.unwrap().is_none());
        lib.remove_user("ann").await.unwrap();
        assert!(lib.users().await.unwrap().is_empty());
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
