-- Each user's links, tags and snapshots live in a library of their own: `library` is its
-- directory relative to this data directory. NULL: this data directory's own library,
-- which the first user ever created owns (and shares with the command line). Assigned
-- when the user is created, never moved.
ALTER TABLE users ADD COLUMN library TEXT;
UPDATE users SET library = 'users/' || id WHERE id <> (SELECT min(id) FROM users);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO settings (key, value)
    SELECT 'own_library_user', CAST(min(id) AS TEXT) FROM users HAVING count(*) > 0;
-- A token acts for a user, on their library. NULL: on this data directory's own library.
ALTER TABLE api_tokens ADD COLUMN user_id INTEGER REFERENCES users (id) ON DELETE CASCADE;
