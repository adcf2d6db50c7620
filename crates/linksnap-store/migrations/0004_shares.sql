-- Public share links: a snapshot anyone with the link can open, until it is revoked. The
-- link carries a random secret; only its BLAKE3 hash is kept.
CREATE TABLE shares (
    id INTEGER PRIMARY KEY,
    link_id INTEGER NOT NULL REFERENCES links (id) ON DELETE CASCADE,
    -- NULL: always the latest version.
    version INTEGER,
    hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX shares_link ON shares (link_id);
