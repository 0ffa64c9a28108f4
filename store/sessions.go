package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// Login sessions. The browser holds a random secret; the database holds only
// its SHA-256, so a leaked database file (or backup) holds no usable session.
// A fast hash is enough here: the secret has 256 random bits, nothing to guess.

// newSecret returns 32 random bytes, URL-safe encoded (43 characters).
func newSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// hashSecret is the hex SHA-256 that the database keeps of a session or token
// secret. Looking a secret up by its hash also makes the lookup's timing
// independent of how much of a guess was right.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// maxSecretLen bounds what is hashed from a request header or cookie.
const maxSecretLen = 256

// CreateSession starts a login session for a user lasting ttl and returns its
// secret (for the cookie) and its expiry. Expired sessions are swept at the
// same time, so the table stays as small as the set of live logins.
func (db *DB) CreateSession(ctx context.Context, userID int64, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, errorf(EINVALID, "session lifetime must be positive")
	}
	secret := newSecret()
	now := db.now()
	expires := now + ttl.Milliseconds()
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			userID, hashSecret(secret), now, now, expires)
		return err
	})
	if err != nil {
		return "", time.Time{}, wrapStore("create session", err)
	}
	return secret, time.UnixMilli(expires), nil
}

// SessionUser returns the user of a live session, with the user's current role
// (a role changed by an admin applies at once), or ErrNotFound for an unknown
// or expired session.
func (db *DB) SessionUser(ctx context.Context, secret string) (*User, error) {
	if secret == "" || len(secret) > maxSecretLen {
		return nil, errorf(ENOTFOUND, "no such session")
	}
	u, err := scanUser(db.reader.QueryRowContext(ctx, `SELECT u.id, u.name, u.role, u.password_hash <> '', u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?`,
		hashSecret(secret), db.now()))
	if err == sql.ErrNoRows {
		return nil, errorf(ENOTFOUND, "no such session")
	}
	if err != nil {
		return nil, fmt.Errorf("store: session: %w", err)
	}
	return u, nil
}

// DeleteSession ends a session (logout). Ending an unknown session is not an
// error: the outcome is the same.
func (db *DB) DeleteSession(ctx context.Context, secret string) error {
	if secret == "" || len(secret) > maxSecretLen {
		return nil
	}
	return wrapStore("delete session", db.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hashSecret(secret))
		return err
	}))
}
