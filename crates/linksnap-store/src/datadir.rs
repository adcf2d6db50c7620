//! Where the library lives, and the guarantee that one process writes it at a time.
//!
//! Layout of a data directory:
//!
//! ```text
//! linksnap.db (+ -wal, -shm)   SQLite metadata
//! blobs/ab/cd/<hash>.zst       content-addressed blobs
//! lock                         held (flock) by the process that writes
//! ```

use crate::error::StoreError;
use std::ffi::{c_char, c_int, c_void};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::blob::{BlobError, BlobStore};

/// Why the library could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No `--data`, no `LINKSNAP_DATA`, and no home directory to put the default in.
    #[error(
        "no data directory: pass --data DIR or set LINKSNAP_DATA (there is no $HOME for the default)"
    )]
    NoDefault,
    /// The directory cannot be created or used.
    #[error("data directory {path}: {reason}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The machine's fault behind it (read-only, full), when it is one.
        fault: Option<crate::fault::Fault>,
    },
    /// A setting of the library (an environment variable) is not valid.
    #[error("{name}: {reason}")]
    Setting {
        /// The setting's name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds the writer lock.
    #[error(
        "the library in {0} is in use by another linksnap process (one writer at a time); stop it or wait for it to finish"
    )]
    Locked(PathBuf),
    /// The database was written by a newer linksnap.
    #[error(
        "the database {path} has schema version {found}, newer than this linksnap supports ({supported}); upgrade linksnap"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// SQLite failed.
    #[error("database {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The machine's fault behind it (a full disk…), when it is one.
        fault: Option<crate::fault::Fault>,
    },
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl OpenError {
    /// The machine's fault behind this error (a read-only or full disk), when it is one.
    #[must_use]
    pub fn fault(&self) -> Option<crate::fault::Fault> {
        match self {
            Self::Dir { fault, .. } | Self::Database { fault, .. } => *fault,
            Self::Blob(e) => e.fault(),
            _ => None,
        }
    }
}

/// The schema migrations, embedded in the binary, applied in order on open.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (2, "tokens", include_str!("../migrations/0002_tokens.sql")),
    (3, "users", include_str!("../migrations/0003_users.sql")),
    (4, "shares", include_str!("../migrations/0004_shares.sql")),
    (5, "mail", include_str!("../migrations/0005_mail.sql")),
    (6, "bans", include_str!("../migrations/0006_bans.sql")),
    (
        7,
        "user libraries",
        include_str!("../migrations/0007_user_libraries.sql"),
    ),
    (
        8,
        "never reused ids",
        include_str!("../migrations/0008_never_reused_ids.sql"),
    ),
    (
        9,
        "token scopes",
        include_str!("../migrations/0009_token_scopes.sql"),
    ),
    (
        10,
        "version engine",
        include_str!("../migrations/0010_version_engine.sql"),
    ),
    (
        11,
        "version renderings",
        include_str!("../migrations/0011_version_renderings.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Resolves the data directory: the flag, else `LINKSNAP_DATA`, else the XDG data dir
/// (`$XDG_DATA_HOME/linksnap`, by default `~/.local/share/linksnap`).
///
/// # Errors
/// [`OpenError::NoDefault`] when nothing names one.
pub fn resolve(flag: Option<&Path>) -> Result<PathBuf, OpenError> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os("LINKSNAP_DATA").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("linksnap"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".local/share/linksnap"))
        .ok_or(OpenError::NoDefault)
}

/// An open data directory: database, blobs, and (for writers) the lock.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// The metadata database, for reads: connections opened read-only, so a write that
    /// forgot the writer fails loudly in every test instead of racing it.
    pub db: SqlitePool,
    /// The one connection that writes (see [`WRITE_TIMEOUT`] and ARCHITECTURE.md): writers
    /// queue for it in the process, in order, instead of contending inside SQLite.
    pub writer: SqlitePool,
    /// The blob store.
    pub blobs: BlobStore,
    /// Held while this process may write; released when dropped.
    _lock: File,
    /// Whether `open` created the library (there was no database yet).
    pub created: bool,
    /// Commits that have landed in the database, counted by SQLite's WAL hook (see
    /// [`Commits`]).
    pub commits: Commits,
}

