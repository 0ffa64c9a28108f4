package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/deltascope/deltascope/analysis"
)

// CacheKey identifies a result by what determines it: the content of both
// sides, the alignment rules (in order: the first matching rule wins) and the
// engine version. Sources' paths do not enter it.
func CacheKey(baseFingerprint, vlaFingerprint string, mapRules []string, engineVersion string) string {
	if mapRules == nil {
		mapRules = []string{}
	}
	// A JSON array is an unambiguous encoding of the parts.
	b, _ := json.Marshal([]any{"deltascope-cache/1", baseFingerprint, vlaFingerprint, mapRules, engineVersion})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// FindCached returns the done analysis for these exact files and rules, when
// both sides' files were read before (every quick identity equal) and a result
// of the current engine exists; ErrNotFound otherwise. It reads no file.
func (db *DB) FindCached(ctx context.Context, base, vla []FileIdentity, mapRules []string) (*Analysis, error) {
	return db.findCached(ctx, base, vla, func(bfp, vfp string) string {
		return CacheKey(bfp, vfp, mapRules, analysis.EngineVersion)
	})
}

// findCached finds the files' fingerprints and looks up the key made of them.
func (db *DB) findCached(ctx context.Context, base, vla []FileIdentity, keyOf func(bfp, vfp string) string) (*Analysis, error) {
	var key string
	err := db.readTx(ctx, func(tx *sql.Tx) error {
		bfp, err := fingerprintByFiles(ctx, tx, base)
		if err != nil {
			return err
		}
		vfp, err := fingerprintByFiles(ctx, tx, vla)
		if err != nil {
			return err
		}
		if bfp != "" && vfp != "" {
			key = keyOf(bfp, vfp)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: find cached: %w", err)
	}
	if key == "" {
		return nil, errorf(ENOTFOUND, "no cached analysis of these files")
	}
	return db.FindByKey(ctx, key)
}

// FindByKey returns the done analysis that owns the rows of the result with
// this cache key, or ErrNotFound.
func (db *DB) FindByKey(ctx context.Context, key string) (*Analysis, error) {
	var id string
	err := db.reader.QueryRowContext(ctx, `SELECT id FROM analyses
		WHERE cache_key = ? AND result_of IS NULL AND status = 'done'`, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errorf(ENOTFOUND, "no analysis with cache key %s", key)
	}
	if err != nil {
		return nil, fmt.Errorf("store: find by key: %w", err)
	}
	return db.Get(ctx, id)
}
