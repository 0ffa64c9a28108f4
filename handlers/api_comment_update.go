package handlers

import "net/http"

// apiCommentUpdate replaces a comment's text: its author's right only (not
// even an admin puts words in someone's mouth).
func (s *Server) apiCommentUpdate(w http.ResponseWriter, r *http.Request) {
	id, ok := idParam(w, r, "cid", "comment")
	if !ok {
		return
	}
	var in struct {
		Body string `json:"body"`
	}
	if !s.decodeJSON(w, r, &in) {
		return
	}
	c, ok := s.liveComment(w, r, id)
	if !ok {
		return
	}
	if !mayEditComment(r, c) {
		forbidden(w, "only the author of a comment may edit it")
		return
	}
	c, err := s.db.UpdateComment(r.Context(), id, in.Body)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newCommentJSON(r, c))
}
