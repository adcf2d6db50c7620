-- Mail ingest bookkeeping. A message is identified by its mailbox and its POP3 UIDL;
-- a row here means "done with": its links are in the library ('ingested', recorded in the
-- same transaction as the links) or it was left in the mailbox for a reason ('kept').
CREATE TABLE mail_messages (
    mailbox TEXT NOT NULL,
    uid TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ingested', 'kept')),
    reason TEXT,
    subject TEXT NOT NULL DEFAULT '',
    sender TEXT NOT NULL DEFAULT '',
    links INTEGER NOT NULL DEFAULT 0,
    links_added INTEGER NOT NULL DEFAULT 0,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;

-- One row per mailbox: how its polls went.
CREATE TABLE mail_polls (
    mailbox TEXT PRIMARY KEY,
    polls INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    last_poll_at INTEGER,
    last_ok_at INTEGER,
    last_error TEXT
);
