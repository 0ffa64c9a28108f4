package store

import (
	"context"
	"database/sql"
	"time"
)

// DefaultTokenTTL is how long a new API token lives unless its creator says
// otherwise: a token forgotten in a CI secret stops working by itself.
const DefaultTokenTTL = 90 * 24 * time.Hour

// CreateAPITokenTTL makes a token for userName that expires after ttl (never
// when ttl is 0), and returns its secret (to show once) with its description.
func (db *DB) CreateAPITokenTTL(ctx context.Context, userName, label string, ttl time.Duration) (string, *APIToken, error) {
	if len(label) > 200 {
		return "", nil, errorf(EINVALID, "token label longer than 200 characters")
	}
	if ttl < 0 {
		return "", nil, errorf(EINVALID, "a token's lifetime must not be negative")
	}
	secret := TokenPrefix + newSecret()
	t := &APIToken{Name: label}
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var userID int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE id = `+userIDByName, userName, userName).Scan(&userID)
		if err == sql.ErrNoRows {
			return errorf(ENOTFOUND, "user %q not found", userName)
		}
		if err != nil {
			return err
		}
		now := db.now()
		t.CreatedAt = time.UnixMilli(now)
		var expires sql.NullInt64
		if ttl > 0 {
			expires = sql.NullInt64{Int64: now + ttl.Milliseconds(), Valid: true}
			t.ExpiresAt = optionalTime(expires)
		}
		return tx.QueryRowContext(ctx, `INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			userID, label, hashSecret(secret), now, expires).Scan(&t.ID)
	})
	if err != nil {
		return "", nil, wrapStore("create token", err)
	}
	return secret, t, nil
}

// RevokeAllAPITokens revokes every live token of userName and says how many.
func (db *DB) RevokeAllAPITokens(ctx context.Context, userName string) (int64, error) {
	var n int64
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM users WHERE id = `+userIDByName, userName, userName).Scan(&id); err == sql.ErrNoRows {
			return errorf(ENOTFOUND, "user %q not found", userName)
		} else if err != nil {
			return err
		}
		var err error
		n, err = revokeTokensTx(ctx, tx, id, db.now())
		return err
	})
	return n, wrapStore("revoke tokens", err)
}

// revokeTokensTx revokes a user's live tokens (all of them: a password change
// ends every credential the old password could have minted).
func revokeTokensTx(ctx context.Context, tx *sql.Tx, userID, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`, now, userID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
