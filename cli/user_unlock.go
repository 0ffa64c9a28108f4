package cli

import (
	"context"
	"fmt"
)

// runUserUnlock lifts the login rate limits on an account, for a user locked
// out by their own (or someone's) failed attempts; the running server sees
// it at the next attempt (the limits key on the database's unlock count).
func runUserUnlock(ctx context.Context, env Env, args []string) error {
	f := newUserFlags("user unlock", 1)
	name, err := f.parse(args, true)
	if err != nil {
		return err
	}
	db, err := f.open(ctx, env)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.UnlockLogins(ctx, name); err != nil {
		return fmt.Errorf("user unlock: %v", err)
	}
	fmt.Fprintf(env.Stdout, "unlocked logins of %s\n", name)
	return nil
}
