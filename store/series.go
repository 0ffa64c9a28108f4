package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Series is one training run: a base and the checkpoints of one fine-tune,
// each step an analysis of the base against that checkpoint, and a drift
// analysis of the previous checkpoint against it (the first step's drift is
// its own analysis: the previous weights are the base's).
type Series struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Base      []string     `json:"base"`
	Map       []string     `json:"map"`
	CreatedAt time.Time    `json:"created_at"`
	Steps     []SeriesStep `json:"steps"`
}

// SeriesStep is one checkpoint of a Series.
type SeriesStep struct {
	Step       int64    `json:"step"`
	VLA        []string `json:"vla"`
	AnalysisID string   `json:"analysis_id"`
	DriftID    string   `json:"drift_id"`
}

// MaxSeriesSteps bounds the checkpoints of one series: each is one or two
// analyses queued at once.
const MaxSeriesSteps = 256

// CreateSeries records a series whose analyses exist already (queued, running
// or done). Steps must be distinct; they are stored in increasing order.
func (db *DB) CreateSeries(ctx context.Context, name string, base, maps []string, steps []SeriesStep) (*Series, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return nil, errorf(EINVALID, "a series needs a name")
	case len(name) > 200:
		return nil, errorf(EINVALID, "a series name is at most 200 bytes")
	case len(base) == 0:
		return nil, errorf(EINVALID, "a series needs at least one base source")
	case len(steps) == 0:
		return nil, errorf(EINVALID, "a series needs at least one checkpoint")
	case len(steps) > MaxSeriesSteps:
		return nil, errorf(EINVALID, "%d checkpoints: a series holds at most %d", len(steps), MaxSeriesSteps)
	}
	if maps == nil {
		maps = []string{}
	}
	baseJSON, _ := json.Marshal(base) // []string always marshals
	mapJSON, _ := json.Marshal(maps)
	id := newID()
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO series (id, name, base, map, created_at) VALUES (?, ?, ?, ?, ?)`,
			id, name, string(baseJSON), string(mapJSON), db.now()); err != nil {
			return err
		}
		for i, st := range steps {
			vlaJSON, _ := json.Marshal(st.VLA)
			var drift any
			if st.DriftID != "" {
				drift = st.DriftID
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO series_steps (series_id, position, step, vla, analysis_id, drift_id)
				VALUES (?, ?, ?, ?, ?, ?)`, id, i, st.Step, string(vlaJSON), st.AnalysisID, drift); err != nil {
				if isUniqueViolation(err) {
					return errorf(EINVALID, "step %d appears twice", st.Step)
				}
				if isForeignKeyViolation(err) {
					return errorf(EINVALID, "step %d names an analysis that does not exist", st.Step)
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("store: create series: %w", err)
	}
	return db.GetSeries(ctx, id)
}

// GetSeries returns one series with its steps in step order.
func (db *DB) GetSeries(ctx context.Context, id string) (*Series, error) {
	var s Series
	var base, maps string
	var created int64
	err := db.reader.QueryRowContext(ctx, `SELECT id, name, base, map, created_at FROM series WHERE id = ?`, id).
		Scan(&s.ID, &s.Name, &base, &maps, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(ENOTFOUND, "series %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: series %s: %w", id, err)
	}
	s.CreatedAt = time.UnixMilli(created).UTC()
	if err := json.Unmarshal([]byte(base), &s.Base); err != nil {
		return nil, fmt.Errorf("store: series %s: base: %w", id, err)
	}
	if err := json.Unmarshal([]byte(maps), &s.Map); err != nil {
		return nil, fmt.Errorf("store: series %s: map: %w", id, err)
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT step, vla, analysis_id, COALESCE(drift_id, '') FROM series_steps
		WHERE series_id = ? ORDER BY step`, id)
	if err != nil {
		return nil, fmt.Errorf("store: series %s: %w", id, err)
	}
	defer rows.Close()
	s.Steps = []SeriesStep{}
	for rows.Next() {
		var st SeriesStep
		var vla string
		if err := rows.Scan(&st.Step, &vla, &st.AnalysisID, &st.DriftID); err != nil {
			return nil, fmt.Errorf("store: series %s: %w", id, err)
		}
		if err := json.Unmarshal([]byte(vla), &st.VLA); err != nil {
			return nil, fmt.Errorf("store: series %s: step %d: %w", id, st.Step, err)
		}
		s.Steps = append(s.Steps, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: series %s: %w", id, err)
	}
	return &s, nil
}

// SeriesSummary is a series in a list.
type SeriesSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Steps     int       `json:"steps"`
	CreatedAt time.Time `json:"created_at"`
}

// ListSeries returns the newest series first, at most limit (1..1000).
func (db *DB) ListSeries(ctx context.Context, limit int) ([]SeriesSummary, error) {
	limit = min(max(limit, 1), 1000)
	rows, err := db.reader.QueryContext(ctx, `SELECT s.id, s.name, s.created_at, (SELECT COUNT(*) FROM series_steps t WHERE t.series_id = s.id)
		FROM series s ORDER BY s.created_at DESC, s.rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list series: %w", err)
	}
	defer rows.Close()
	out := []SeriesSummary{}
	for rows.Next() {
		var s SeriesSummary
		var created int64
		if err := rows.Scan(&s.ID, &s.Name, &created, &s.Steps); err != nil {
			return nil, fmt.Errorf("store: list series: %w", err)
		}
		s.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}
