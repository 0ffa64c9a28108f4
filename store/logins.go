package store

import (
	"context"
	"database/sql"
	"fmt"
)

// LoginUnlocks is how many times an admin unlocked name's logins (0 for a
// name with no account): the login limiter keys its counts on it, so an
// unlock starts the account's counts afresh, in every server process.
func (db *DB) LoginUnlocks(ctx context.Context, name string) (int64, error) {
	var n int64
	err := db.reader.QueryRowContext(ctx, `SELECT login_unlocks FROM users WHERE id = `+userIDByName, name, name).Scan(&n)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: login unlocks: %w", err)
	}
	return n, nil
}

// UnlockLogins lifts the login rate limits on name's account.
func (db *DB) UnlockLogins(ctx context.Context, name string) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET login_unlocks = login_unlocks + 1 WHERE id = `+userIDByName, name, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errorf(ENOTFOUND, "user %q not found", name)
		}
		return nil
	})
	return wrapStore("unlock logins", err)
}
