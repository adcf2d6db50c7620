//! One poll of a mailbox, exactly once: a message's links are committed together with its
//! UIDL before the message is marked deleted, and deletions take effect only at QUIT.

use linksnap_store::import::ImportItem;
use linksnap_store::{Library, MailOutcome, MailRecord, StoreError};

use crate::config::Mailbox;
use crate::message;
use crate::pop3::{self, Io, Pop3, Pop3Error};

/// What a poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Messages in the mailbox.
    pub messages: usize,
    /// Messages whose links were saved by this poll.
    pub ingested: usize,
    /// Messages left in the mailbox by this poll, with the reason recorded.
    pub kept: usize,
    /// Messages already done with (by an earlier poll).
    pub known: usize,
    /// Links new to the library.
    pub links_added: usize,
    /// Links that were already there (their tags were added).
    pub links_existing: usize,
    /// Messages deleted at QUIT.
    pub deleted: usize,
    /// Messages left for the next poll: this one reached `max_links_per_poll`.
    pub deferred: usize,
}

/// Why a poll failed. Nothing is deleted then, and nothing is saved twice by the next.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("mailbox {mailbox} ({host}:{port}): {source}")]
    Pop3 {
        mailbox: String,
        host: String,
        port: u16,
        source: Pop3Error,
    },
    #[error("mailbox {mailbox}: {source}")]
    Store { mailbox: String, source: StoreError },
    #[error("mailbox {mailbox}: the server has no UIDL, which exactly-once ingest needs")]
    NoUidl { mailbox: String },
}

impl PollError {
    /// Whether the server refused the credentials.
    #[must_use]
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Self::Pop3 {
                source: Pop3Error::Auth { .. },
                ..
            }
        )
    }
}

/// Polls once and records the outcome in the mailbox's status.
///
/// # Errors
/// [`PollError`]; recorded too.
pub async fn poll_once(library: &Library, mailbox: &Mailbox) -> Result<PollReport, PollError> {
    let result = poll(library, mailbox).await;
    let error = result.as_ref().err().map(ToString::to_string);
    if let Err(e) = library.record_poll(&mailbox.name, error.as_deref()).await {
        tracing::warn!(mailbox = %mailbox.name, error = %e, "cannot record the poll");
    }
    result
}

async fn poll(library: &Library, mailbox: &Mailbox) -> Result<PollReport, PollError> {
    let net = |source: Pop3Error| PollError::Pop3 {
        mailbox: mailbox.name.clone(),
        host: mailbox.host.clone(),
        port: mailbox.port,
        source,
    };
    let store = |source: StoreError| PollError::Store {
        mailbox: mailbox.name.clone(),
        source,
    };
    let mut session = pop3::connect(mailbox).await.map_err(net)?;
    session
        .login(&mailbox.user, mailbox.password.expose())
        .await
        .map_err(net)?;
    let ids = match session.uidl().await {
        Ok(ids) => ids,
        Err(Pop3Error::Refused { .. }) => {
            return Err(PollError::NoUidl {
                mailbox: mailbox.name.clone(),
            });
        }
        Err(e) => return Err(net(e)),
    };
    let sizes: std::collections::HashMap<u32, u64> = session
        .list()
        .await
        .map_err(net)?
        .into_iter()
        .map(|e| (e.number, e.value))
        .collect();
    let seen = library.mail_seen(&mailbox.name).await.map_err(store)?;
    let mut report = PollReport {
        messages: ids.len(),
        ..PollReport::default()
    };
    for entry in ids {
        let (number, uid) = (entry.number, entry.value);
        match seen.get(&uid) {
            Some(MailOutcome::Ingested) => {
                // Saved by an earlier poll whose QUIT never came: only the deletion is left.
                report.known += 1;
                if mailbox.delete {
                    session.dele(number).await.map_err(net)?;
                    report.deleted += 1;
                }
                continue;
            }
            Some(MailOutcome::Kept) => {
                report.known += 1;
                continue;
            }
            None => {}
        }
        let record = MailRecord {
            uid: uid.clone(),
            ..MailRecord::default()
        };
        let size = sizes.get(&number).copied().unwrap_or(0);
        if size > mailbox.max_message_bytes {
            let reason = format!(
                "too large: {size} bytes, the limit is {}",
                mailbox.max_message_bytes
            );
            library
                .keep_mail(&mailbox.name, &record, &reason)
                .await
                .map_err(store)?;
            report.kept += 1;
            continue;
        }
        let raw = match session.retr(number, mailbox.max_message_bytes).await {
            Ok(raw) => raw,
            Err(Pop3Error::TooLarge { limit }) => {
                // LIST understated it. The session is mid-answer now: end it here (nothing
                // is deleted); the record keeps the next poll from reading it again.
                let reason = format!("too large: more than the limit of {limit} bytes");
                library
                    .keep_mail(&mailbox.name, &record, &reason)
                    .await
                    .map_err(store)?;
                return Err(net(Pop3Error::TooLarge { limit }));
            }
            Err(e) => return Err(net(e)),
        };
        let room = mailbox
            .max_links_per_poll
            .saturating_sub(report.links_added + report.links_existing);
        match ingest_message(library, mailbox, uid, &raw, room)
            .await
            .map_err(store)?
        {
            Ingested::Later => {
                // The poll's budget (max_links_per_poll) is spent: the rest waits.
                report.deferred += 1;
                break;
            }
            Ingested::Saved { added, existing } => {
                report.ingested += 1;
                report.links_added += added;
                report.links_existing += existing;
                if mailbox.delete {
                    session.dele(number).await.map_err(net)?;
                    report.deleted += 1;
                }
            }
            Ingested::Kept => report.kept += 1,
        }
    }
    finish(session, &mut report).await.map_err(net)?;
    Ok(report)
}

