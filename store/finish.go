package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/deltascope/deltascope/analysis"
)

// Finish stores the result of a running analysis and marks it done, all in one
// transaction: readers see the whole result or nothing of it, and a crash
// leaves the analysis running (for RecoverInterrupted) with no rows.
//
// Both checkpoints are recorded by fingerprint, with the locations they were
// read from. When another analysis already holds a result with the same cache
// key (the same content under other paths, or a request that raced this one),
// no rows are written: this analysis names that one in ResultOf and every read
// goes through it. An analysis that is no longer running (cancelled meanwhile)
// gives ErrConflict and stores nothing.
func (db *DB) Finish(ctx context.Context, id string, base, vla CheckpointRecord, res *analysis.Result) error {
	if res == nil {
		return errorf(EINVALID, "analysis %s: no result to store", id)
	}
	engine := res.EngineVersion
	if engine == "" {
		engine = analysis.EngineVersion
	}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		st, err := db.status(ctx, tx, id)
		if err != nil {
			return err
		}
		if st != StatusRunning {
			return errorf(ECONFLICT, "analysis %s is %s, not running: result discarded", id, st)
		}
		var reqJSON string
		if err := tx.QueryRowContext(ctx, `SELECT request FROM analyses WHERE id = ?`, id).Scan(&reqJSON); err != nil {
			return err
		}
		var req AnalysisRequest
		if err := json.Unmarshal([]byte(reqJSON), &req); err != nil {
			return fmt.Errorf("request: %w", err)
		}
		now := db.now()
		baseID, err := upsertCheckpoint(ctx, tx, base, now)
		if err != nil {
			return err
		}
		vlaID, err := upsertCheckpoint(ctx, tx, vla, now)
		if err != nil {
			return err
		}
		key := CacheKeyFor(base.Fingerprint, vla.Fingerprint, req, engine)

		var owner any // NULL: this analysis owns its rows
		var ownerID string
		err = tx.QueryRowContext(ctx, `SELECT id FROM analyses WHERE cache_key = ? AND result_of IS NULL AND status = 'done'`,
			key).Scan(&ownerID)
		switch {
		case err == nil:
			owner = ownerID
		case errors.Is(err, sql.ErrNoRows):
			if err := writeResult(ctx, tx, id, res); err != nil {
				return err
			}
		default:
			return err
		}

		geometry, err := json.Marshal(res.Geometry)
		if err != nil {
			return fmt.Errorf("geometry: %w", err)
		}
		warnings, err := json.Marshal(res.Warnings)
		if err != nil {
			return fmt.Errorf("warnings: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE analyses SET status = 'done', engine_version = ?, cache_key = ?, result_of = ?,
			base_checkpoint_id = ?, vla_checkpoint_id = ?, finished_at = ?, current_tensor = '', error = '',
			bytes_done = bytes_total,
			params_compared = ?, base_params = ?, vla_params = ?, global_rel_delta = ?, geometry = ?, warnings = ?
			WHERE id = ?`,
			engine, key, owner, baseID, vlaID, now,
			res.Compared, res.BaseParams, res.VLAParams, numArg(res.GlobalRelDelta), string(geometry), string(warnings), id)
		if err == nil {
			err = db.setAdvice(ctx, tx, id, AdviceOf(res))
		}
		if err == nil && testHookBeforeCommit != nil {
			testHookBeforeCommit()
		}
		return err
	})
	if err != nil {
		if ErrorCode(err) != "" {
			return err
		}
		return fmt.Errorf("store: finish %s: %w", id, err)
	}
	return nil
}

// testHookBeforeCommit, when set by a test, runs inside Finish's transaction
// once everything is written: the crash test kills the process there.
var testHookBeforeCommit func()

// writeResult inserts every row of res under analysis id.
func writeResult(ctx context.Context, tx *sql.Tx, id string, res *analysis.Result) error {
	tensorStmt, err := tx.PrepareContext(ctx, `INSERT INTO tensor_stats (analysis_id, position, base, vla, component, layer,
		kind, of, rule, dtype_base, dtype_vla, shape_base, shape_vla, fro_base, fro_vla, fro_delta, rel_delta, cosine,
		max_abs_delta, mean_abs_delta, changed_fraction, numel_compared, overlap, nonfinite_base, nonfinite_vla, numeric)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`)
	if err != nil {
		return err
	}
	defer tensorStmt.Close()
	arrayStmt, err := tx.PrepareContext(ctx, `INSERT INTO tensor_arrays (tensor_id, row_delta, col_delta, row_base, col_base)
		VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer arrayStmt.Close()

	for pos := range res.Tensors {
		t := &res.Tensors[pos]
		shapeBase, err := json.Marshal(t.ShapeBase)
		if err != nil {
			return err
		}
		shapeVLA, err := json.Marshal(t.ShapeVLA)
		if err != nil {
			return err
		}
		var tid int64
		err = tensorStmt.QueryRowContext(ctx, id, pos, t.Base, t.VLA, t.Component, t.Layer,
			t.Kind, t.Of, t.Rule, t.DTypeBase, t.DTypeVLA, string(shapeBase), string(shapeVLA),
			numArg(t.FroBase), numArg(t.FroVLA), numArg(t.FroDelta), numArg(t.RelDelta), numArg(t.Cosine),
			numArg(t.MaxAbsDelta), numArg(t.MeanAbsDelta), numArg(t.ChangedFraction),
			t.Compared, t.Overlap, t.NonFiniteBase, t.NonFiniteVLA, t.Numeric).Scan(&tid)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.VLA, err)
		}
		if t.RowDelta == nil && t.ColDelta == nil && t.RowBase == nil && t.ColBase == nil {
			continue
		}
		_, err = arrayStmt.ExecContext(ctx, tid, blobArg(t.RowDelta), blobArg(t.ColDelta), blobArg(t.RowBase), blobArg(t.ColBase))
		if err != nil {
			return fmt.Errorf("tensor %s: arrays: %w", t.VLA, err)
		}
	}

	for pos, u := range res.Units {
		_, err := tx.ExecContext(ctx, `INSERT INTO unit_scores (analysis_id, position, component, kind, layer, metric, variant, scores)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, pos, u.Component, u.Kind, u.Layer, string(u.Metric), string(u.Variant),
			encodeF32(nonNil(u.Scores)))
		if err != nil {
			return fmt.Errorf("units %s %s layer %d: %w", u.Component, u.Kind, u.Layer, err)
		}
	}
	return writeIssues(ctx, tx, id, res)
}

func writeIssues(ctx context.Context, tx *sql.Tx, id string, res *analysis.Result) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO alignment_issues (analysis_id, category, position, name, other, side,
		shape_base, shape_vla, compared, reason, candidates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for pos, name := range res.BaseOnly {
		if _, err := stmt.ExecContext(ctx, id, "base_only", pos, name, "", "", nil, nil, false, "", nil); err != nil {
			return err
		}
	}
	for pos, name := range res.VLAOnly {
		if _, err := stmt.ExecContext(ctx, id, "vla_only", pos, name, "", "", nil, nil, false, "", nil); err != nil {
			return err
		}
	}
	for pos, m := range res.Mismatched {
		sb, err := json.Marshal(m.ShapeBase)
		if err != nil {
			return err
		}
		sv, err := json.Marshal(m.ShapeVLA)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, id, "mismatched", pos, m.Base, m.VLA, "", string(sb), string(sv), m.Compared, m.Reason, nil); err != nil {
			return err
		}
	}
	for pos, a := range res.Ambiguous {
		c, err := json.Marshal(a.Candidates)
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, id, "ambiguous", pos, a.Name, "", a.Side, nil, nil, false, "", string(c)); err != nil {
			return err
		}
	}
	return nil
}

// numArg is the SQL value of n: NULL for NaN and ±Inf, which SQL aggregates and
// ORDER BY would otherwise trip over (and JSON renders as null anyway).
func numArg(n analysis.Num) any {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

// numOf reads back a numArg: NULL is NaN.
func numOf(v sql.NullFloat64) analysis.Num {
	if !v.Valid {
		return analysis.Num(math.NaN())
	}
	return analysis.Num(v.Float64)
}

// blobArg is the SQL value of an array: NULL when absent.
func blobArg(v []float32) any {
	if v == nil {
		return nil
	}
	return encodeF32(v)
}

func nonNil(v []float32) []float32 {
	if v == nil {
		return []float32{}
	}
	return v
}
