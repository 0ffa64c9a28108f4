package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
)

// apiAnalysisEvents streams an analysis's state as server-sent events: the
// current state at once, then every change, until it ends. The state lives in
// the store, so a reloaded page or a reconnecting EventSource picks up where
// the job is.
func (s *Server) apiAnalysisEvents(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	a, err := s.db.Get(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, errorBody{"streaming unsupported"})
		return
	}
	events, stop := s.jobs.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	// A tick re-reads the store too: a job run by another process (the CLI's
	// analyze --data) changes the row without telling this runner.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last []byte
	for {
		data, _ := json.Marshal(viewOf(a))
		if string(data) != string(last) {
			fmt.Fprintf(w, "event: progress\ndata: %s\n\n", data)
			flusher.Flush()
			last = data
		}
		if a.Status.Terminal() {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case changed := <-events:
			if changed != id {
				continue
			}
		case <-tick.C:
		}
		if a, err = s.db.Get(r.Context(), id); err != nil {
			return
		}
	}
}
