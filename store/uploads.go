package store

import (
	"context"
	"database/sql"
	"errors"
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
	// Owner is the account that created the upload (nil without accounts);
	// only it may see, resume or delete the upload.
	Owner *int64 `json:"-"`
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
	list, err := db.queryUploads(ctx, `SELECT id, session, side, filename, size, received, status, user_id, created_at FROM uploads WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: upload %s: %w", id, err)
	}
	if len(list) == 0 {
		return nil, errorf(ENOTFOUND, "upload %s not found", id)
	}
	return &list[0], nil
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

// NewUpload is an upload about to be received (tus creation): the id is the
// tus upload id, Owner the account that creates it (nil without accounts).
type NewUpload struct {
	ID, Session, Side, Path string
	Size                    int64
	Owner                   *int64
}

// UploadQuota bounds what one owner may hold in uploads, receiving or complete.
type UploadQuota struct {
	Count int
	Bytes int64
}

// QuotaError says which part of the quota a new upload would pass.
type QuotaError struct {
	Count, MaxCount int
	Bytes, MaxBytes int64
}

func (e *QuotaError) Error() string {
	if e.Count >= e.MaxCount {
		return fmt.Sprintf("you hold %d uploads (limit %d); delete some or wait for unused ones to expire", e.Count, e.MaxCount)
	}
	return fmt.Sprintf("your uploads hold %d bytes and this one would pass your quota of %d bytes; delete some first", e.Bytes, e.MaxBytes)
}

// CreateOwnedUpload records a new upload at offset 0 for its owner, checking in
// the same transaction that the session is the owner's (or new), that the file
// is not already in it, and that the owner stays within quota. The one writer
// connection serialises these, so concurrent creations cannot pass the quota.
func (db *DB) CreateOwnedUpload(ctx context.Context, n NewUpload, quota UploadQuota) (*Upload, error) {
	if n.Side != "base" && n.Side != "vla" {
		return nil, errorf(EINVALID, "side must be base or vla")
	}
	if n.Size < 0 {
		return nil, errorf(EINVALID, "size must not be negative")
	}
	u := &Upload{ID: n.ID, Session: n.Session, Side: n.Side, Path: n.Path, Size: n.Size, Owner: n.Owner, CreatedAt: time.UnixMilli(db.now())}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var others int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM uploads WHERE session = ? AND user_id IS DISTINCT FROM ?`, n.Session, n.Owner).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			return errorf(ENOTFOUND, "upload session %s not found", n.Session)
		}
		var dup int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM uploads WHERE session = ? AND side = ? AND filename = ?`, n.Session, n.Side, n.Path).Scan(&dup); err != nil {
			return err
		}
		if dup > 0 {
			return errorf(ECONFLICT, "%s/%s is already being uploaded in this session", n.Side, n.Path)
		}
		var count int
		var bytes int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM uploads WHERE user_id IS NOT DISTINCT FROM ? AND status IN ('receiving', 'complete')`, n.Owner).Scan(&count, &bytes); err != nil {
			return err
		}
		if quota.Count > 0 && count >= quota.Count || quota.Bytes > 0 && bytes+n.Size > quota.Bytes {
			return &QuotaError{Count: count, MaxCount: quota.Count, Bytes: bytes, MaxBytes: quota.Bytes}
		}
		now := db.now()
		_, err := tx.ExecContext(ctx, `INSERT INTO uploads (id, session, side, filename, size, received, status, user_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 0, 'receiving', ?, ?, ?)`, n.ID, n.Session, n.Side, n.Path, n.Size, n.Owner, now, now)
		return err
	})
	var qe *QuotaError
	if errors.As(err, &qe) {
		return nil, qe
	}
	if err != nil {
		return nil, wrapStore("create upload", err)
	}
	return u, nil
}

// TouchUpload records that bytes of a receiving upload are arriving, so the
// sweeper measures idleness from the last chunk, not from the creation.
func (db *DB) TouchUpload(ctx context.Context, id string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE uploads SET updated_at = ? WHERE id = ? AND status = 'receiving'`, db.now(), id)
		return err
	})
}

// CompleteUpload marks a receiving upload complete (all its bytes arrived and
// the file passed its checks).
func (db *DB) CompleteUpload(ctx context.Context, id string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE uploads SET received = size, status = 'complete', updated_at = ? WHERE id = ? AND status = 'receiving'`, db.now(), id)
		if err != nil {
			return fmt.Errorf("store: complete upload %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ENOTFOUND, "upload %s not found", id)
		}
		return nil
	})
}

// ListUploads returns the owner's uploads, newest first (nil owner: the
// uploads made without accounts).
func (db *DB) ListUploads(ctx context.Context, owner *int64) ([]Upload, error) {
	return db.queryUploads(ctx, `SELECT id, session, side, filename, size, received, status, user_id, created_at FROM uploads WHERE user_id IS NOT DISTINCT FROM ? ORDER BY created_at DESC, id`, owner)
}

// UnusedCompleteUploads lists complete uploads last changed before cutoff
// whose folder no analysis names among its sources: checkpoints uploaded and
// never analysed, which the sweeper may remove.
func (db *DB) UnusedCompleteUploads(ctx context.Context, cutoff time.Time, folderOf func(Upload) string) ([]Upload, error) {
	list, err := db.queryUploads(ctx, `SELECT id, session, side, filename, size, received, status, user_id, created_at FROM uploads WHERE status = 'complete' AND updated_at < ? ORDER BY updated_at`, cutoff.UnixMilli())
	if err != nil {
		return nil, err
	}
	var out []Upload
	for _, u := range list {
		var used int
		// An analysis request is JSON holding the source paths; a source names
		// the file or the side's folder, and either contains the folder path.
		if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM analyses WHERE instr(request, ?) > 0`, folderOf(u)).Scan(&used); err != nil {
			return nil, fmt.Errorf("store: unused uploads: %w", err)
		}
		if used == 0 {
			out = append(out, u)
		}
	}
	return out, nil
}

// ExpireCompleteUpload deletes a complete upload still unchanged since cutoff.
func (db *DB) ExpireCompleteUpload(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE id = ? AND status = 'complete' AND updated_at < ?`, id, cutoff.UnixMilli())
		if err != nil {
			return fmt.Errorf("store: expire upload %s: %w", id, err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n > 0, err
}

func (db *DB) queryUploads(ctx context.Context, q string, args ...any) ([]Upload, error) {
	rows, err := db.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: uploads: %w", err)
	}
	defer rows.Close()
	var out []Upload
	for rows.Next() {
		var u Upload
		var status string
		var owner sql.NullInt64
		var created int64
		if err := rows.Scan(&u.ID, &u.Session, &u.Side, &u.Path, &u.Size, &u.Received, &status, &owner, &created); err != nil {
			return nil, fmt.Errorf("store: uploads: %w", err)
		}
		u.Complete = status == "complete"
		if owner.Valid {
			u.Owner = &owner.Int64
		}
		u.CreatedAt = time.UnixMilli(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

// UploadSessionVisible says whether owner has uploads in session: the file
// browser shows an upload session's folder to its owner only.
func (db *DB) UploadSessionVisible(ctx context.Context, session string, owner *int64) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM uploads WHERE session = ? AND user_id IS NOT DISTINCT FROM ?`, session, owner).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: upload session: %w", err)
	}
	return n > 0, nil
}
