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
	c, err := s.db.GetComment(r.Context(), id)
	if err == nil && c.Deleted {
		err = store.ErrNotFound
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if !mayDeleteComment(r, c) {
		forbidden(w, "only the author of a comment or an admin may delete it")
		return
	}
	if err := s.db.DeleteComment(r.Context(), id); err != nil {
		s.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
