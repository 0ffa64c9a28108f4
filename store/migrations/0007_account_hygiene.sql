-- Issue 14. Uploads belong to their creator (uploads.user_id, in the table
-- since 0002): quota sums and listings look them up by owner.
CREATE INDEX uploads_owner ON uploads (user_id, status);
-- An admin's unlock (user unlock NAME) bumps this: the login rate limits key
-- on it, so the account's locked-out counts no longer apply.
ALTER TABLE users ADD COLUMN login_unlocks INTEGER NOT NULL DEFAULT 0;
-- Who did what to an analysis and its recipes (cancel, rename, recipe edits
-- and deletions): the activity feed shows it beside comments and reviews.
CREATE TABLE actions (
	id          INTEGER PRIMARY KEY,
	analysis_id TEXT    NOT NULL REFERENCES analyses(id) ON DELETE CASCADE,
	user_id     INTEGER REFERENCES users(id) ON DELETE SET NULL,
	action      TEXT    NOT NULL,
	target      TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
);
CREATE INDEX actions_analysis ON actions (analysis_id, created_at);
