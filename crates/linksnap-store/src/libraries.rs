//! Every library of a data directory and its accounts: its own library (the command
//! line's and the first user's links), one per further user in `users/ID/`, opened when
//! first needed, and the [`Accounts`] kept beside its own library. The one place that
//! knows both.
//! A user's links, tags and snapshots are private by construction: they are in another
//! database, index and blob store, so no query can reach across.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::accounts::Accounts;
use crate::accounts::users::User;
use crate::datadir::OpenError;
use crate::domain::UrlRules;
use crate::error::StoreError;
use crate::library::Library;

/// The libraries of one data directory.
#[derive(Debug)]
pub struct Libraries {
    main: Arc<Library>,
    accounts: Arc<Accounts>,
    opened: tokio::sync::Mutex<HashMap<String, Arc<Library>>>,
}

/// Why a user's library cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("no user named `{0}`")]
    NoUser(String),
    #[error("user {user}'s library directory `{dir}` is not one this linksnap makes")]
    BadDir { user: String, dir: String },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Only `users/DIGITS`: the database says where a library is, and it must not be able to
/// say anywhere else.
fn valid_dir(dir: &str) -> bool {
    dir.strip_prefix("users/")
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

impl Libraries {
    /// Opens (creating if needed) the data directory at `path`: its own library (taking
    /// the writer lock) and its accounts (loading the bans in force).
    ///
    /// # Errors
    /// [`OpenError`].
    pub async fn open(path: &Path, rules: UrlRules) -> Result<Self, OpenError> {
        let main = Library::open_with(path, rules).await?;
        let accounts =
            Accounts::open(main.shared_data_dir())
                .await
                .map_err(|e| OpenError::Database {
                    path: path.join("linksnap.db"),
                    fault: e.fault(),
                    reason: e.to_string(),
                })?;
        Ok(Self {
            main: Arc::new(main),
            accounts: Arc::new(accounts),
            opened: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The accounts: users, sessions, tokens, bans, the server's secrets.
    #[must_use]
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// The data directory's own library.
    #[must_use]
    pub fn main(&self) -> &Arc<Library> {
        &self.main
    }

    /// `user`'s library (opened, and created, when first asked for).
    ///
    /// # Errors
    /// [`LibraryError`].
    pub async fn of_user(&self, user: &User) -> Result<Arc<Library>, LibraryError> {
        let Some(dir) = &user.library else {
            return Ok(self.main.clone());
        };
        if !valid_dir(dir) {
            return Err(LibraryError::BadDir {
                user: user.name.clone(),
                dir: dir.clone(),
            });
        }
        let mut opened = self.opened.lock().await;
        if let Some(l) = opened.get(dir) {
            return Ok(l.clone());
        }
        let path: PathBuf = self.main.data_dir().path.join(dir);
        let library =
            Arc::new(Library::open_user_library(&path, self.main.url_rules().clone()).await?);
        opened.insert(dir.clone(), library.clone());
        Ok(library)
    }

    /// The library of the user named `name`.
    ///
    /// # Errors
    /// [`LibraryError::NoUser`] and the rest of [`LibraryError`].
    pub async fn of_user_name(&self, name: &str) -> Result<Arc<Library>, LibraryError> {
        let user = self
            .accounts
            .user_by_name(name)
            .await?
            .ok_or_else(|| LibraryError::NoUser(name.to_owned()))?;
        self.of_user(&user).await
    }

    /// The library of the user with this id.
    ///
    /// # Errors
    /// [`LibraryError`].
    pub async fn of_user_id(&self, id: i64) -> Result<Arc<Library>, LibraryError> {
        let user = self
            .accounts
            .user_by_id(id)
            .await?
            .ok_or_else(|| LibraryError::NoUser(format!("#{id}")))?;
        self.of_user(&user).await
    }

    /// Every library: the data directory's own and every user's (opening those not yet
    /// open). A user library that cannot be opened is logged and left out.
    pub async fn all(&self) -> Vec<Arc<Library>> {
        let mut out = vec![self.main.clone()];
        let users = match self.accounts.users().await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "listing users");
                return out;
            }
        };
        for user in users.iter().filter(|u| u.library.is_some()) {
            match self.of_user(user).await {
                Ok(l) => out.push(l),
                Err(e) => {
                    tracing::error!(user = %user.name, error = %e, "cannot open a user's library")
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_user_owns_the_data_directory_s_library_and_later_ones_their_own() {
        let dir = std::env::temp_dir().join(format!("linksnap-libraries-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let libs = Libraries::open(&dir, UrlRules::default()).await.unwrap();
        let (main, accounts) = (libs.main().clone(), libs.accounts().clone());
        let ann = accounts
            .create_user("ann", "password one", true)
            .await
            .unwrap();
        let bob = accounts
            .create_user("bob", "password two", false)
            .await
            .unwrap();
        assert_eq!(ann.library, None);
        assert_eq!(bob.library, Some(format!("users/{}", bob.id)));
        let rules = main.url_rules().clone();
        let url = crate::NormalizedUrl::parse("https://example.org/a", &rules).unwrap();
        libs.of_user(&ann)
            .await
            .unwrap()
            .add(&url, &[], None)
            .await
            .unwrap();
        let bobs = libs.of_user_name("BOB").await.unwrap();
        assert!(
            bobs.list(&crate::Filter::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(main.list(&crate::Filter::default()).await.unwrap().len(), 1);
        assert_eq!(libs.all().await.len(), 2);
        assert!(
            Arc::ptr_eq(&libs.of_user(&bob).await.unwrap(), &bobs),
            "opened once"
        );
        // Removing the first user does not hand their library to the next.
        accounts.remove_user("ann").await.unwrap();
        let cy = accounts
            .create_user("cy", "password three", false)
            .await
            .unwrap();
        assert_eq!(cy.library, Some(format!("users/{}", cy.id)));
        assert!(!valid_dir("users/../x") && !valid_dir("/etc") && valid_dir("users/12"));
        drop((libs, bobs, main, accounts));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
