package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// Status is where an analysis is in its life: queued → running → done | failed |
// cancelled (and running → queued again when a restarted server resumes it).
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusDone      Status = "done"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether s is final.
func (s Status) Terminal() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCancelled
}

// AnalysisRequest is what a user asked for: the sources of each side, as
// [PREFIX=]PATH specs, and extra alignment rules 'REGEX=>REPLACEMENT'.
type AnalysisRequest struct {
	Base []string `json:"base"`
	VLA  []string `json:"vla"`
	Map  []string `json:"map"`
	// Exact subtracts at full precision instead of at the VLA's precision.
	Exact bool `json:"exact,omitempty"`
	// Geometry sets the attention layout of components (heads, KV heads; a
	// zero head_dim is taken from the shapes).
	Geometry map[string]arch.Geometry `json:"geometry,omitempty"`
}

// Analysis is one requested comparison: a job while queued or running, then a
// result.
type Analysis struct {
	ID string `json:"id"`
	// Name is what pages call the analysis: the one given, else DefaultName
	// of the request (Named tells which).
	Name  string   `json:"name"`
	Named bool     `json:"named"`
	Tags  []string `json:"tags"`

	Request AnalysisRequest `json:"request"`
	Status  Status          `json:"status"`
	// EngineVersion is the engine the result was (or will be) computed with.
	EngineVersion string `json:"engine_version"`
	// CacheKey identifies the result by content: fingerprints, rules, engine.
	// Empty until done.
	CacheKey string `json:"cache_key,omitempty"`
	// ResultOf names the earlier analysis whose stored rows this one shares,
	// when both had the same inputs; empty when the rows are this analysis's own.
	ResultOf        string `json:"result_of,omitempty"`
	BaseFingerprint string `json:"base_fingerprint,omitempty"`
	VLAFingerprint  string `json:"vla_fingerprint,omitempty"`

	BytesDone     int64  `json:"bytes_done"`
	BytesTotal    int64  `json:"bytes_total"`
	CurrentTensor string `json:"current_tensor,omitempty"`
	Error         string `json:"error,omitempty"`
	Attempts      int    `json:"attempts"`

	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`

	// Summary is set once the analysis is done.
	Summary *Summary `json:"summary,omitempty"`
	// Advice is set when an analysis ends done, or failed because nothing
	// aligned (nil for analyses stored before it existed).
	Advice *Advice `json:"advice,omitempty"`
}

// Progress is the fraction of bytes read, 0..1; 1 once done.
func (a *Analysis) Progress() float64 {
	switch {
	case a.Status == StatusDone:
		return 1
	case a.BytesTotal <= 0:
		return 0
	}
	return min(1, max(0, float64(a.BytesDone)/float64(a.BytesTotal)))
}

// Summary holds the whole-analysis figures of a Result.
type Summary struct {
	ParamsCompared int64                    `json:"params_compared"`
	BaseParams     int64                    `json:"base_params"`
	VLAParams      int64                    `json:"vla_params"`
	GlobalRelDelta analysis.Num             `json:"global_rel_delta"`
	Geometry       map[string]arch.Geometry `json:"geometry"`
	Warnings       []string                 `json:"warnings"`
}

// newID returns a short random URL-safe id (72 random bits, 12 characters).
func newID() string {
	var b [9]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// CreateAnalysis queues a new analysis.
func (db *DB) CreateAnalysis(ctx context.Context, req AnalysisRequest) (*Analysis, error) {
	return db.create(ctx, req, Labels{}, StatusQueued)
}

// CreateLabeled queues a new analysis with a name and tags.
func (db *DB) CreateLabeled(ctx context.Context, req AnalysisRequest, l Labels) (*Analysis, error) {
	return db.create(ctx, req, l, StatusQueued)
}

// CreateRunning records an analysis its caller runs at once (the CLI's
// `analyze --data`): it starts running, so no server worker sharing the
// database can claim it.
func (db *DB) CreateRunning(ctx context.Context, req AnalysisRequest) (*Analysis, error) {
	return db.create(ctx, req, Labels{}, StatusRunning)
}

func (db *DB) create(ctx context.Context, req AnalysisRequest, l Labels, st Status) (*Analysis, error) {
	if len(req.Base) == 0 || len(req.VLA) == 0 {
		return nil, errorf(EINVALID, "an analysis needs at least one base and one VLA source")
	}
	l, err := normalizeLabels(l)
	if err != nil {
		return nil, err
	}
	tagsJSON, _ := json.Marshal(l.Tags) // a []string always marshals
	req = normalizeRequest(req)
	reqJSON, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	id := newID()
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		var started any // NULL while queued
		attempts := 0
		if st == StatusRunning {
			started, attempts = now, 1
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO analyses (id, request, engine_version, status, attempts, created_at, started_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, string(reqJSON), analysis.EngineVersion, st, attempts, now, started)
		if err != nil || (db.schema < labelsSchema && l.Name == "" && len(l.Tags) == 0) {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE analyses SET name = ?, tags = ? WHERE id = ?`, l.Name, string(tagsJSON), id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: create analysis: %w", err)
	}
	return db.getFrom(ctx, db.writer, id)
}

