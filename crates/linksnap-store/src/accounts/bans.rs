//! Bans: addresses and ranges the server refuses at accept, kept across restarts. The
//! bans in force are also held in memory ([`Accounts::live_bans`], shared with the
//! server's accept path) and updated before `ban`/`unban` return, so a ban made by the
//! CLI through the server's socket holds from the next connection on.

use ipnet::IpNet;

use super::Accounts;
use crate::clock::now_ms;
use crate::error::StoreError;

/// The bans in force, shared between the library and the accept path.
pub type LiveBans = std::sync::Arc<std::sync::RwLock<Vec<Ban>>>;

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

impl Accounts {
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
        .execute(self.writer())
        .await?;
        let ban = Ban {
            net: net.trunc(),
            reason: reason.to_owned(),
            automatic,
            created_at: now_ms(),
            expires_at,
        };
        let mut live = self.live_bans_write();
        live.retain(|b| b.net != ban.net);
        live.push(ban);
        Ok(())
    }

    /// Lifts the ban of exactly `net`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn unban(&self, net: IpNet) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM bans WHERE net = ?")
            .bind(net.trunc().to_string())
            .execute(self.writer())
            .await?
            .rows_affected();
        self.live_bans_write().retain(|b| b.net != net.trunc());
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
            .execute(self.writer())
            .await?;
        let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT net, reason, automatic, created_at, expires_at FROM bans ORDER BY created_at DESC, net",
        )
        .fetch_all(self.pool())
        .await?;
        let bans: Vec<Ban> = rows
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
            .collect();
        self.live_bans_write().clone_from(&bans);
        Ok(bans)
    }

    /// The bans in force, in memory: filled by [`Accounts::bans`], kept current by `ban`
    /// and `unban`. The server's accept path reads it (and adds automatic bans to it).
    #[must_use]
    pub fn live_bans(&self) -> LiveBans {
        self.live_bans.clone()
    }

    fn live_bans_write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Ban>> {
        self.live_bans
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            let lib = super::super::for_test(&dir).await;
            let live = lib.live_bans();
            lib.ban("192.0.2.7/32".parse().unwrap(), None, "abuse", false)
                .await
                .unwrap();
            assert_eq!(live.read().unwrap().len(), 1);
            // A host address inside a range is stored as the range's network.
            lib.ban(
                "2001:db8::1/64".parse().unwrap(),
                Some(now_ms() + 60_000),
                "",
                true,
            )
            .await
            .unwrap();
            lib.ban(
                "198.51.100.1/32".parse().unwrap(),
                Some(now_ms() - 1),
                "old",
                false,
            )
            .await
            .unwrap();
            assert_eq!(live.read().unwrap().len(), 3);
        }
        let lib = super::super::for_test(&dir).await;
        let bans = lib.bans().await.unwrap();
        let nets: Vec<String> = bans.iter().map(|b| b.net.to_string()).collect();
        assert_eq!(bans.len(), 2, "{nets:?}");
        assert!(
            nets.contains(&"2001:db8::/64".to_owned()) && nets.contains(&"192.0.2.7/32".to_owned())
        );
        assert!(bans.iter().all(|b| b.active_at(now_ms())));
        assert_eq!(
            lib.live_bans().read().unwrap().len(),
            2,
            "loaded at open, expired swept"
        );
        assert!(lib.unban("192.0.2.7/32".parse().unwrap()).await.unwrap());
        assert_eq!(lib.live_bans().read().unwrap().len(), 1);
        assert!(!lib.unban("192.0.2.7/32".parse().unwrap()).await.unwrap());
        assert_eq!(lib.bans().await.unwrap().len(), 1);
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
