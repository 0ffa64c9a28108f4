package handlers

import (
	"encoding/json"
	"errors"
	"net/http"
	"syscall"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/jobs"
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

// statusError is a refusal a handler decided itself: its status and a
// message to show as is.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// diskFullMessage is what a client is told when the server's disk is full.
const diskFullMessage = "the server's disk is full; nothing was written and the partial files were removed: free space on the server and try again"

// errorStatus is the one mapping of an error to a status and the message a
// client may see, for the API's JSON and a form's page alike: a full disk is
// 507, a busy header slot or a full queue 429, a path outside the roots 403,
// a bad checkpoint 400, store codes their natural statuses, anything else
// 500 with the details only in the log.
func errorStatus(err error) (int, string) {
	var te *tensor.Error
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.code, se.msg
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		// Checked first: a full disk is the server's state, not the client's
		// fault, and whatever wrote the file has already removed its partial
		// output (prune.DiskFullError promises it).
		return http.StatusInsufficientStorage, diskFullMessage
	case errors.Is(err, checkpoint.ErrBusy), errors.Is(err, jobs.ErrQueueFull):
		return http.StatusTooManyRequests, err.Error()
	case errors.As(err, &te) && te.Forbidden:
		return http.StatusForbidden, te.Error()
	case errors.As(err, &te):
		return http.StatusBadRequest, te.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	}
	return http.StatusInternalServerError, "internal error; see the server log"
}

// logFailure logs what errorStatus gave code: a full disk as a warning, an
// internal error with its details; a client's mistake is not logged.
func (s *Server) logFailure(r *http.Request, code int, err error) {
	switch code {
	case http.StatusInsufficientStorage:
		s.log.Warn("disk full", "method", r.Method, "path", logPath(r.URL.Path), "err", err, "request_id", requestID(r))
	case http.StatusInternalServerError:
		s.log.Error("request failed", "method", r.Method, "path", logPath(r.URL.Path), "err", err, "request_id", requestID(r))
	}
}

// apiError answers a failed API request with errorStatus's status and
// message as JSON.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := errorStatus(err)
	s.logFailure(r, code, err)
	if code == http.StatusTooManyRequests {
		// Every header slot stayed taken, or the queue is full: the request
		// may be repeated as is, as every other 429 of the server says.
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, code, errorBody{msg})
}
