-- Token names are unique per user (the operator's tokens, which act for no user, among
-- themselves), no longer across all users; and each token carries its scopes (`read
-- write share admin`, space-separated). Tokens made before keep every scope.
CREATE TABLE api_tokens_new (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    hash BLOB NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL DEFAULT 'read write share admin'
);
INSERT INTO api_tokens_new (id, name, hash, prefix, created_at, last_used_at, user_id)
    SELECT id, name, hash, prefix, created_at, last_used_at, user_id FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_new RENAME TO api_tokens;
CREATE UNIQUE INDEX api_tokens_name_per_user ON api_tokens (coalesce(user_id, 0), name);
