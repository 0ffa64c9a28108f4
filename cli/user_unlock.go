package cli

import (
	"context"

	"github.com/deltascope/deltascope/store"
)

// runUserUnlock lifts the login rate limits on an account, for a user locked
// out by their own (or someone's) failed attempts; the running server sees
// it at the next attempt (the limits key on the database's unlock count).
func runUserUnlock(ctx context.Context, env Env, args []string) error {
	return runUserAction(ctx, env, args, "user unlock", func(db *store.DB, name string) (string, error) {
		return "unlocked logins of " + name, db.UnlockLogins(ctx, name)
	})
}
