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

// SpectrumKey names one spectral job: the analysis owning the result rows
// (Spectrum.ResultID) and the rank.
type SpectrumKey struct {
	Owner string
	Rank  int
}

// QueuedSpectra lists the queued spectral jobs, oldest first.
func (db *DB) QueuedSpectra(ctx context.Context) ([]SpectrumKey, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT result_id, rank FROM spectra WHERE status = 'queued' ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: queued spectra: %w", err)
	}
	defer rows.Close()
	var keys []SpectrumKey
	for rows.Next() {
		var k SpectrumKey
		if err := rows.Scan(&k.Owner, &k.Rank); err != nil {
			return nil, fmt.Errorf("store: queued spectra: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// ClaimSpectrum moves the spectral job of owner at rank to running and
// returns it with the request of the analysis it is of, as ClaimID does for
// an analysis: a running job is taken over too (the queue hands it out again
// only when its worker is gone), a finished, failed or cancelled one gives
// ErrConflict, a missing one ErrNotFound.
func (db *DB) ClaimSpectrum(ctx context.Context, owner string, rank int) (*Spectrum, AnalysisRequest, error) {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var got string
		err := tx.QueryRowContext(ctx, `UPDATE spectra
			SET status = 'running', started_at = ?, bytes_done = 0, current_tensor = '', error = ''
			WHERE result_id = ? AND rank = ? AND status IN ('queued', 'running')
			RETURNING result_id`, db.now(), owner, rank).Scan(&got)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		s, err := db.spectrumOf(ctx, tx, owner, rank, false)
		if err != nil {
			return err
		}
		return errorf(ECONFLICT, "spectrum of %s at rank %d is already %s", owner, rank, s.Status)
	})
	if err != nil {
		if ErrorCode(err) != "" {
			return nil, AnalysisRequest{}, err
		}
		return nil, AnalysisRequest{}, fmt.Errorf("store: claim spectrum of %s: %w", owner, err)
	}
	return db.claimed(ctx, owner, rank)
}

// RequeueSpectrum puts a running spectral job back in the queue (its worker
// is shutting down; the queue retries the job elsewhere). Other states are
// left alone.
func (db *DB) RequeueSpectrum(ctx context.Context, owner string, rank int) error {
	_, err := db.writer.ExecContext(ctx, `UPDATE spectra SET status = 'queued', bytes_done = 0, current_tensor = '', started_at = NULL
		WHERE result_id = ? AND rank = ? AND status = 'running'`, owner, rank)
	if err != nil {
		return fmt.Errorf("store: requeue spectrum of %s: %w", owner, err)
	}
	return nil
}
