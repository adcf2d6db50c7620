-- What a browser engine drew of a version: the whole page (PNG), a thumbnail of its top
-- (JPEG) and, when configured, the page printed to PDF. Blobs, like every other part.
ALTER TABLE snapshots ADD COLUMN screenshot_blob TEXT;
ALTER TABLE snapshots ADD COLUMN thumbnail_blob TEXT;
ALTER TABLE snapshots ADD COLUMN pdf_blob TEXT;
