-- Ids are never handed out twice. SQLite gives a new row the highest id plus one, so
-- removing the newest user or link and adding another reused its id: a new user opened
-- the removed user's library (`users/ID`), and a client holding a removed link's id
-- changed another link. The highest id ever removed is kept here, and new rows get ids
-- above it (`store::library::next_id`).
CREATE TABLE id_high_water (tbl TEXT PRIMARY KEY, high INTEGER NOT NULL);
INSERT INTO id_high_water (tbl, high) SELECT 'users', coalesce(max(id), 0) FROM users;
INSERT INTO id_high_water (tbl, high) SELECT 'links', coalesce(max(id), 0) FROM links;
CREATE TRIGGER users_high_water AFTER DELETE ON users BEGIN
    INSERT OR REPLACE INTO id_high_water (tbl, high) VALUES
        ('users', max(OLD.id, coalesce((SELECT high FROM id_high_water WHERE tbl = 'users'), 0)));
END;
CREATE TRIGGER links_high_water AFTER DELETE ON links BEGIN
    INSERT OR REPLACE INTO id_high_water (tbl, high) VALUES
        ('links', max(OLD.id, coalesce((SELECT high FROM id_high_water WHERE tbl = 'links'), 0)));
END;

-- Poison pills: how many times a job was abandoned by a process that died (or hung) while
-- capturing it. A job abandoned twice is failed instead of queued again, so one page that
-- kills the capture cannot take the server down at every start.
ALTER TABLE jobs ADD COLUMN abandoned INTEGER NOT NULL DEFAULT 0;
