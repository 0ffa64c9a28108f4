package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/mdlite"
)

// commentJSON is a comment as the API returns it: with its body rendered the
// way the pages show it (safe HTML), and what the caller may do with it.
type commentJSON struct {
	store.Comment
	HTML      string `json:"html"`
	CanEdit   bool   `json:"can_edit"`
	CanDelete bool   `json:"can_delete"`
}

func newCommentJSON(r *http.Request, c *store.Comment) commentJSON {
	return commentJSON{Comment: *c, HTML: mdlite.Render(c.Body), CanEdit: mayEditComment(r, c), CanDelete: mayDeleteComment(r, c)}
}

// apiCommentList lists one thread (?target=cell&key=llm/3/attn_q) or, with no
// target, every live comment of the analysis; oldest first.
func (s *Server) apiCommentList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cs, err := s.db.ListComments(r.Context(), chi.URLParam(r, "id"), store.CommentFilter{Target: q.Get("target"), Key: q.Get("key")})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := make([]commentJSON, len(cs))
	for i := range cs {
		out[i] = newCommentJSON(r, &cs[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"comments": out})
}
