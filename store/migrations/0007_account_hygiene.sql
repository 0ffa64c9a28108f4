-- Issue 14. Uploads belong to their creator (uploads.user_id, in the table
-- since 0002): quota sums and listings look them up by owner.
CREATE INDEX uploads_owner ON uploads (user_id, status);
