package handlers

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

func requestID(r *http.Request) string { return middleware.GetReqID(r.Context()) }

// reqLog is the server's logger with the request's id, so every line a request
// writes can be found with the id the client saw in X-Request-Id.
func (s *Server) reqLog(r *http.Request) *slog.Logger {
	return s.log.With("request_id", requestID(r))
}

// logRequests writes one structured line per request.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", requestID(r))
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		s.stats.requests.Add(1)
		switch {
		case ww.Status() >= 500:
			s.stats.serverError.Add(1)
		case ww.Status() >= 400:
			s.stats.clientError.Add(1)
		}
		s.log.Info("request", "method", r.Method, "path", logPath(r.URL.Path), "status", ww.Status(),
			"bytes", ww.BytesWritten(), "ms", time.Since(start).Milliseconds(), "request_id", requestID(r))
	})
}

// maxLoggedPath bounds a path as logged: real paths are well under 200 bytes,
// and an attacker's 48 KB upload ids, logged whole, made 1,200 requests write
// 58 MB of log (issue 14).
const maxLoggedPath = 256

// logPath is p cut to maxLoggedPath bytes (truncate), marked with its
// original length when cut.
func logPath(p string) string {
	if len(p) <= maxLoggedPath {
		return p
	}
	return truncate(p, maxLoggedPath) + "…(cut, " + strconv.Itoa(len(p)) + " bytes)"
}

// recoverPanics turns a handler panic into a 500 and a log line with the stack,
// so one bad request never takes the server down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic", "value", v, "stack", string(debug.Stack()), "request_id", requestID(r))
				writeJSON(w, http.StatusInternalServerError, errorBody{"internal error; see the server log"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
