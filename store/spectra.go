package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/deltascope/deltascope/analysis/spectral"
)

// Spectrum is the spectral job of one analysis's result at one rank K: queued
// → running → done | failed | cancelled, like an analysis, with the spectra
// once done.
type Spectrum struct {
	// ResultID is the analysis that owns the result rows the spectra are of
	// (see Analysis.ResultOf): analyses answered from the cache share it.
	ResultID      string     `json:"result_id"`
	Rank          int        `json:"rank"`
	Status        Status     `json:"status"`
	BytesDone     int64      `json:"bytes_done"`
	BytesTotal    int64      `json:"bytes_total"`
	CurrentTensor string     `json:"current_tensor,omitempty"`
	Error         string     `json:"error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// Seconds is the compute time of a finished job.
	Seconds float64 `json:"seconds,omitempty"`
	// Result is set once done.
	Result *spectral.Result `json:"result,omitempty"`
}

// Progress is the fraction of bytes read, 0..1; 1 once done.
func (s *Spectrum) Progress() float64 {
	switch {
	case s.Status == StatusDone:
		return 1
	case s.BytesTotal <= 0:
		return 0
	}
	return min(1, max(0, float64(s.BytesDone)/float64(s.BytesTotal)))
}

// resultOwner is the analysis whose result rows a done analysis reads.
func (db *DB) resultOwner(ctx context.Context, q queryer, id string) (string, error) {
	var st Status
	var of sql.NullString
	err := q.QueryRowContext(ctx, `SELECT status, result_of FROM analyses WHERE id = ?`, id).Scan(&st, &of)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errorf(ENOTFOUND, "analysis %s not found", id)
	}
	if err != nil {
		return "", fmt.Errorf("store: analysis %s: %w", id, err)
	}
	if st != StatusDone {
		return "", errorf(ECONFLICT, "analysis %s is %s: spectra need a finished analysis", id, st)
	}
	if of.Valid && of.String != "" {
		return of.String, nil
	}
	return id, nil
}

// RequestSpectrum queues the spectral job of analysis id at rank K, unless
// one is queued, running or done already (then it is returned as is). A
// failed or cancelled job is queued again. created reports whether a job was
// queued by this call.
func (db *DB) RequestSpectrum(ctx context.Context, id string, rank int) (s *Spectrum, created bool, err error) {
	if rank < 1 || rank > spectral.MaxRank {
		return nil, false, errorf(EINVALID, "rank %d: give a rank between 1 and %d", rank, spectral.MaxRank)
	}
	var owner string
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		if owner, err = db.resultOwner(ctx, tx, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO spectra (result_id, rank, created_at) VALUES (?, ?, ?)
			ON CONFLICT (result_id, rank) DO UPDATE SET status = 'queued', error = '', bytes_done = 0,
				current_tensor = '', started_at = NULL, finished_at = NULL, created_at = excluded.created_at
			WHERE spectra.status IN ('failed', 'cancelled')`, owner, rank, db.now())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		return nil
	})
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("store: request spectrum of %s: %w", id, err)
	}
	s, err = db.spectrumOf(ctx, db.writer, owner, rank, false)
	return s, created, err
}

// SpectrumOf returns the spectral job of analysis id at rank K (without its
// result unless withResult), or ErrNotFound when none was requested.
func (db *DB) SpectrumOf(ctx context.Context, id string, rank int, withResult bool) (*Spectrum, error) {
	owner, err := db.resultOwner(ctx, db.reader, id)
	if err != nil {
		return nil, err
	}
	return db.spectrumOf(ctx, db.reader, owner, rank, withResult)
}

// LatestSpectrum is the most recently requested spectral job of analysis id,
// any rank, or ErrNotFound.
func (db *DB) LatestSpectrum(ctx context.Context, id string, withResult bool) (*Spectrum, error) {
	owner, err := db.resultOwner(ctx, db.reader, id)
	if err != nil {
		return nil, err
	}
	var rank int
	err = db.reader.QueryRowContext(ctx, `SELECT rank FROM spectra WHERE result_id = ?
		ORDER BY (status = 'done') DESC, created_at DESC, id DESC LIMIT 1`, owner).Scan(&rank)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(ENOTFOUND, "no spectrum requested for analysis %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: spectra of %s: %w", id, err)
	}
	return db.spectrumOf(ctx, db.reader, owner, rank, withResult)
}

