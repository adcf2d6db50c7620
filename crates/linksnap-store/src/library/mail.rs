//! Mail ingest bookkeeping: which messages of which mailbox are done with, and how the
//! polls went. The POP3 side lives in `linksnap-mail`; this module only keeps the record,
//! in the same database (and, for ingested messages, the same transaction) as the links.

use std::collections::HashMap;

use crate::library::import::{ImportItem, ImportReport};
use crate::library::{Library, StoreError, now_ms};

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailOutcome {
    /// Its links are in the library.
    Ingested,
    /// Left in the mailbox, with a reason (no links, too large, unparseable, sender).
    Kept,
}

impl MailOutcome {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "ingested" => Some(Self::Ingested),
            "kept" => Some(Self::Kept),
            _ => None,
        }
    }
}

/// A message as the record names it.
#[derive(Debug, Clone, Default)]
pub struct MailRecord {
    /// The server's unique id (UIDL).
    pub uid: String,
    pub subject: String,
    pub sender: String,
}

/// A message recorded as kept, with its reason.
#[derive(Debug, Clone)]
pub struct KeptMessage {
    pub uid: String,
    pub subject: String,
    pub sender: String,
    pub reason: String,
    /// Unix milliseconds.
    pub seen_at: i64,
}

/// One mailbox's figures.
#[derive(Debug, Clone, Default)]
pub struct MailboxStatus {
    pub mailbox: String,
    pub polls: i64,
    pub errors: i64,
    /// Unix milliseconds.
    pub last_poll_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    /// The last poll's error; `None` once a poll succeeds again.
    pub last_error: Option<String>,
    pub messages_ingested: i64,
    pub messages_kept: i64,
    /// Links that were new to the library.
    pub links_added: i64,
    /// The most recent kept messages (at most [`KEPT_SHOWN`]).
    pub kept: Vec<KeptMessage>,
}

/// How many kept messages a status lists per mailbox.
pub const KEPT_SHOWN: i64 = 20;

