package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// TokenPrefix starts every personal API token, so secret scanners and people
// can recognise one in a log or a commit.
const TokenPrefix = "dst_"

// touchEvery throttles last_used_at updates: one write per token per minute is
// plenty to tell live tokens from stale ones, and keeps reads off the writer.
const touchEvery = time.Minute

// APIToken describes a personal API token; the secret itself is shown once at
// creation and never stored.
type APIToken struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// ExpiresAt is when the token stops working (nil: never).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// CreateAPIToken makes a new token for the user called userName, labelled
// label, and returns its secret (to show once) with its description.
func (db *DB) CreateAPIToken(ctx context.Context, userName, label string) (string, *APIToken, error) {
	return db.CreateAPITokenTTL(ctx, userName, label, 0) // 0: it never expires
}

// TokenUser returns the owner of a live token (not revoked, not expired), with
// the owner's current role, or ErrNotFound.
func (db *DB) TokenUser(ctx context.Context, secret string) (*User, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > maxSecretLen {
		return nil, errorf(ENOTFOUND, "no such token")
	}
	var tokenID int64
	var lastUsed sql.NullInt64
	var u User
	var role string
	var created int64
	now := db.now()
	err := db.reader.QueryRowContext(ctx, `SELECT t.id, t.last_used_at, u.id, u.name, u.role, u.password_hash <> '', u.created_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)`,
		hashSecret(secret), now).Scan(&tokenID, &lastUsed, &u.ID, &u.Name, &role, &u.HasPassword, &created)
	if err == sql.ErrNoRows {
		return nil, errorf(ENOTFOUND, "no such token")
	}
	if err != nil {
		return nil, fmt.Errorf("store: token: %w", err)
	}
	u.Role = Role(role)
	u.CreatedAt = time.UnixMilli(created)
	if !lastUsed.Valid || now-lastUsed.Int64 >= touchEvery.Milliseconds() {
		// Best effort: a failed bookkeeping write must not fail the request.
		db.writer.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, now, tokenID)
	}
	return &u, nil
}

// ListAPITokens lists a user's tokens, newest first.
func (db *DB) ListAPITokens(ctx context.Context, userName string) ([]APIToken, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT t.id, t.name, t.created_at, t.last_used_at, t.revoked_at, t.expires_at
		FROM api_tokens t WHERE t.user_id = `+userIDByName+` ORDER BY t.id DESC`, userName, userName)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		var t APIToken
		var created int64
		var used, revoked, expires sql.NullInt64
		if err := rows.Scan(&t.ID, &t.Name, &created, &used, &revoked, &expires); err != nil {
			return nil, fmt.Errorf("store: list tokens: %w", err)
		}
		t.CreatedAt = time.UnixMilli(created)
		t.LastUsedAt = optionalTime(used)
		t.RevokedAt = optionalTime(revoked)
		t.ExpiresAt = optionalTime(expires)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken revokes one of a user's tokens.
func (db *DB) RevokeAPIToken(ctx context.Context, userName string, id int64) error {
	return wrapStore("revoke token", db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ?
			WHERE id = ? AND revoked_at IS NULL AND user_id = `+userIDByName, db.now(), id, userName, userName)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ENOTFOUND, "user %q has no live token %d", userName, id)
		}
		return nil
	}))
}

func optionalTime(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMilli(v.Int64)
	return &t
}
