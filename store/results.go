package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deltascope/deltascope/analysis"
)

// TensorFilter narrows Tensors; zero fields match everything.
type TensorFilter struct {
	Component string
	Kind      string
	Layer     *int
	// WithArrays also loads the per-row and per-column norms.
	WithArrays bool
}

// UnitFilter narrows Units; zero fields match everything.
type UnitFilter struct {
	Component string
	Kind      string
}

// dataOwner resolves an analysis id to the analysis whose rows hold its result,
// inside a read transaction. Unknown ids give ErrNotFound, analyses that are not
// done ErrConflict.
func dataOwner(ctx context.Context, tx *sql.Tx, id string) (string, error) {
	var st Status
	var resultOf sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT status, result_of FROM analyses WHERE id = ?`, id).Scan(&st, &resultOf)
	if err == sql.ErrNoRows {
		return "", errorf(ENOTFOUND, "analysis %s not found", id)
	}
	if err != nil {
		return "", fmt.Errorf("store: analysis %s: %w", id, err)
	}
	if st != StatusDone {
		return "", errorf(ECONFLICT, "analysis %s is %s: no result yet", id, st)
	}
	if resultOf.Valid {
		return resultOf.String, nil
	}
	return id, nil
}

// tensorOrder is the order of Tensors and EachTensor.
const tensorOrder = "t.component, t.layer, t.kind, t.vla"

// where is the filter's SQL condition and arguments over the tensors of the
// analysis that owns the data.
func (f TensorFilter) where(owner string) (string, []any) {
	where, args := []string{"t.analysis_id = ?"}, []any{owner}
	if f.Component != "" {
		where, args = append(where, "t.component = ?"), append(args, f.Component)
	}
	if f.Kind != "" {
		where, args = append(where, "t.kind = ?"), append(args, f.Kind)
	}
	if f.Layer != nil {
		where, args = append(where, "t.layer = ?"), append(args, *f.Layer)
	}
	return strings.Join(where, " AND "), args
}

// Tensors returns the tensor statistics of a done analysis ordered by
// component, layer, kind and VLA name.
func (db *DB) Tensors(ctx context.Context, id string, f TensorFilter) ([]analysis.TensorStats, error) {
	var out []analysis.TensorStats
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		owner, err := dataOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		where, args := f.where(owner)
		out, err = queryTensors(ctx, tx, where, tensorOrder, f.WithArrays, args)
		return err
	})
	if err != nil {
		return nil, wrapRead(id, err)
	}
	return out, nil
}

func queryTensors(ctx context.Context, tx *sql.Tx, where, order string, withArrays bool, args []any) ([]analysis.TensorStats, error) {
	out := []analysis.TensorStats{}
	err := scanTensors(ctx, tx, where, order, withArrays, args, func(t *analysis.TensorStats) error {
		out = append(out, *t)
		return nil
	})
	return out, err
}

// EachTensor calls fn with each tensor of Tensors' answer in turn, holding
// one in memory at a time: a 7B analysis's rows and columns are 17 MB as JSON,
// and a handler streaming them must not hold them all (issue 14). fn must not
// keep t's arrays past its return.
func (db *DB) EachTensor(ctx context.Context, id string, f TensorFilter, fn func(t *analysis.TensorStats) error) error {
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		owner, err := dataOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		where, args := f.where(owner)
		return scanTensors(ctx, tx, where, tensorOrder, f.WithArrays, args, fn)
	})
	if err != nil {
		return wrapRead(id, err)
	}
	return nil
}

func scanTensors(ctx context.Context, tx *sql.Tx, where, order string, withArrays bool, args []any, fn func(*analysis.TensorStats) error) error {
	cols := `t.base, t.vla, t.component, t.layer, t.kind, t.of, t.rule, t.dtype_base, t.dtype_vla, t.shape_base, t.shape_vla,
		t.fro_base, t.fro_vla, t.fro_delta, t.rel_delta, t.cosine, t.max_abs_delta, t.mean_abs_delta, t.changed_fraction,
		t.numel_compared, t.overlap, t.nonfinite_base, t.nonfinite_vla, t.numeric`
	from := `tensor_stats t`
	if withArrays {
		cols += `, a.row_delta, a.col_delta, a.row_base, a.col_base`
		from += ` LEFT JOIN tensor_arrays a ON a.tensor_id = t.id`
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+cols+` FROM `+from+` WHERE `+where+` ORDER BY `+order, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var t analysis.TensorStats
		var shapeBase, shapeVLA string
		var nums [8]sql.NullFloat64
		// Decoded before the next Scan, so no copy. An empty blob reads as nil:
		// an empty array comes back absent (both are omitted from JSON).
		var blobs [4]sql.RawBytes
		dest := []any{&t.Base, &t.VLA, &t.Component, &t.Layer, &t.Kind, &t.Of, &t.Rule, &t.DTypeBase, &t.DTypeVLA,
			&shapeBase, &shapeVLA, &nums[0], &nums[1], &nums[2], &nums[3], &nums[4], &nums[5], &nums[6], &nums[7],
			&t.Compared, &t.Overlap, &t.NonFiniteBase, &t.NonFiniteVLA, &t.Numeric}
		if withArrays {
			dest = append(dest, &blobs[0], &blobs[1], &blobs[2], &blobs[3])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(shapeBase), &t.ShapeBase); err != nil {
			return fmt.Errorf("tensor %s: shape_base: %w", t.VLA, err)
		}
		if err := json.Unmarshal([]byte(shapeVLA), &t.ShapeVLA); err != nil {
			return fmt.Errorf("tensor %s: shape_vla: %w", t.VLA, err)
		}
		t.FroBase, t.FroVLA, t.FroDelta, t.RelDelta = numOf(nums[0]), numOf(nums[1]), numOf(nums[2]), numOf(nums[3])
		t.Cosine, t.MaxAbsDelta, t.MeanAbsDelta, t.ChangedFraction = numOf(nums[4]), numOf(nums[5]), numOf(nums[6]), numOf(nums[7])
		if withArrays {
			arrays := []*[]float32{&t.RowDelta, &t.ColDelta, &t.RowBase, &t.ColBase}
			for i, b := range blobs {
				if *arrays[i], err = decodeF32(b); err != nil {
					return fmt.Errorf("tensor %s: %w", t.VLA, err)
				}
			}
		}
		if err := fn(&t); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Units returns the unit scores of a done analysis, in the engine's order
// (component, layer, kind).
func (db *DB) Units(ctx context.Context, id string, f UnitFilter) ([]analysis.UnitScores, error) {
	var out []analysis.UnitScores
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		owner, err := dataOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		out, err = queryUnits(ctx, tx, owner, f)
		return err
	})
	if err != nil {
		return nil, wrapRead(id, err)
	}
	return out, nil
}

func queryUnits(ctx context.Context, tx *sql.Tx, owner string, f UnitFilter) ([]analysis.UnitScores, error) {
	where, args := []string{"analysis_id = ?"}, []any{owner}
	if f.Component != "" {
		where, args = append(where, "component = ?"), append(args, f.Component)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	rows, err := tx.QueryContext(ctx, `SELECT component, kind, layer, metric, variant, scores FROM unit_scores
		WHERE `+strings.Join(where, " AND ")+` ORDER BY position`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []analysis.UnitScores{}
	for rows.Next() {
		var u analysis.UnitScores
		var blob []byte
		if err := rows.Scan(&u.Component, &u.Kind, &u.Layer, &u.Metric, &u.Variant, &blob); err != nil {
			return nil, err
		}
		if u.Scores, err = decodeF32(blob); err != nil {
			return nil, fmt.Errorf("units %s %s layer %d: %w", u.Component, u.Kind, u.Layer, err)
		}
		if u.Scores == nil {
			u.Scores = []float32{}
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// Result rebuilds the whole Result of a done analysis, arrays included, from
// one snapshot. NaN and ±Inf statistics come back as NaN (both are JSON null).
func (db *DB) Result(ctx context.Context, id string) (*analysis.Result, error) {
	var res *analysis.Result
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		owner, err := dataOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		a, err := db.getFrom(ctx, tx, id)
		if err != nil {
			return err
		}
		s := a.Summary
		res = &analysis.Result{
			EngineVersion: a.EngineVersion,
			Geometry:      s.Geometry,
			Warnings:      s.Warnings,
			BaseParams:    s.BaseParams, VLAParams: s.VLAParams, Compared: s.ParamsCompared,
			GlobalRelDelta:  s.GlobalRelDelta,
			Exact:           a.Request.Exact,
			BaseFingerprint: a.BaseFingerprint, VLAFingerprint: a.VLAFingerprint,
			BaseOnly: []string{}, VLAOnly: []string{}, Mismatched: []analysis.Mismatch{}, Ambiguous: []analysis.Ambiguity{},
		}
		if res.Warnings == nil {
			res.Warnings = []string{}
		}
		adv := Advice{}
		if a.Advice != nil {
			adv = *a.Advice
		}
		adv = normalizeAdvice(adv)
		res.Suggestions, res.GeometryGuessed = adv.Suggestions, adv.GeometryGuessed
		if res.Tensors, err = queryTensors(ctx, tx, "t.analysis_id = ?", "t.position", true, []any{owner}); err != nil {
			return err
		}
		units, err := queryUnits(ctx, tx, owner, UnitFilter{})
		if err != nil {
			return err
		}
		if len(units) > 0 {
			res.Units = units
		}
		return readIssues(ctx, tx, owner, res)
	})
	if err != nil {
		return nil, wrapRead(id, err)
	}
	return res, nil
}

func readIssues(ctx context.Context, tx *sql.Tx, owner string, res *analysis.Result) error {
	rows, err := tx.QueryContext(ctx, `SELECT category, name, other, side, shape_base, shape_vla, compared, reason, candidates
		FROM alignment_issues WHERE analysis_id = ? ORDER BY category, position`, owner)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var category, name, other, side, reason string
		var shapeBase, shapeVLA, candidates sql.NullString
		var compared bool
		if err := rows.Scan(&category, &name, &other, &side, &shapeBase, &shapeVLA, &compared, &reason, &candidates); err != nil {
			return err
		}
		switch category {
		case "base_only":
			res.BaseOnly = append(res.BaseOnly, name)
		case "vla_only":
			res.VLAOnly = append(res.VLAOnly, name)
		case "mismatched":
			m := analysis.Mismatch{Base: name, VLA: other, Compared: compared, Reason: reason}
			if err := unmarshalNullable(shapeBase, &m.ShapeBase); err != nil {
				return fmt.Errorf("mismatch %s: %w", name, err)
			}
			if err := unmarshalNullable(shapeVLA, &m.ShapeVLA); err != nil {
				return fmt.Errorf("mismatch %s: %w", name, err)
			}
			res.Mismatched = append(res.Mismatched, m)
		case "ambiguous":
			a := analysis.Ambiguity{Name: name, Side: side}
			if err := unmarshalNullable(candidates, &a.Candidates); err != nil {
				return fmt.Errorf("ambiguity %s: %w", name, err)
			}
			res.Ambiguous = append(res.Ambiguous, a)
		}
	}
	return rows.Err()
}

// wrapRead keeps domain errors as they are and names the analysis in others.
func wrapRead(id string, err error) error {
	if ErrorCode(err) != "" {
		return err
	}
	return fmt.Errorf("store: analysis %s: %w", id, err)
}

// Alignment returns the alignment lists of a done analysis (base-only, VLA-only,
// mismatched, ambiguous) in an otherwise empty Result: cheap next to Result,
// which reads every array.
func (db *DB) Alignment(ctx context.Context, id string) (*analysis.Result, error) {
	res := &analysis.Result{BaseOnly: []string{}, VLAOnly: []string{}, Mismatched: []analysis.Mismatch{}, Ambiguous: []analysis.Ambiguity{}}
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		owner, err := dataOwner(ctx, tx, id)
		if err != nil {
			return err
		}
		return readIssues(ctx, tx, owner, res)
	})
	if err != nil {
		return nil, wrapRead(id, err)
	}
	return res, nil
}
