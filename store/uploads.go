package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Upload is a file being received in chunks. Received is the confirmed offset:
// every byte before it was written and synced before it was recorded, so an
// upload interrupted anywhere resumes from Received (bytes past it on disk are
// cut off on resume).
type Upload struct {
	ID        string    `json:"id"`
	Session   string    `json:"session"`
	Side      string    `json:"side"`
	Path      string    `json:"path"` // relative to the session's side folder
	Size      int64     `json:"size"`
	Received  int64     `json:"offset"`
	Complete  bool      `json:"complete"`
	CreatedAt time.Time `json:"created_at"`
}

// NewUploadSession returns a fresh session id.
func NewUploadSession() string { return newID() }

// CreateUpload records a new upload at offset 0.
func (db *DB) CreateUpload(ctx context.Context, session, side, path string, size int64) (*Upload, error) {
	if side != "base" && side != "vla" {
		return nil, errorf(EINVALID, "side must be base or vla")
	}
	if size < 0 {
		return nil, errorf(EINVALID, "size must not be negative")
	}
	u := &Upload{ID: newID(), Session: session, Side: side, Path: path, Size: size, CreatedAt: time.UnixMilli(db.now())}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		_, err := tx.ExecContext(ctx, `INSERT INTO uploads (id, session, side, filename, size, received, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 0, 'receiving', ?, ?)`, u.ID, session, side, path, size, now, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: create upload: %w", err)
	}
	return u, nil
}

// GetUpload returns an upload or ErrNotFound.
func (db *DB) GetUpload(ctx context.Context, id string) (*Upload, error) {
	var u Upload
	var status string
	var created int64
	err := db.reader.QueryRowContext(ctx, `SELECT id, session, side, filename, size, received, status, created_at FROM uploads WHERE id = ?`, id).
		Scan(&u.ID, &u.Session, &u.Side, &u.Path, &u.Size, &u.Received, &status, &created)
	if err == sql.ErrNoRows {
		return nil, errorf(ENOTFOUND, "upload %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: upload %s: %w", id, err)
	}
	u.Complete = status == "complete"
	u.CreatedAt = time.UnixMilli(created)
	return &u, nil
}

// AdvanceUpload moves the confirmed offset from `from` to `to` (compare and set,
// so two clients resuming the same upload cannot both append), marking the
// upload complete when it reaches its size. ErrConflict when the offset moved.
func (db *DB) AdvanceUpload(ctx context.Context, id string, from, to int64) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET received = ?, updated_at = ?,
			status = CASE WHEN ? = size THEN 'complete' ELSE status END
			WHERE id = ? AND received = ? AND status = 'receiving' AND ? <= size`, to, db.now(), to, id, from, to)
		if err != nil {
			return fmt.Errorf("store: advance upload %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ECONFLICT, "upload %s is not at offset %d", id, from)
		}
		return nil
	})
}

// DeleteUpload forgets an upload.
func (db *DB) DeleteUpload(ctx context.Context, id string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("store: delete upload %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ENOTFOUND, "upload %s not found", id)
		}
		return nil
	})
}
