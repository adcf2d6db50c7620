-- API tokens. Only a BLAKE3 hash of each secret is kept: a token is 256 random bits, so
-- a fast hash is as safe at rest as a slow one, and a lookup is one index probe.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    hash BLOB NOT NULL UNIQUE,
    -- The secret's first characters, shown in listings so a user can tell tokens apart.
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
