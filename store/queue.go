package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A shared job queue (River, on PostgreSQL: jobs/river.go) hands a worker an
// analysis by id rather than "the oldest queued"; these are the store's side
// of that.

// IsPostgres reports whether the store is a PostgreSQL database (OpenURL).
func (db *DB) IsPostgres() bool { return db.dialect == dialectPostgres }

// QueuedIDs lists the queued analyses, oldest first.
func (db *DB) QueuedIDs(ctx context.Context) ([]string, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT id FROM analyses WHERE status = 'queued' ORDER BY created_at, rowid`)
	if err != nil {
		return nil, fmt.Errorf("store: queued analyses: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: queued analyses: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// ClaimID moves analysis id to running (one more attempt, started now) and
// returns it. A running analysis is taken over too: the queue hands it out
// again only when the worker that had it is gone (killed; its job rescued).
// A finished, failed or cancelled analysis gives ErrConflict.
func (db *DB) ClaimID(ctx context.Context, id string) (*Analysis, error) {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var got string
		err := tx.QueryRowContext(ctx, `UPDATE analyses
			SET status = 'running', attempts = attempts + 1, started_at = ?, bytes_done = 0, current_tensor = '', error = ''
			WHERE id = ? AND status IN ('queued', 'running')
			RETURNING id`, db.now(), id).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			st, err := db.status(ctx, tx, id)
			if err != nil {
				return err
			}
			return errorf(ECONFLICT, "analysis %s is already %s", id, st)
		}
		return err
	})
	if err != nil {
		if ErrorCode(err) != "" {
			return nil, err
		}
		return nil, fmt.Errorf("store: claim %s: %w", id, err)
	}
	return db.getFrom(ctx, db.writer, id)
}

// Requeue puts a running analysis back in the queue (its worker is shutting
// down; the queue retries the job elsewhere). Other states are left alone.
func (db *DB) Requeue(ctx context.Context, id string) error {
	_, err := db.writer.ExecContext(ctx, `UPDATE analyses SET status = 'queued', bytes_done = 0, current_tensor = '', started_at = NULL
		WHERE id = ? AND status = 'running'`, id)
	if err != nil {
		return fmt.Errorf("store: requeue %s: %w", id, err)
	}
	return nil
}