// normalizeRequest turns nil lists into empty ones so that the stored JSON (and
// the cache key) do not depend on how the caller spelled "none".
func normalizeRequest(r AnalysisRequest) AnalysisRequest {
	if r.Base == nil {
		r.Base = []string{}
	}
	if r.VLA == nil {
		r.VLA = []string{}
	}
	if r.Map == nil {
		r.Map = []string{}
	}
	return r
}

// ClaimNext moves the oldest queued analysis to running (one more attempt,
// started now) and returns it, or ErrNotFound when the queue is empty. One
// UPDATE on the single writer: two workers never claim the same analysis.
func (db *DB) ClaimNext(ctx context.Context) (*Analysis, error) {
	var id string
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE analyses
			SET status = 'running', attempts = attempts + 1, started_at = ?, bytes_done = 0, current_tensor = '', error = ''
			WHERE id = (SELECT id FROM analyses WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1)
			RETURNING id`, db.now()).Scan(&id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(ENOTFOUND, "no queued analysis")
	}
	if err != nil {
		return nil, fmt.Errorf("store: claim: %w", err)
	}
	return db.getFrom(ctx, db.writer, id)
}

// UpdateProgress records how far a running analysis has read. It is one UPDATE;
// only when it matches nothing does a second query tell ErrNotFound from
// ErrConflict (the analysis is no longer running: cancelled, say), which the
// worker can take as a signal to stop.
func (db *DB) UpdateProgress(ctx context.Context, id string, done, total int64, tensor string) error {
	res, err := db.writer.ExecContext(ctx, `UPDATE analyses SET bytes_done = ?, bytes_total = ?, current_tensor = ?
		WHERE id = ? AND status = 'running'`, done, total, tensor, id)
	if err != nil {
		return fmt.Errorf("store: progress of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	st, err := db.status(ctx, db.writer, id)
	if err != nil {
		return err
	}
	return errorf(ECONFLICT, "analysis %s is %s, not running", id, st)
}

// Fail marks a queued or running analysis failed with msg.
func (db *DB) Fail(ctx context.Context, id, msg string) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		return db.endJob(ctx, tx, id, StatusFailed, msg)
	})
}

// endJob moves a queued or running analysis to a terminal status.
func (db *DB) endJob(ctx context.Context, tx *sql.Tx, id string, to Status, msg string) error {
	st, err := db.status(ctx, tx, id)
	if err != nil {
		return err
	}
	if st.Terminal() {
		return errorf(ECONFLICT, "analysis %s is already %s", id, st)
	}
	_, err = tx.ExecContext(ctx, `UPDATE analyses SET status = ?, error = ?, finished_at = ?, current_tensor = '' WHERE id = ?`,
		to, msg, db.now(), id)
	if err != nil {
		return fmt.Errorf("store: %s %s: %w", to, id, err)
	}
	return nil
}

// Cancel moves a queued or running analysis to cancelled and reports whether it
// was running (its worker then has a job to stop). A finished analysis gives
// ErrConflict.
func (db *DB) Cancel(ctx context.Context, id string) (wasRunning bool, err error) {
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := db.status(ctx, tx, id)
		if err != nil {
			return err
		}
		wasRunning = st == StatusRunning
		return db.endJob(ctx, tx, id, StatusCancelled, "")
	})
	return wasRunning, err
}

// MaxAttempts bounds how often RecoverInterrupted requeues one analysis: a job
// that keeps killing the server (out of memory on a huge checkpoint, say) must
// not put it in a crash loop.
const MaxAttempts = 3

// RecoverInterrupted handles analyses left running by a server that died. With
// resume they go back to the queue (unless they already had MaxAttempts, then
// they fail); without, they fail with the error "interrupted". It returns how
// many it touched. Call it at startup, before any worker runs.
func (db *DB) RecoverInterrupted(ctx context.Context, resume bool) (n int, err error) {
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		now := db.now()
		var res sql.Result
		var total int64
		if resume {
			res, err = tx.ExecContext(ctx, `UPDATE analyses
				SET status = 'queued', bytes_done = 0, current_tensor = '', started_at = NULL
				WHERE status = 'running' AND attempts < ?`, MaxAttempts)
			if err != nil {
				return err
			}
			k, _ := res.RowsAffected()
			total += k
			res, err = tx.ExecContext(ctx, `UPDATE analyses
				SET status = 'failed', error = ?, finished_at = ?, current_tensor = ''
				WHERE status = 'running'`, fmt.Sprintf("interrupted %d times", MaxAttempts), now)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE analyses
				SET status = 'failed', error = 'interrupted', finished_at = ?, current_tensor = ''
				WHERE status = 'running'`, now)
		}
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		n = int(total + k)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: recover interrupted analyses: %w", err)
	}
	return n, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (db *DB) status(ctx context.Context, q queryer, id string) (Status, error) {
	var st Status
	err := q.QueryRowContext(ctx, `SELECT status FROM analyses WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errorf(ENOTFOUND, "analysis %s not found", id)
	}
	if err != nil {
		return "", fmt.Errorf("store: analysis %s: %w", id, err)
	}
	return st, nil
}

// Get returns one analysis.
func (db *DB) Get(ctx context.Context, id string) (*Analysis, error) {
	return db.getFrom(ctx, db.reader, id)
}

func (db *DB) getFrom(ctx context.Context, q queryer, id string) (*Analysis, error) {
	rows, err := q.QueryContext(ctx, db.selectAnalysis()+` WHERE a.id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("store: analysis %s: %w", id, err)
	}
	list, err := scanAnalyses(rows)
	if err != nil {
		return nil, fmt.Errorf("store: analysis %s: %w", id, err)
	}
	if len(list) == 0 {
		return nil, errorf(ENOTFOUND, "analysis %s not found", id)
	}
	return &list[0], nil
}

