package web

import (
	"time"

	"github.com/deltascope/deltascope/store"
)

// AdminUsersView is the admin's page of accounts and their API tokens.
type AdminUsersView struct {
	Users []AdminUser
	// NewToken is a secret just created, shown this once; For names its owner.
	NewToken, For string
}

// AdminUser is one account with its tokens.
type AdminUser struct {
	Name, Role string
	Tokens     []AdminToken
}

// AdminToken is one token as the page lists it.
type AdminToken struct {
	ID                                       int64
	Label, Created, LastUsed, Expires, State string
	Live                                     bool
}

// NewAdminUser words a user's tokens.
func NewAdminUser(u store.User, toks []store.APIToken, now time.Time) AdminUser {
	au := AdminUser{Name: u.Name, Role: string(u.Role)}
	for _, t := range toks {
		at := AdminToken{ID: t.ID, Label: t.Name, Created: When(&t.CreatedAt), LastUsed: "never", Expires: "never", State: "live", Live: true}
		if t.LastUsedAt != nil {
			at.LastUsed = When(t.LastUsedAt)
		}
		if t.ExpiresAt != nil {
			at.Expires = When(t.ExpiresAt)
		}
		switch {
		case t.RevokedAt != nil:
			at.State, at.Live = "revoked", false
		case t.ExpiresAt != nil && !t.ExpiresAt.After(now):
			at.State, at.Live = "expired", false
		}
		au.Tokens = append(au.Tokens, at)
	}
	return au
}
