package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/store"
)

// reviewJSON is a recipe's review state.
type reviewJSON struct {
	RecipeID int64               `json:"recipe_id"`
	Status   string              `json:"status"`
	Next     []string            `json:"next"` // the moves the workflow allows now
	History  []store.ReviewEvent `json:"history"`
}

func (s *Server) reviewState(r *http.Request, rid int64) (*reviewJSON, error) {
	rec, err := s.db.GetRecipe(r.Context(), rid)
	if err != nil {
		return nil, err
	}
	hist, err := s.db.ReviewHistory(r.Context(), rid)
	if err != nil {
		return nil, err
	}
	next := store.ReviewNext(rec.ReviewStatus)
	if next == nil {
		next = []string{}
	}
	return &reviewJSON{RecipeID: rid, Status: rec.ReviewStatus, Next: next, History: hist}, nil
}

// apiReviewGet is a recipe's review status with its history.
func (s *Server) apiReviewGet(w http.ResponseWriter, r *http.Request) {
	rid, ok := idParam(w, r, "rid", "recipe")
	if !ok {
		return
	}
	out, err := s.reviewState(r, rid)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// apiReviewSet moves a recipe through the review workflow (editors only, by
// the route policy); a move the workflow forbids is 409 naming the allowed.
func (s *Server) apiReviewSet(w http.ResponseWriter, r *http.Request) {
	rid, ok := idParam(w, r, "rid", "recipe")
	if !ok {
		return
	}
	var in struct {
		Status string `json:"status"`
		Note   string `json:"note"`
	}
	if !s.decodeJSON(w, r, &in) {
		return
	}
	if in.Status == store.ReviewApproved {
		rec, err := s.db.GetRecipe(r.Context(), rid)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		if !mayApprove(r, rec) {
			forbidden(w, "the author of a recipe may not approve it; a second reviewer must")
			return
		}
	}
	if _, err := s.db.SetReviewStatus(r.Context(), rid, in.Status, in.Note, actorID(r)); err != nil {
		s.apiError(w, r, err)
		return
	}
	out, err := s.reviewState(r, rid)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
