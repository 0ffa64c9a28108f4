-- Issue 13: analyses get a name and free-form tags. An empty name means "none
-- given": reads show a default made from the sources (store.DefaultName), so
-- a rename back to "" restores it and old rows need no backfill.
ALTER TABLE analyses ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE analyses ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'; -- JSON array of strings
