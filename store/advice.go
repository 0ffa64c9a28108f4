package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// adviceSchema is the schema version that added analyses.advice.
const adviceSchema = 5

// Advice is what an analysis tells its reader to act on: --map rules that
// would pair the tensors it left unmatched, and the components whose attention
// geometry is a guess. Unmatched is set on an analysis that failed because
// nothing aligned: what likely left each component unmatched (a done
// analysis's is computed from its stored lists, analysis.ExplainUnmatched).
type Advice struct {
	Suggestions     []arch.Suggestion     `json:"suggestions"`
	GeometryGuessed []string              `json:"geometry_guessed"`
	Unmatched       []arch.UnmatchedGroup `json:"unmatched,omitempty"`
}

// AdviceOf is the advice in a result.
func AdviceOf(res *analysis.Result) Advice {
	return normalizeAdvice(Advice{Suggestions: res.Suggestions, GeometryGuessed: res.GeometryGuessed})
}

func normalizeAdvice(a Advice) Advice {
	if a.Suggestions == nil {
		a.Suggestions = []arch.Suggestion{}
	}
	if a.GeometryGuessed == nil {
		a.GeometryGuessed = []string{}
	}
	return a
}

// CacheKeyFor is CacheKey with the request's options: an exact subtraction
// and attention-geometry overrides change the result, so they change the key.
// A request with neither has the key CacheKey gives, so results stored before
// the options existed keep being found.
func CacheKeyFor(baseFingerprint, vlaFingerprint string, req AnalysisRequest, engineVersion string) string {
	if !req.Exact && len(req.Geometry) == 0 {
		return CacheKey(baseFingerprint, vlaFingerprint, req.Map, engineVersion)
	}
	mapRules := req.Map
	if mapRules == nil {
		mapRules = []string{}
	}
	// Components in sorted order, so the key does not depend on map order.
	geo := [][]any{}
	for _, c := range slices.Sorted(maps.Keys(req.Geometry)) {
		g := req.Geometry[c]
		geo = append(geo, []any{c, g.Heads, g.KVHeads, g.HeadDim})
	}
	b, _ := json.Marshal([]any{"deltascope-cache/2", baseFingerprint, vlaFingerprint, mapRules, engineVersion, req.Exact, geo})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// FindCachedRequest is FindCached for a whole request: the same files, rules
// and options.
func (db *DB) FindCachedRequest(ctx context.Context, base, vla []FileIdentity, req AnalysisRequest) (*Analysis, error) {
	return db.findCached(ctx, base, vla, func(bfp, vfp string) string {
		return CacheKeyFor(bfp, vfp, req, analysis.EngineVersion)
	})
}

// FailAdvised marks a queued or running analysis failed with msg and records
// advice that helps fix it (the rules that would align a pair that aligned
// nothing).
func (db *DB) FailAdvised(ctx context.Context, id, msg string, adv Advice) error {
	return db.writeTx(ctx, func(tx *sql.Tx) error {
		if err := db.endJob(ctx, tx, id, StatusFailed, msg); err != nil {
			return err
		}
		return db.setAdvice(ctx, tx, id, adv)
	})
}

func (db *DB) setAdvice(ctx context.Context, tx *sql.Tx, id string, adv Advice) error {
	if db.schema < adviceSchema {
		return nil
	}
	b, err := json.Marshal(normalizeAdvice(adv))
	if err != nil {
		return fmt.Errorf("advice: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE analyses SET advice = ? WHERE id = ?`, string(b), id)
	return err
}

// scanAdvice decodes the advice column (NULL: none recorded).
func scanAdvice(id string, v sql.NullString) (*Advice, error) {
	if !v.Valid {
		return nil, nil
	}
	var a Advice
	if err := json.Unmarshal([]byte(v.String), &a); err != nil {
		return nil, fmt.Errorf("analysis %s: advice: %w", id, err)
	}
	a = normalizeAdvice(a)
	return &a, nil
}