async fn finish(session: Pop3<Box<dyn Io>>, report: &mut PollReport) -> Result<(), Pop3Error> {
    session.quit().await.inspect_err(|_| report.deleted = 0)
}

enum Ingested {
    Saved {
        added: usize,
        existing: usize,
    },
    Kept,
    /// The poll's link budget is spent: left untouched for the next poll.
    Later,
}

/// Saves one message's links (with its UIDL, in one transaction), or records why it is
/// kept in the mailbox.
async fn ingest_message(
    library: &Library,
    mailbox: &Mailbox,
    uid: String,
    raw: &[u8],
    room: usize,
) -> Result<Ingested, StoreError> {
    let Some(mail) = message::parse(raw) else {
        let record = MailRecord {
            uid,
            ..MailRecord::default()
        };
        library
            .keep_mail(&mailbox.name, &record, "not a mail message")
            .await?;
        return Ok(Ingested::Kept);
    };
    let record = MailRecord {
        uid,
        subject: mail.subject.clone(),
        sender: mail.sender.clone(),
    };
    if let Err(refusal) = crate::trust::check(&mailbox.rules(), &mail) {
        library
            .keep_mail(&mailbox.name, &record, &refusal.to_string())
            .await?;
        return Ok(Ingested::Kept);
    }
    if mail.links.is_empty() {
        library
            .keep_mail(&mailbox.name, &record, "no http or https link")
            .await?;
        return Ok(Ingested::Kept);
    }
    if mail.links.len() > mailbox.max_links_per_message {
        let reason = format!(
            "{} links, more than the limit of {} (max_links_per_message)",
            mail.links.len(),
            mailbox.max_links_per_message
        );
        library.keep_mail(&mailbox.name, &record, &reason).await?;
        return Ok(Ingested::Kept);
    }
    if mail.links.len() > room {
        return Ok(Ingested::Later);
    }
    let mut tags: Vec<String> = mailbox.tags.iter().map(|t| t.as_str().to_owned()).collect();
    if mailbox.subject_tags {
        tags.extend(message::subject_tags(&mail.subject));
    }
    let items = mail
        .links
        .iter()
        .map(|url| ImportItem {
            url: url.clone(),
            tags: tags.clone(),
            ..ImportItem::default()
        })
        .collect();
    let report = library.ingest_mail(&mailbox.name, &record, items).await?;
    Ok(Ingested::Saved {
        added: report.added,
        existing: report.existing,
    })
}

/// Polls every `poll_interval` until `stop` turns true (a failed poll is logged, recorded
/// and tried again at the next interval).
pub async fn poll_loop(
    library: &Library,
    mailbox: &Mailbox,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut after_poll: impl FnMut(&Result<PollReport, PollError>),
) {
    loop {
        let result = tokio::select! {
            r = poll_once(library, mailbox) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match &result {
            Ok(r) => tracing::info!(
                mailbox = %mailbox.name,
                messages = r.messages,
                ingested = r.ingested,
                kept = r.kept,
                links_added = r.links_added,
                deleted = r.deleted,
                "mailbox polled"
            ),
            Err(e) => tracing::warn!(error = %e, "mailbox poll failed"),
        }
        after_poll(&result);
        tokio::select! {
            () = tokio::time::sleep(mailbox.poll_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
