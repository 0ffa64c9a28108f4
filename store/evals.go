package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on an evaluation result.
const (
	MaxBenchmarkName = 200
	MaxEvalNotes     = 10_000
	MaxEpisodes      = 1_000_000_000
	// MaxEvalBatch bounds one import: a CSV of every recipe × benchmark of a
	// lab is hundreds of rows, not millions.
	MaxEvalBatch = 10_000
)

// EvalResult is the success rate of a recipe's pruned model (or, with no
// recipe, of the unpruned VLA) on one benchmark.
type EvalResult struct {
	ID          int64     `json:"id"`
	AnalysisID  string    `json:"analysis_id"`
	RecipeID    *int64    `json:"recipe_id"` // nil: the unpruned model (baseline)
	RecipeName  string    `json:"recipe_name"`
	Benchmark   string    `json:"benchmark"`
	SuccessRate float64   `json:"success_rate"` // 0..1
	Episodes    int64     `json:"episodes"`
	Notes       string    `json:"notes"`
	CreatedBy   *int64    `json:"created_by,omitempty"`
	Author      string    `json:"author"`
	CreatedAt   time.Time `json:"created_at"`
}

// NewEval is one result to add.
type NewEval struct {
	RecipeID    *int64 // nil: the unpruned model
	Benchmark   string
	SuccessRate float64 // 0..1
	Episodes    int64
	Notes       string
}

// CheckEval validates (and trims) one result; the message names the field.
func CheckEval(e *NewEval) error {
	e.Benchmark, e.Notes = strings.TrimSpace(e.Benchmark), strings.TrimSpace(e.Notes)
	switch {
	case e.Benchmark == "":
		return errorf(EINVALID, "benchmark: empty")
	case !utf8.ValidString(e.Benchmark) || len(e.Benchmark) > MaxBenchmarkName:
		return errorf(EINVALID, "benchmark: at most %d bytes of UTF-8", MaxBenchmarkName)
	case math.IsNaN(e.SuccessRate) || e.SuccessRate < 0 || e.SuccessRate > 1:
		return errorf(EINVALID, "success_rate %v: must be between 0 and 1", e.SuccessRate)
	case e.Episodes < 0 || e.Episodes > MaxEpisodes:
		return errorf(EINVALID, "episodes %d: must be between 0 and %d", e.Episodes, MaxEpisodes)
	case !utf8.ValidString(e.Notes) || len(e.Notes) > MaxEvalNotes:
		return errorf(EINVALID, "notes: at most %d bytes of UTF-8", MaxEvalNotes)
	}
	return nil
}

// AddEvalResults saves results of an analysis's recipes (or its unpruned
// model) all together or not at all: an import with one bad row must leave
// nothing behind. A result's recipe must belong to the analysis.
func (db *DB) AddEvalResults(ctx context.Context, analysisID string, in []NewEval, createdBy *int64) ([]EvalResult, error) {
	if len(in) == 0 {
		return nil, errorf(EINVALID, "no evaluation results given")
	}
	if len(in) > MaxEvalBatch {
		return nil, errorf(EINVALID, "%d evaluation results: at most %d at once", len(in), MaxEvalBatch)
	}
	for i := range in {
		if err := CheckEval(&in[i]); err != nil {
			return nil, errorf(EINVALID, "result %d: %s", i+1, err)
		}
	}
	ids := make([]int64, 0, len(in))
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		now := db.now()
		for i, e := range in {
			if e.RecipeID != nil {
				var owner string
				err := tx.QueryRowContext(ctx, `SELECT analysis_id FROM recipes WHERE id = ?`, *e.RecipeID).Scan(&owner)
				if err == sql.ErrNoRows || err == nil && owner != analysisID {
					return errorf(ENOTFOUND, "result %d: analysis %s has no recipe %d", i+1, analysisID, *e.RecipeID)
				}
				if err != nil {
					return err
				}
			}
			var id int64
			err := tx.QueryRowContext(ctx, `INSERT INTO eval_results (analysis_id, recipe_id, benchmark, success_rate, episodes, notes, created_by, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
				analysisID, e.RecipeID, e.Benchmark, e.SuccessRate, e.Episodes, e.Notes, createdBy, now).Scan(&id)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, wrapRecipe("add evaluation results", err)
	}
	out := make([]EvalResult, 0, len(ids))
	for _, id := range ids {
		rows, err := db.writer.QueryContext(ctx, selectEval+` WHERE e.id = ?`, id)
		if err != nil {
			return nil, fmt.Errorf("store: evaluation result %d: %w", id, err)
		}
		got, err := scanEvals(rows)
		if err != nil {
			return nil, fmt.Errorf("store: evaluation result %d: %w", id, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// EvalFilter picks results: all of an analysis, or one recipe's.
type EvalFilter struct {
	RecipeID *int64
}

// ListEvalResults returns an analysis's results: the unpruned model first,
// then by recipe name, benchmark and time.
func (db *DB) ListEvalResults(ctx context.Context, analysisID string, f EvalFilter) ([]EvalResult, error) {
	var out []EvalResult
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		if _, err := db.status(ctx, tx, analysisID); err != nil {
			return err
		}
		q, args := selectEval+` WHERE e.analysis_id = ?`, []any{analysisID}
		if f.RecipeID != nil {
			q, args = q+` AND e.recipe_id = ?`, append(args, *f.RecipeID)
		}
		rows, err := tx.QueryContext(ctx, q+` ORDER BY e.recipe_id IS NOT NULL, r.name, e.recipe_id, e.benchmark, e.created_at, e.id`, args...)
		if err != nil {
			return err
		}
		out, err = scanEvals(rows)
		return err
	})
	if err != nil {
		return nil, wrapRecipe("list evaluation results", err)
	}
	if out == nil {
		out = []EvalResult{}
	}
	return out, nil
}

const selectEval = `SELECT e.id, e.analysis_id, e.recipe_id, COALESCE(r.name, ''), e.benchmark, e.success_rate, e.episodes, e.notes,
	e.created_by, COALESCE(u.name, ''), e.created_at
	FROM eval_results e LEFT JOIN recipes r ON r.id = e.recipe_id LEFT JOIN users u ON u.id = e.created_by`

func scanEvals(rows *sql.Rows) ([]EvalResult, error) {
	defer rows.Close()
	var out []EvalResult
	for rows.Next() {
		var e EvalResult
		var recipe, user sql.NullInt64
		var created int64
		if err := rows.Scan(&e.ID, &e.AnalysisID, &recipe, &e.RecipeName, &e.Benchmark, &e.SuccessRate, &e.Episodes, &e.Notes,
			&user, &e.Author, &created); err != nil {
			return nil, err
		}
		if recipe.Valid {
			e.RecipeID = &recipe.Int64
		}
		if user.Valid {
			e.CreatedBy = &user.Int64
		}
		e.CreatedAt = time.UnixMilli(created)
		out = append(out, e)
	}
	return out, rows.Err()
}
