-- The library's metadata. Times are Unix milliseconds (UTC). Blobs are named by the
-- BLAKE3 hex of their content and live in the blob store, not here.

CREATE TABLE links (
    id           INTEGER PRIMARY KEY,
    url          TEXT    NOT NULL UNIQUE,          -- normalised
    host         TEXT    NOT NULL,                 -- for domain filters
    title        TEXT    NOT NULL DEFAULT '',
    title_edited INTEGER NOT NULL DEFAULT 0,       -- 1: a capture no longer sets the title
    note         TEXT    NOT NULL DEFAULT '',
    favourite    INTEGER NOT NULL DEFAULT 0,
    unread       INTEGER NOT NULL DEFAULT 1,
    status       TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'capturing', 'ok', 'failed')),
    failure      TEXT,                              -- the capture's error, when failed
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX links_created ON links (created_at DESC, id DESC);
CREATE INDEX links_host ON links (host);
-- Opening the library looks up what changed after the search index's last commit.
CREATE INDEX links_updated ON links (updated_at);

CREATE TABLE tags (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL,                             -- as written, e.g. "Lang/Rust"
    key  TEXT NOT NULL UNIQUE                       -- case-folded, e.g. "lang/rust"
);

CREATE TABLE link_tags (
    link_id INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    tag_id  INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (link_id, tag_id)
) WITHOUT ROWID;
CREATE INDEX link_tags_tag ON link_tags (tag_id, link_id);

-- One row per capture of a link: its versions.
CREATE TABLE snapshots (
    id          INTEGER PRIMARY KEY,
    link_id     INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    captured_at INTEGER NOT NULL,
    final_url   TEXT    NOT NULL,
    http_status INTEGER NOT NULL,
    media_type  TEXT    NOT NULL,                  -- of the page as served
    kind        TEXT    NOT NULL CHECK (kind IN ('html', 'original')),
    root_blob   TEXT    NOT NULL,                  -- html: the template; original: the file
    page_blob   TEXT    NOT NULL,                  -- the page's bytes as received
    bytes       INTEGER NOT NULL,                  -- size of the file a user downloads
    title       TEXT    NOT NULL DEFAULT '',
    text_blob   TEXT,                              -- readable text, UTF-8
    byline      TEXT,
    excerpt     TEXT,
    lang        TEXT,
    site_name   TEXT,
    published   TEXT,
    elapsed_ms  INTEGER NOT NULL,
    UNIQUE (link_id, version)
);

-- The parts a template names (see linksnap-capture's template module).
CREATE TABLE snapshot_parts (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    blob        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('text', 'binary')),
    PRIMARY KEY (snapshot_id, blob)
) WITHOUT ROWID;
CREATE INDEX snapshot_parts_blob ON snapshot_parts (blob);

-- What happened to every resource of a capture.
CREATE TABLE snapshot_resources (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    url         TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    http_status INTEGER,
    media_type  TEXT,
    bytes       INTEGER,
    blob        TEXT,
    error       TEXT,
    PRIMARY KEY (snapshot_id, seq)
) WITHOUT ROWID;

-- The capture queue. A job is claimed atomically (UPDATE … RETURNING); under the
-- single-writer lock a job still 'running' when the library is opened belongs to a
-- process that died, and goes back to 'queued'.
CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY,
    link_id    INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL DEFAULT 'queued'
               CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    run_after  INTEGER NOT NULL,
    claimed_at INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_after, id);