const spectrumColumns = `result_id, rank, status, bytes_done, bytes_total, current_tensor, error, created_at, started_at, finished_at, seconds`

func (db *DB) spectrumOf(ctx context.Context, q queryer, owner string, rank int, withResult bool) (*Spectrum, error) {
	cols := spectrumColumns + `, NULL`
	if withResult {
		cols = spectrumColumns + `, result`
	}
	rows, err := q.QueryContext(ctx, `SELECT `+cols+` FROM spectra WHERE result_id = ? AND rank = ?`, owner, rank)
	if err != nil {
		return nil, fmt.Errorf("store: spectrum of %s: %w", owner, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: spectrum of %s: %w", owner, err)
		}
		return nil, errorf(ENOTFOUND, "no spectrum of rank %d requested for analysis %s", rank, owner)
	}
	s, err := scanSpectrum(rows)
	if err != nil {
		return nil, fmt.Errorf("store: spectrum of %s: %w", owner, err)
	}
	return s, nil
}

func scanSpectrum(rows *sql.Rows) (*Spectrum, error) {
	var s Spectrum
	var created int64
	var started, finished sql.NullInt64
	var secs sql.NullFloat64
	var result sql.NullString
	if err := rows.Scan(&s.ResultID, &s.Rank, &s.Status, &s.BytesDone, &s.BytesTotal, &s.CurrentTensor, &s.Error,
		&created, &started, &finished, &secs, &result); err != nil {
		return nil, err
	}
	s.CreatedAt = time.UnixMilli(created).UTC()
	if started.Valid {
		t := time.UnixMilli(started.Int64).UTC()
		s.StartedAt = &t
	}
	if finished.Valid {
		t := time.UnixMilli(finished.Int64).UTC()
		s.FinishedAt = &t
	}
	s.Seconds = secs.Float64
	if result.Valid {
		var r spectral.Result
		if err := json.Unmarshal([]byte(result.String), &r); err != nil {
			return nil, fmt.Errorf("stored spectra: %w", err)
		}
		s.Result = &r
	}
	return &s, nil
}

// ClaimNextSpectrum moves the oldest queued spectral job to running and
// returns it with the request of the analysis it is of (the newest one
// sharing its result), or ErrNotFound.
func (db *DB) ClaimNextSpectrum(ctx context.Context) (*Spectrum, AnalysisRequest, error) {
	var owner string
	var rank int
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE spectra
			SET status = 'running', started_at = ?, bytes_done = 0, current_tensor = '', error = ''
			WHERE id = (SELECT id FROM spectra WHERE status = 'queued' ORDER BY created_at, id LIMIT 1)
			RETURNING result_id, rank`, db.now()).Scan(&owner, &rank)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, AnalysisRequest{}, errorf(ENOTFOUND, "no queued spectrum")
	}
	if err != nil {
		return nil, AnalysisRequest{}, fmt.Errorf("store: claim spectrum: %w", err)
	}
	return db.claimed(ctx, owner, rank)
}

// claimed returns the spectral job just claimed with the request of the
// analysis it is of.
func (db *DB) claimed(ctx context.Context, owner string, rank int) (*Spectrum, AnalysisRequest, error) {
	s, err := db.spectrumOf(ctx, db.writer, owner, rank, false)
	if err != nil {
		return nil, AnalysisRequest{}, err
	}
	// The newest analysis sharing the result names where the files are now:
	// the first one's paths may have moved since.
	src := owner
	if err := db.writer.QueryRowContext(ctx, `SELECT id FROM analyses WHERE (id = ? OR result_of = ?) AND status = 'done'
		ORDER BY finished_at DESC, rowid DESC LIMIT 1`, owner, owner).Scan(&src); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, AnalysisRequest{}, fmt.Errorf("store: claim spectrum: %w", err)
	}
	a, err := db.getFrom(ctx, db.writer, src)
	if err != nil {
		return nil, AnalysisRequest{}, err
	}
	return s, a.Request, nil
}

// UpdateSpectrumProgress records how far a running spectral job has read;
// ErrConflict when it is no longer running (cancelled).
func (db *DB) UpdateSpectrumProgress(ctx context.Context, owner string, rank int, done, total int64, tensor string) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE spectra SET bytes_done = ?, bytes_total = ?, current_tensor = ?
		WHERE result_id = ? AND rank = ? AND status = 'running'`, done, total, tensor, owner, rank)
	if err != nil {
		return fmt.Errorf("store: progress of spectrum %s: %w", owner, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	return errorf(ECONFLICT, "spectrum of %s at rank %d is not running", owner, rank)
}

// FinishSpectrum stores the result of a running spectral job.
func (db *DB) FinishSpectrum(ctx context.Context, owner string, rank int, r *spectral.Result, seconds float64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: spectrum of %s: %w", owner, err)
	}
	return db.endSpectrum(ctx, owner, rank, StatusDone, "", string(data), seconds)
}

