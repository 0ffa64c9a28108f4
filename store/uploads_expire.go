package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// AbandonedUploads lists the uploads still receiving whose last chunk arrived
// before cutoff: a browser tab closed mid-upload, a client that never came back.
// Complete uploads are never listed: they are checkpoints someone may analyse.
func (db *DB) AbandonedUploads(ctx context.Context, cutoff time.Time) ([]Upload, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT id, session, side, filename, size, received, created_at
		FROM uploads WHERE status = 'receiving' AND updated_at < ? ORDER BY updated_at`, cutoff.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: abandoned uploads: %w", err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		var created int64
		if err := rows.Scan(&u.ID, &u.Session, &u.Side, &u.Path, &u.Size, &u.Received, &created); err != nil {
			return nil, fmt.Errorf("store: abandoned uploads: %w", err)
		}
		u.CreatedAt = time.UnixMilli(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

// ExpireUpload deletes an upload that is still receiving and still idle since
// before cutoff; false when a chunk arrived meanwhile (the upload is alive) or
// it is gone. The check and the delete are one statement, so a sweep never
// removes an upload a client just resumed.
func (db *DB) ExpireUpload(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ? AND status = 'receiving' AND updated_at < ?`, id, cutoff.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: expire upload %s: %w", id, err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n > 0, err
}

// CountUploads is the number of upload rows, complete or not (tests use it to
// prove a refused upload leaves no row).
func (db *DB) CountUploads(ctx context.Context) (int, error) {
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM uploads`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count uploads: %w", err)
	}
	return n, nil
}