impl Library {
    /// The messages of `mailbox` already done with, by UIDL.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn mail_seen(
        &self,
        mailbox: &str,
    ) -> Result<HashMap<String, MailOutcome>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT uid, outcome FROM mail_messages WHERE mailbox = ?")
                .bind(mailbox)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(uid, o)| MailOutcome::parse(&o).map(|o| (uid, o)))
            .collect())
    }

    /// Adds a message's links (each queued for capture) and records the message as
    /// ingested, in one transaction: either both are durable or neither is.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn ingest_mail(
        &self,
        mailbox: &str,
        message: &MailRecord,
        items: Vec<ImportItem>,
    ) -> Result<ImportReport, StoreError> {
        let count = items.len();
        let mut import = self.begin_import(true).await?;
        import.add(items).await?;
        let added = import.report_added();
        sqlx::query(
            "INSERT INTO mail_messages (mailbox, uid, outcome, subject, sender, links, links_added, seen_at) \
             VALUES (?, ?, 'ingested', ?, ?, ?, ?, ?) \
             ON CONFLICT (mailbox, uid) DO UPDATE SET outcome = 'ingested', reason = NULL, \
             links = excluded.links, links_added = excluded.links_added, seen_at = excluded.seen_at",
        )
        .bind(mailbox)
        .bind(&message.uid)
        .bind(&message.subject)
        .bind(&message.sender)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .bind(i64::try_from(added).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(&mut *import.tx)
        .await?;
        import.commit().await
    }

    /// Records a message left in the mailbox, and why; it is not tried again.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn keep_mail(
        &self,
        mailbox: &str,
        message: &MailRecord,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mail_messages (mailbox, uid, outcome, reason, subject, sender, seen_at) \
             VALUES (?, ?, 'kept', ?, ?, ?, ?) ON CONFLICT (mailbox, uid) DO NOTHING",
        )
        .bind(mailbox)
        .bind(&message.uid)
        .bind(reason)
        .bind(&message.subject)
        .bind(&message.sender)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records how a poll of `mailbox` ended.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn record_poll(&self, mailbox: &str, error: Option<&str>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO mail_polls (mailbox, polls, errors, last_poll_at, last_ok_at, last_error) \
             VALUES (?1, 1, ?2, ?3, CASE WHEN ?4 IS NULL THEN ?3 END, ?4) \
             ON CONFLICT (mailbox) DO UPDATE SET polls = polls + 1, errors = errors + ?2, \
             last_poll_at = ?3, last_ok_at = CASE WHEN ?4 IS NULL THEN ?3 ELSE last_ok_at END, \
             last_error = ?4",
        )
        .bind(mailbox)
        .bind(i64::from(error.is_some()))
        .bind(now)
        .bind(error)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Every mailbox that was ever polled or has messages on record, by name.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub async fn mail_status(&self) -> Result<Vec<MailboxStatus>, StoreError> {
        type PollRow = (String, i64, i64, Option<i64>, Option<i64>, Option<String>);
        let polls: Vec<PollRow> = sqlx::query_as(
            "SELECT mailbox, polls, errors, last_poll_at, last_ok_at, last_error FROM mail_polls",
        )
        .fetch_all(self.pool())
        .await?;
        let counts: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT mailbox, sum(outcome = 'ingested'), sum(outcome = 'kept'), sum(links_added) \
             FROM mail_messages GROUP BY mailbox",
        )
        .fetch_all(self.pool())
        .await?;
        let mut by_name: std::collections::BTreeMap<String, MailboxStatus> = Default::default();
        for (mailbox, polls, errors, last_poll_at, last_ok_at, last_error) in polls {
            by_name.insert(
                mailbox.clone(),
                MailboxStatus {
                    mailbox,
                    polls,
                    errors,
                    last_poll_at,
                    last_ok_at,
                    last_error,
                    ..MailboxStatus::default()
                },
            );
        }
        for (mailbox, ingested, kept, links) in counts {
            let s = by_name
                .entry(mailbox.clone())
                .or_insert_with(|| MailboxStatus {
                    mailbox,
                    ..MailboxStatus::default()
                });
            s.messages_ingested = ingested;
            s.messages_kept = kept;
            s.links_added = links;
        }
        for s in by_name.values_mut() {
            let rows: Vec<(String, String, String, Option<String>, i64)> = sqlx::query_as(
                "SELECT uid, subject, sender, reason, seen_at FROM mail_messages \
                 WHERE mailbox = ? AND outcome = 'kept' ORDER BY seen_at DESC, uid LIMIT ?",
            )
            .bind(&s.mailbox)
            .bind(KEPT_SHOWN)
            .fetch_all(self.pool())
            .await?;
            s.kept = rows
                .into_iter()
                .map(|(uid, subject, sender, reason, seen_at)| KeptMessage {
                    uid,
                    subject,
                    sender,
                    reason: reason.unwrap_or_default(),
                    seen_at,
                })
                .collect();
        }
        Ok(by_name.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(url: &str) -> ImportItem {
        ImportItem {
            url: url.to_owned(),
            tags: vec!["mail".to_owned()],
            ..ImportItem::default()
        }
    }

    #[tokio::test]
    async fn ingest_is_recorded_with_its_links_and_kept_messages_are_not_tried_again() {
        let dir = std::env::temp_dir().join(format!("linksnap-mail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let lib = Library::open(&dir).await.unwrap();
        let m1 = MailRecord {
            uid: "u1".into(),
            subject: "s".into(),
            sender: "a@b.test".into(),
        };
        let report = lib
            .ingest_mail(
                "box",
                &m1,
                vec![item("https://a.test/"), item("https://b.test/")],
            )
            .await
            .unwrap();
        assert_eq!(report.added, 2);
        // The same links from another message: recorded, nothing new added.
        let m2 = MailRecord {
            uid: "u2".into(),
            ..MailRecord::default()
        };
        let report = lib
            .ingest_mail("box", &m2, vec![item("https://a.test/")])
            .await
            .unwrap();
        assert_eq!(report.added, 0);
        let m3 = MailRecord {
            uid: "u3".into(),
            ..MailRecord::default()
        };
        lib.keep_mail("box", &m3, "no links").await.unwrap();
        lib.keep_mail("box", &m3, "again").await.unwrap();
        lib.record_poll("box", Some("connection refused"))
            .await
            .unwrap();
        lib.record_poll("box", None).await.unwrap();

        let seen = lib.mail_seen("box").await.unwrap();
        assert_eq!(seen.get("u1"), Some(&MailOutcome::Ingested));
        assert_eq!(seen.get("u3"), Some(&MailOutcome::Kept));
        assert!(lib.mail_seen("other").await.unwrap().is_empty());
        let status = lib.mail_status().await.unwrap();
        assert_eq!(status.len(), 1);
        let s = &status[0];
        assert_eq!((s.polls, s.errors), (2, 1));
        assert_eq!(s.last_error, None);
        assert!(s.last_ok_at.is_some());
        assert_eq!(
            (s.messages_ingested, s.messages_kept, s.links_added),
            (2, 1, 2)
        );
        assert_eq!(s.kept.len(), 1);
        assert_eq!(s.kept[0].reason, "no links");
        // The links are queued for capture and tagged.
        let links = lib
            .list(&crate::library::filter::Filter::default())
            .await
            .unwrap();
        assert_eq!(links.len(), 2);
        assert!(
            links
                .iter()
                .all(|l| l.tags.iter().any(|t| t.as_str() == "mail"))
        );
        drop(lib);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