/// Counts the commits that have landed in a database: SQLite calls its WAL hook on every
/// connection of the pool after a commit has been written and the write lock released, so
/// a read that starts after the count moved sees the commit. Only the process holding
/// the writer lock writes, so every commit is counted. The count lives as long as the
/// process (a few bytes per opened library) because SQLite's hook holds a plain pointer
/// to it.
#[derive(Debug, Clone, Copy)]
pub struct Commits(&'static AtomicU64);

impl Commits {
    fn new() -> Self {
        Self(Box::leak(Box::new(AtomicU64::new(0))))
    }

    /// The count now.
    pub fn get(self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Counts a change that does not go through SQLite (a search-index reload).
    pub fn bump(self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// SQLite's own automatic checkpoint threshold, in WAL frames: installing a WAL hook
/// replaces the built-in one, so this hook checkpoints as it did.
const AUTOCHECKPOINT_FRAMES: c_int = 1000;

/// The WAL hook: runs on the connection's thread inside the committing statement, after
/// the commit landed.
unsafe extern "C" fn commit_landed(
    count: *mut c_void,
    db: *mut libsqlite3_sys::sqlite3,
    schema: *const c_char,
    frames: c_int,
) -> c_int {
    // SAFETY: `count` is the `&'static AtomicU64` of a `Commits`, given in `watch_commits`.
    let count = unsafe { &*count.cast::<AtomicU64>() };
    count.fetch_add(1, Ordering::SeqCst);
    if frames >= AUTOCHECKPOINT_FRAMES {
        // What SQLite's default hook does (a passive checkpoint); a failure is retried on
        // the next commit, as with the default.
        // SAFETY: `db` and `schema` are the live arguments SQLite passed to this hook.
        unsafe { libsqlite3_sys::sqlite3_wal_checkpoint(db, schema) };
    }
    libsqlite3_sys::SQLITE_OK
}

async fn watch_commits(
    conn: &mut sqlx::SqliteConnection,
    commits: Commits,
) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let count: *const AtomicU64 = commits.0;
    // SAFETY: `db` is this connection's open handle, used on its own worker thread only
    // while the lock is held; the hook's argument lives for the rest of the process.
    unsafe { libsqlite3_sys::sqlite3_wal_hook(db, Some(commit_landed), count.cast_mut().cast()) };
    Ok(())
}

impl DataDir {
    /// Opens (creating if needed) the data directory at `path` for writing: takes the
    /// writer lock, opens SQLite (WAL, foreign keys), applies migrations.
    ///
    /// # Errors
    /// [`OpenError`] naming what is wrong.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let dir_err = |e: &std::io::Error, what: &str| OpenError::Dir {
            path: path.to_owned(),
            reason: format!("{what}{e}"),
            fault: crate::fault::Fault::of_io(e),
        };
        let created = !path.join("linksnap.db").exists();
        std::fs::create_dir_all(path).map_err(|e| dir_err(&e, ""))?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join("lock"))
            .map_err(|e| dir_err(&e, "cannot open the lock file: "))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked(path.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(dir_err(&e, "cannot lock: "));
            }
        }
        let db_path = path.join("linksnap.db");
        let commits = Commits::new();
        let (db, writer) = open_db(&db_path, commits).await?;
        let blobs = BlobStore::local(&path.join("blobs"))?;
        Ok(Self {
            path: path.to_owned(),
            db,
            writer,
            blobs,
            _lock: lock,
            created,
            commits,
        })
    }
}