// List returns the most recent analyses, newest first (limit ≤ 0: 100).
func (db *DB) List(ctx context.Context, limit int) ([]Analysis, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.reader.QueryContext(ctx, db.selectAnalysis()+` ORDER BY a.created_at DESC, a.rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list analyses: %w", err)
	}
	list, err := scanAnalyses(rows)
	if err != nil {
		return nil, fmt.Errorf("store: list analyses: %w", err)
	}
	return list, nil
}

func (db *DB) selectAnalysis() string {
	if db.schema < adviceSchema {
		return strings.Replace(strings.Replace(selectAnalysisLabeled, "a.name, a.tags", "'', '[]'", 1), "a.advice", "NULL", 1)
	}
	if db.schema < labelsSchema {
		return strings.Replace(selectAnalysisLabeled, "a.name, a.tags", "'', '[]'", 1)
	}
	return selectAnalysisLabeled
}

const selectAnalysisLabeled = `SELECT a.id, a.request, a.status, a.engine_version, a.cache_key, a.result_of,
	b.fingerprint, v.fingerprint, a.bytes_done, a.bytes_total, a.current_tensor, a.error, a.attempts,
	a.created_at, a.started_at, a.finished_at,
	a.params_compared, a.base_params, a.vla_params, a.global_rel_delta, a.geometry, a.warnings,
	a.name, a.tags, a.advice
	FROM analyses a
	LEFT JOIN checkpoints b ON b.id = a.base_checkpoint_id
	LEFT JOIN checkpoints v ON v.id = a.vla_checkpoint_id`

func scanAnalyses(rows *sql.Rows) ([]Analysis, error) {
	defer rows.Close()
	var out []Analysis
	for rows.Next() {
		var a Analysis
		var req, tags string
		var cacheKey, resultOf, bfp, vfp, geometry, warnings, advice sql.NullString
		var started, finished, compared, baseParams, vlaParams sql.NullInt64
		var created int64
		var rel sql.NullFloat64
		err := rows.Scan(&a.ID, &req, &a.Status, &a.EngineVersion, &cacheKey, &resultOf,
			&bfp, &vfp, &a.BytesDone, &a.BytesTotal, &a.CurrentTensor, &a.Error, &a.Attempts,
			&created, &started, &finished,
			&compared, &baseParams, &vlaParams, &rel, &geometry, &warnings,
			&a.Name, &tags, &advice)
		if err != nil {
			return nil, err
		}
		if a.Advice, err = scanAdvice(a.ID, advice); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(req), &a.Request); err != nil {
			return nil, fmt.Errorf("analysis %s: request: %w", a.ID, err)
		}
		if err := json.Unmarshal([]byte(tags), &a.Tags); err != nil {
			return nil, fmt.Errorf("analysis %s: tags: %w", a.ID, err)
		}
		if a.Tags == nil {
			a.Tags = []string{}
		}
		a.Named = a.Name != ""
		if !a.Named {
			a.Name = DefaultName(a.Request)
		}
		a.CacheKey, a.ResultOf = cacheKey.String, resultOf.String
		a.BaseFingerprint, a.VLAFingerprint = bfp.String, vfp.String
		a.CreatedAt = time.UnixMilli(created)
		a.StartedAt, a.FinishedAt = timePtr(started), timePtr(finished)
		if a.Status == StatusDone {
			s := &Summary{ParamsCompared: compared.Int64, BaseParams: baseParams.Int64, VLAParams: vlaParams.Int64,
				GlobalRelDelta: numOf(rel)}
			if err := unmarshalNullable(geometry, &s.Geometry); err != nil {
				return nil, fmt.Errorf("analysis %s: geometry: %w", a.ID, err)
			}
			if err := unmarshalNullable(warnings, &s.Warnings); err != nil {
				return nil, fmt.Errorf("analysis %s: warnings: %w", a.ID, err)
			}
			a.Summary = s
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func timePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64)
	return &t
}

func unmarshalNullable(s sql.NullString, v any) error {
	if !s.Valid {
		return nil
	}
	return json.Unmarshal([]byte(s.String), v)
}

// CountByStatus counts analyses in each state (for the status page).
func (db *DB) CountByStatus(ctx context.Context) (map[Status]int, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT status, count(*) FROM analyses GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("store: count analyses: %w", err)
	}
	defer rows.Close()
	out := map[Status]int{}
	for rows.Next() {
		var st Status
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: count analyses: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}
