-- Which engine made a version: `static` (what the server sent) or `browser` (the page
-- as a headless Chromium rendered it). Versions made before this were all static.
ALTER TABLE snapshots ADD COLUMN engine TEXT NOT NULL DEFAULT 'static'
    CHECK (engine IN ('static', 'browser'));