/// [`Fault::DiskFull`](crate::fault::Fault::DiskFull) when the filesystem holding `path`
/// has (almost) no space left: for errors that carry no OS error to read (SQLite's "disk
/// I/O error", tantivy's).
pub fn full_disk_fault(path: &Path) -> Option<crate::fault::Fault> {
    (!space_hint(path).is_empty()).then_some(crate::fault::Fault::DiskFull)
}

/// " (the disk is full: N bytes free)" when the filesystem holding `path` has (almost) no
/// space left: SQLite then reports only "disk I/O error".
pub fn space_hint(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return String::new();
    };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a writable, zeroed statvfs.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return String::new();
    }
    let free = stat.f_bavail as u64 * stat.f_frsize as u64;
    if free < (1 << 20) {
        format!(" (the disk is full: {free} bytes free)")
    } else {
        String::new()
    }
}

/// Connections that read. SQLite in WAL mode lets them read while the writer writes.
pub const READERS: u32 = 4;

/// How long a write waits for the writer connection (its turn in the process's queue of
/// writers, then SQLite's busy timeout for a lock held outside this process) before it
/// fails as [`crate::fault::Fault::Busy`]: only a database that is truly stuck makes a
/// write wait this long.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn open_db(path: &Path, commits: Commits) -> Result<(SqlitePool, SqlitePool), OpenError> {
    let db_err = |e: &dyn std::fmt::Display| OpenError::Database {
        path: path.to_owned(),
        fault: full_disk_fault(path),
        reason: format!("{e}{}", space_hint(path)),
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(WRITE_TIMEOUT);
    // The writer first: it creates the database and applies the migrations. It stays open
    // for the life of the pool, so the WAL and its index are never removed under the
    // read-only readers.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(WRITE_TIMEOUT)
        .after_connect(move |conn, _| Box::pin(watch_commits(conn, commits)))
        .connect_with(options.clone())
        .await
        .map_err(|e| db_err(&e))?;
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, name, sql)| {
            Migration::new(
                version,
                name.into(),
                MigrationType::Simple,
                sqlx::SqlStr::from_static(sql),
                false,
            )
        })
        .collect();
    match Migrator::with_migrations(migrations).run(&writer).await {
        Ok(()) => {}
        Err(sqlx::migrate::MigrateError::VersionMissing(found)) => {
            return Err(OpenError::NewerSchema {
                path: path.to_owned(),
                found,
                supported: schema_version(),
            });
        }
        Err(e) => return Err(db_err(&e)),
    }
    let readers = SqlitePoolOptions::new()
        .max_connections(READERS)
        .connect_with(options.read_only(true).create_if_missing(false))
        .await
        .map_err(|e| db_err(&e))?;
    Ok((readers, writer))
}

impl DataDir {
    /// A write transaction on the writer connection, holding SQLite's write lock from its
    /// `BEGIN`: a transaction that reads before it writes can then never meet a commit
    /// made in between (SQLITE_BUSY_SNAPSHOT, which no busy timeout retries).
    pub async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        match self.writer.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                // SQLite rolled a transaction back by itself (a full disk does) and sqlx,
                // whose ROLLBACK then failed, still counts it open: the connection can
                // begin nothing again. Close it; the pool opens a fresh one.
                tracing::warn!("replacing the writer connection after a transaction SQLite ended");
                if let Ok(conn) = self.writer.acquire().await {
                    let _ = conn.close().await;
                }
                Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
            }
            other => Ok(other?),
        }
    }
}