// StoreSpectrum records spectra its caller computed itself (the CLI's
// `analyze --spectral --data`) as the done job of analysis id at their rank,
// unless a server is computing that job right now (then ErrConflict).
func (db *DB) StoreSpectrum(ctx context.Context, id string, r *spectral.Result, seconds float64) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: spectrum of %s: %w", id, err)
	}
	var n int64
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		owner, err := db.resultOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		now := db.now()
		res, err := tx.ExecContext(ctx, `INSERT INTO spectra (result_id, rank, status, created_at, started_at, finished_at, seconds, result)
			VALUES (?, ?, 'done', ?, ?, ?, ?, ?)
			ON CONFLICT (result_id, rank) DO UPDATE SET status = 'done', error = '', finished_at = excluded.finished_at,
				seconds = excluded.seconds, result = excluded.result, bytes_done = spectra.bytes_total, current_tensor = ''
			WHERE spectra.status <> 'running'`, owner, r.Rank, now, now, now, seconds, string(data))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return err
		}
		return fmt.Errorf("store: spectrum of %s: %w", id, err)
	}
	if n == 0 {
		return errorf(ECONFLICT, "the spectrum of %s at rank %d is being computed by a server", id, r.Rank)
	}
	return nil
}

// FailSpectrum marks a running spectral job failed with msg.
func (db *DB) FailSpectrum(ctx context.Context, owner string, rank int, msg string) error {
	return db.endSpectrum(ctx, owner, rank, StatusFailed, msg, nil, nil)
}

// CancelSpectrum cancels a queued or running spectral job of analysis id and
// reports the result owner and whether the job was running.
func (db *DB) CancelSpectrum(ctx context.Context, id string, rank int) (owner string, wasRunning bool, err error) {
	if owner, err = db.resultOwner(ctx, db.reader, id); err != nil {
		return "", false, err
	}
	s, err := db.spectrumOf(ctx, db.reader, owner, rank, false)
	if err != nil {
		return "", false, err
	}
	if err := db.endSpectrum(ctx, owner, rank, StatusCancelled, "", nil, nil); err != nil {
		return "", false, err
	}
	return owner, s.Status == StatusRunning, nil
}

func (db *DB) endSpectrum(ctx context.Context, owner string, rank int, to Status, msg string, result, seconds any) error {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE spectra SET status = ?, error = ?, finished_at = ?, current_tensor = '',
			result = ?, seconds = ?, bytes_done = CASE WHEN ? = 'done' THEN bytes_total ELSE bytes_done END
			WHERE result_id = ? AND rank = ? AND status IN ('queued', 'running')`,
			to, msg, db.now(), result, seconds, to, owner, rank)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: spectrum of %s: %w", owner, err)
	}
	if n == 0 {
		return errorf(ECONFLICT, "spectrum of %s at rank %d is not queued or running", owner, rank)
	}
	return nil
}

// RecoverSpectra puts spectral jobs left running by a server that stopped
// back in the queue; call it at startup, before any worker runs.
func (db *DB) RecoverSpectra(ctx context.Context) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE spectra SET status = 'queued', bytes_done = 0, current_tensor = '', started_at = NULL
			WHERE status = 'running'`)
		return err
	})
}
