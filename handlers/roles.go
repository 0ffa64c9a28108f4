package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/store"
)

// Editors share analyses and recipes, so they may cancel, rename and edit
// each other's; what they did is recorded in the analysis's activity feed.
// Two things need more than an editor (issue 14): deleting someone else's
// recipe needs an admin, and approving a recipe needs someone other than its
// author (a second reviewer).

// recordAction writes who did what to the feed. A failed write is logged, not
// returned: the action itself happened.
func (s *Server) recordAction(r *http.Request, analysisID, action, target string) {
	if err := s.db.RecordAction(r.Context(), analysisID, actorID(r), action, target); err != nil {
		s.reqLog(r).Error("recording an action", "analysis", analysisID, "action", action, "err", err)
	}
}

// isAuthor says the request acts as the recipe's author. Without accounts
// there is one local user, the author of everything (a request without a
// principal never gets here with accounts on: its route refuses it); a
// recipe whose author was deleted has none.
func isAuthor(r *http.Request, rec *store.Recipe) bool {
	p := currentPrincipal(r)
	if p == nil || p.User == nil {
		return true
	}
	return rec.CreatedBy != nil && *rec.CreatedBy == p.User.ID
}

func isAdmin(r *http.Request) bool {
	p := currentPrincipal(r)
	return p != nil && p.Role == store.RoleAdmin
}

// mayDeleteRecipe: its author, or an admin.
func mayDeleteRecipe(r *http.Request, rec *store.Recipe) bool { return isAuthor(r, rec) || isAdmin(r) }

// mayApprove: anyone but the author (without accounts, the one local user
// reviews alone, so the rule cannot apply).
func mayApprove(r *http.Request, rec *store.Recipe) bool {
	if p := currentPrincipal(r); p == nil || p.User == nil {
		return true
	}
	return !isAuthor(r, rec)
}
