//! Faults of the machine rather than of the request: the database stayed locked, the disk
//! is full, the data directory cannot be written. Callers branch on them (the server
//! answers 503 or 507, the CLI exits with a code of its own, workers put a capture back in
//! the queue); everything else about an error is for people. Pure.

use std::error::Error;
use std::io;

/// A fault that the request did not cause and that may go away by itself or once an
/// operator acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The database stayed locked past [`crate::datadir::WRITE_TIMEOUT`].
    Busy,
    /// No space left on the device holding the data directory.
    DiskFull,
    /// The data directory is read-only (or its files are not writable by this process).
    ReadOnly,
}

impl Fault {
    /// The fault an OS error stands for, if any.
    pub fn of_io(e: &io::Error) -> Option<Self> {
        match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => Some(Self::DiskFull),
            Some(libc::EROFS | libc::EACCES | libc::EPERM) => Some(Self::ReadOnly),
            _ => match e.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Some(Self::DiskFull),
                io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::PermissionDenied => {
                    Some(Self::ReadOnly)
                }
                _ => None,
            },
        }
    }

    /// The fault anywhere in an error's chain of sources (looking inside `io::Error`s that
    /// wrap another error, which `source` skips).
    pub fn of_chain(e: &(dyn Error + 'static)) -> Option<Self> {
        let mut next: Option<&(dyn Error + 'static)> = Some(e);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if let Some(fault) = Self::of_io(io) {
                    return Some(fault);
                }
                if let Some(inner) = io.get_ref() {
                    next = Some(inner);
                    continue;
                }
            }
            next = e.source();
        }
        None
    }

    /// The fault a database error stands for: SQLite's result codes (primary code in the
    /// low byte), the writer's turn that did not come in time, or an OS error.
    pub fn of_sqlx(e: &sqlx::Error) -> Option<Self> {
        match e {
            sqlx::Error::PoolTimedOut => Some(Self::Busy),
            sqlx::Error::Database(db) => {
                let code: i32 = db.code()?.parse().ok()?;
                match code & 0xff {
                    // SQLITE_BUSY, SQLITE_LOCKED
                    5 | 6 => Some(Self::Busy),
                    // SQLITE_FULL
                    13 => Some(Self::DiskFull),
                    // SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN
                    8 | 3 | 14 => Some(Self::ReadOnly),
                    _ => None,
                }
            }
            sqlx::Error::Io(io) => Self::of_io(io),
            other => Self::of_chain(other),
        }
    }

    /// What to tell a person, and what to do about it.
    pub fn explain(self) -> &'static str {
        match self {
            Self::Busy => "the library is busy (the database stayed locked); try again shortly",
            Self::DiskFull => {
                "the disk holding the library is full: nothing was saved; free some space and try again"
            }
            Self::ReadOnly => {
                "the data directory cannot be written (read-only or wrong permissions): nothing was saved"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_name_their_fault() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(Fault::of_io(&full), Some(Fault::DiskFull));
        let ro = io::Error::from_raw_os_error(libc::EROFS);
        assert_eq!(Fault::of_io(&ro), Some(Fault::ReadOnly));
        assert_eq!(
            Fault::of_io(&io::Error::from_raw_os_error(libc::ECONNRESET)),
            None
        );
        let wrapped = io::Error::other(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(Fault::of_chain(&wrapped), Some(Fault::DiskFull));
        assert_eq!(
            Fault::of_sqlx(&sqlx::Error::PoolTimedOut),
            Some(Fault::Busy)
        );
    }
}
