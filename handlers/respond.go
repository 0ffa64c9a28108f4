package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"syscall"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/store"
)

// writeJSON sends v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

func badRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, errorBody{msg})
}
func forbidden(w http.ResponseWriter, msg string) { writeJSON(w, http.StatusForbidden, errorBody{msg}) }
func notFound(w http.ResponseWriter, msg string)  { writeJSON(w, http.StatusNotFound, errorBody{msg}) }
func conflict(w http.ResponseWriter, msg string)  { writeJSON(w, http.StatusConflict, errorBody{msg}) }

// apiError maps an error to a status: a full disk is 507, a path outside the
// roots 403, a bad checkpoint 400, store codes their natural statuses,
// anything else 500 with the details only in the log.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	var te *tensor.Error
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		// Checked first: a full disk is the server's state, not the client's
		// fault, and whatever wrote the file has already removed its partial
		// output (prune.DiskFullError promises it).
		s.log.Warn("disk full", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", requestID(r))
		writeJSON(w, http.StatusInsufficientStorage, errorBody{"the server's disk is full; nothing was written and the partial files were removed: free space on the server and try again"})
	case errors.Is(err, checkpoint.ErrBusy):
		// Every header slot stayed taken: the request may be repeated as is.
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusTooManyRequests, errorBody{err.Error()})
	case errors.As(err, &te) && te.Forbidden:
		forbidden(w, te.Error())
	case errors.As(err, &te):
		badRequest(w, te.Error())
	case errors.Is(err, store.ErrNotFound):
		notFound(w, "not found")
	case errors.Is(err, store.ErrConflict):
		conflict(w, err.Error())
	case errors.Is(err, store.ErrInvalid):
		badRequest(w, err.Error())
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", requestID(r))
		writeJSON(w, http.StatusInternalServerError, errorBody{"internal error; see the server log"})
	}
}
