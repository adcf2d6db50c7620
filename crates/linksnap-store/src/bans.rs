//! Bans: addresses and ranges the server refuses at accept, kept across restarts. The
//! server holds them in memory and reloads when [`Library::bans_changed`] ticks (a ban
//! made by the CLI through the server's socket applies at once).

use ipnet::IpNet;

use crate::library::{Library, StoreError, now_ms};

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub net: IpNet,
    pub reason: String,
    /// Made by the server (the per-address cap), not by a person.
    pub automatic: bool,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds; `None` until lifted.
    pub expires_at: Option<i64>,
}

impl Ban {
    /// Whether it still holds at `now_ms`.
    #[must_use]
    pub fn active_at(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now_ms)
    }
}

impl Library {
    /// Bans `net` (replacing a ban of the same range), until `expires_at` if given.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn ban(
        &self,
        net: IpNet,
        expires_at: Option<i64>,
        reason: &str,
        automatic: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO bans (net, reason, automatic, created_at, expires_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (net) DO UPDATE SET reason = excluded.reason, automatic = excluded.automatic, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(net.trunc().to_string())
        .bind(reason)
        .bind(i64::from(automatic))
        .bind(now_ms())
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        self.bans_touched();
        Ok(())
    }

    /// Lifts the ban of exactly `net`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn unban(&self, net: IpNet) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM bans WHERE net = ?")
            .bind(net.trunc().to_string())
            .execute(self.pool())
            .await?
            .rows_affected();
        self.bans_touched();
        Ok(n > 0)
    }

    /// The bans in force (expired ones are swept), newest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        let now = now_ms();
        sqlx::query("DELETE FROM bans WHERE expires_at IS NOT NULL AND expires_at <= ?")
            .bind(now)
            .execute(self.pool())
            .await?;
        let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT net, reason, automatic, created_at, expires_at FROM bans ORDER BY created_at DESC, net",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(net, reason, automatic, created_at, expires_at)| {
                Some(Ban {
                    net: net.parse().ok()?,
                    reason,
                    automatic: automatic != 0,
                    created_at,
                    expires_at,
                })
            })
            .collect())
    }

    /// Ticks whenever bans change (through this `Library`).
    #[must_use]
    pub fn bans_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.bans_tx.subscribe()
    }

    fn bans_touched(&self) {
        self.bans_tx.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bans_persist_replace_expire_and_are_announced() {
        let dir = std::env::temp_dir().join(format!("linksnap-bans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let lib = Library::open(&dir).await.unwrap();
            let mut changed = lib.bans_changed();
            lib.ban("192.0.2.7/32".parse().unwrap(), None, "abuse", false).await.unwrap();
            assert!(changed.has_changed().unwrap());
            changed.mark_unchanged();
            // A host address inside a range is stored as the range's network.
            lib.ban("2001:db8::1/64".parse().unwrap(), Some(now_ms() + 60_000), "", true).await.unwrap();
            lib.ban("198.51.100.1/32".parse().unwrap(), Some(now_ms() - 1), "old", false).await.unwrap();
            assert!(changed.has_changed().unwrap());
        }
        let lib = Library::open(&dir).await.unwrap();
        let bans = lib.bans().await.unwrap();
        let nets: Vec<String> = bans.iter().map(|b| b.net.to_string()).collect();
        assert_eq!(bans.len(), 2, "{nets:?}");
        assert!(nets.contains(&"2001:db8::/64".to_owned()) && nets.contains(&"192.0.2.7/32".to_owned()));
        assert!(bans.iter().all(|b| b.active_at(now_ms())));
        assert!(lib.unban("192.0.2.7/32".parse().unwrap()).await.unwrap());
        assert!(!lib.unban("192.0.2.7/32".parse().unwrap()).await.unwrap());
        assert_eq!(lib.bans().await.unwrap().len(), 1);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
