package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/store"
)

// apiCommentDelete deletes a comment: its author's, or an admin's doing.
func (s *Server) apiCommentDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := idParam(w, r, "cid", "comment")
	if !ok {
		return
	}
	c, ok := s.liveComment(w, r, id)
	if !ok {
		return
	}
	if !mayDeleteComment(r, c) {
		forbidden(w, "only the author of a comment or an admin may delete it")
		return
	}
	if err := s.db.DeleteComment(r.Context(), c.ID); err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// liveComment loads a comment that is not deleted (a deleted one is gone for
// every purpose but the thread's history), answering 404 itself.
func (s *Server) liveComment(w http.ResponseWriter, r *http.Request, id int64) (*store.Comment, bool) {
	c, err := s.db.GetComment(r.Context(), id)
	if err == nil && c.Deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		s.apiError(w, r, err)
		return nil, false
	}
	return c, true
}
