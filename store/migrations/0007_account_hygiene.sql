-- Issue 14. Uploads belong to their creator (uploads.user_id, in the table
-- since 0002): quota sums and listings look them up by owner.
CREATE INDEX uploads_owner ON uploads (user_id, status);
-- An admin's unlock (user unlock NAME) bumps this: the login rate limits key
-- on it, so the account's locked-out counts no longer apply.
ALTER TABLE users ADD COLUMN login_unlocks INTEGER NOT NULL DEFAULT 0;
