-- Uploads are grouped in sessions (one new-analysis form: both sides' files),
-- and keep the relative path the browser gave (shards of a folder).
ALTER TABLE uploads ADD COLUMN session TEXT NOT NULL DEFAULT '';
CREATE INDEX uploads_session ON uploads (session);
