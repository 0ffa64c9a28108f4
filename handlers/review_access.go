package handlers

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// actorID is the account a request acts as, recorded as the author of a
// comment, decision or result; nil when auth is none.
func actorID(r *http.Request) *int64 {
	if u := currentUser(r); u != nil {
		return &u.ID
	}
	return nil
}

// mayEditComment: a comment is its author's to edit. Without accounts there
// is one local user (every request acts as the admin), whose comments all are.
func mayEditComment(r *http.Request, c *store.Comment) bool {
	p := currentPrincipal(r)
	switch {
	case p == nil:
		return false
	case p.User == nil:
		return true
	}
	return c.UserID != nil && *c.UserID == p.User.ID
}

// mayDeleteComment: its author, or an admin (moderation).
func mayDeleteComment(r *http.Request, c *store.Comment) bool {
	p := currentPrincipal(r)
	return mayEditComment(r, c) || p != nil && p.Role.AtLeast(store.RoleAdmin)
}

// commentAccess is both checks for the pages, which offer only what the API
// will accept.
func commentAccess(r *http.Request) web.CommentAccess {
	return func(c *store.Comment) (bool, bool) { return mayEditComment(r, c), mayDeleteComment(r, c) }
}

// isEditor says whether the request may change review status and results;
// the route table enforces it on the API, the pages use it to hide the forms.
func isEditor(r *http.Request) bool {
	p := currentPrincipal(r)
	return p != nil && p.Role.AtLeast(store.RoleEditor)
}

// idParam reads a numeric id from the path; ok false has answered 404.
func idParam(w http.ResponseWriter, r *http.Request, name, what string) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, name), 10, 64)
	if err != nil || id <= 0 {
		notFound(w, "no such "+what)
		return 0, false
	}
	return id, true
}

// commentThread reads one thread for a page; the page's own URL is the view
// new comments record.
func (s *Server) commentThread(r *http.Request, analysisID, target, key, title string) (web.CommentThread, error) {
	cs, err := s.db.ListComments(r.Context(), analysisID, store.CommentFilter{Target: target, Key: key})
	if err != nil {
		return web.CommentThread{}, err
	}
	return web.NewCommentThread(analysisID, target, key, title, r.URL.RequestURI(), cs, commentAccess(r)), nil
}