/// The id the next row of `table` (`links` or `users`) gets: above every id it has now and
/// every id it ever had (`id_high_water`, kept by a trigger on delete), so an id is never
/// handed out twice. Read inside the write transaction that inserts.
pub(crate) async fn next_id(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    table: &'static str,
) -> Result<i64, StoreError> {
    let sql = match table {
        "links" => {
            "SELECT max(coalesce((SELECT max(id) FROM links), 0), \
             coalesce((SELECT high FROM id_high_water WHERE tbl = 'links'), 0)) + 1"
        }
        _ => {
            "SELECT max(coalesce((SELECT max(id) FROM users), 0), \
             coalesce((SELECT high FROM id_high_water WHERE tbl = 'users'), 0)) + 1"
        }
    };
    Ok(sqlx::query_scalar(sql).fetch_one(&mut **tx).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("linksnap-datadir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[tokio::test]
    async fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let dir = temp("lock");
        let first = DataDir::open(&dir).await.unwrap();
        assert!(first.created);
        let second = DataDir::open(&dir).await.unwrap_err();
        assert!(matches!(second, OpenError::Locked(_)), "{second}");
        drop(first);
        let again = DataDir::open(&dir).await.unwrap();
        assert!(!again.created);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_database_from_a_newer_linksnap_is_refused() {
        let dir = temp("newer");
        let d = DataDir::open(&dir).await.unwrap();
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99, 'future', 1, x'00', 0)")
            .execute(&d.writer)
            .await
            .unwrap();
        drop(d);
        let err = DataDir::open(&dir).await.unwrap_err();
        assert!(
            matches!(err, OpenError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&format!(
            "schema version 99, newer than this linksnap supports ({})",
            schema_version()
        )));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A reader that remembers a count with the commit count read before it, the way the
    /// server's read caches do.
    struct Remembered {
        db: SqlitePool,
        commits: Commits,
        entry: std::sync::Mutex<Option<(u64, i64)>>,
    }

    impl Remembered {
        async fn count(&self) -> i64 {
            let g = self.commits.get();
            if let Some((eg, n)) = *self.entry.lock().unwrap()
                && eg == g
            {
                return n;
            }
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
                .fetch_one(&self.db)
                .await
                .unwrap();
            *self.entry.lock().unwrap() = Some((g, n));
            n
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn the_commit_count_moves_after_every_commit_lands_and_never_for_a_rollback() {
        let dir = temp("commits");
        let d = DataDir::open(&dir).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&d.writer)
            .await
            .unwrap();
        let g = d.commits.get();
        sqlx::query("SELECT count(*) FROM t")
            .execute(&d.db)
            .await
            .unwrap();
        assert_eq!(d.commits.get(), g, "a read is not a commit");
        let mut tx = d.writer.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(d.commits.get(), g, "a rollback is not a commit");

        // Readers keep remembering the count while a writer commits: after each commit
        // returns, the remembered count is the new one.
        let r = std::sync::Arc::new(Remembered {
            db: d.db.clone(),
            commits: d.commits,
            entry: std::sync::Mutex::new(None),
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (r, stop) = (r.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        r.count().await;
                        // A remembered count returns without awaiting anything.
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for i in 1..=300 {
            let mut tx = d.writer.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (?)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(r.count().await, i, "stale after commit {i}");
        }
        stop.store(true, Ordering::Relaxed);
        for h in readers {
            h.await.unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_wal_is_still_checkpointed_automatically() {
        // The WAL hook replaces SQLite's automatic checkpoint; without one, 3,000 commits
        // grow the WAL to several thousand pages.
        let dir = temp("checkpoint");
        let d = DataDir::open(&dir).await.unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&d.writer)
            .await
            .unwrap();
        for _ in 0..3000 {
            sqlx::query("INSERT INTO t VALUES (randomblob(100))")
                .execute(&d.writer)
                .await
                .unwrap();
        }
        let page: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&d.db)
            .await
            .unwrap();
        let wal = std::fs::metadata(dir.join("linksnap.db-wal"))
            .unwrap()
            .len();
        let pages = wal / u64::try_from(page).unwrap();
        assert!(
            pages < 1500,
            "the WAL holds {pages} pages: not checkpointed at {AUTOCHECKPOINT_FRAMES} frames"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_data_dir_resolves_flag_then_environment_then_xdg() {
        assert_eq!(resolve(Some(Path::new("/x"))).unwrap(), PathBuf::from("/x"));
    }
}
