package cli

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/deltascope/deltascope/store"
)

// manageTokens lists or revokes a user's API tokens (user token NAME --list,
// --revoke ID, --all).
func manageTokens(ctx context.Context, env Env, db *store.DB, name string, list bool, revoke string, all bool) error {
	switch {
	case list && (revoke != "" || all), revoke != "" && all:
		return fmt.Errorf("user token: give one of --list, --revoke ID and --all")
	case revoke != "":
		id, err := strconv.ParseInt(revoke, 10, 64)
		if err != nil {
			return fmt.Errorf("user token: --revoke %q: give the token's ID (user token %s --list shows them)", revoke, name)
		}
		if err := db.RevokeAPIToken(ctx, name, id); err != nil {
			return fmt.Errorf("user token: %v", err)
		}
		fmt.Fprintf(env.Stdout, "revoked token %d of %s\n", id, name)
		return nil
	case all:
		n, err := db.RevokeAllAPITokens(ctx, name)
		if err != nil {
			return fmt.Errorf("user token: %v", err)
		}
		fmt.Fprintf(env.Stdout, "revoked %d tokens of %s\n", n, name)
		return nil
	}
	if _, err := db.GetUser(ctx, name); err != nil {
		return fmt.Errorf("user token: %v", err)
	}
	toks, err := db.ListAPITokens(ctx, name)
	if err != nil {
		return fmt.Errorf("user token: %v", err)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLABEL\tCREATED\tLAST USED\tEXPIRES\tSTATE")
	now := time.Now()
	for _, t := range toks {
		state := "live"
		switch {
		case t.RevokedAt != nil:
			state = "revoked " + day(t.RevokedAt)
		case t.ExpiresAt != nil && !t.ExpiresAt.After(now):
			state = "expired"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), day(&t.CreatedAt), day(t.LastUsedAt), dayOr(t.ExpiresAt, "never"), state)
	}
	return tw.Flush()
}

func day(t *time.Time) string { return dayOr(t, "-") }

func dayOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Local().Format("2006-01-02 15:04")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
