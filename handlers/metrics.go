package handlers

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// counters are the server's own numbers for the status page.
type counters struct {
	started     time.Time
	requests    atomic.Int64
	serverError atomic.Int64
	clientError atomic.Int64
	cacheHits   atomic.Int64
	cacheMisses atomic.Int64
	// exportsRunning counts exports being written to a client; it falls back
	// when one ends, a client that went away included.
	exportsRunning atomic.Int64
}

type metricsResponse struct {
	UptimeSeconds float64              `json:"uptime_seconds"`
	Requests      int64                `json:"requests"`
	ClientErrors  int64                `json:"responses_4xx"`
	ServerErrors  int64                `json:"responses_5xx"`
	CacheHits     int64                `json:"cache_hits"`
	CacheMisses   int64                `json:"cache_misses"`
	Analyses      map[store.Status]int `json:"analyses"`
	Queue         int                  `json:"queue_length"`
	Jobs          jobs.Stats           `json:"jobs"`
	Exports       int64                `json:"exports_running"`
}

// metrics is a JSON status page: jobs, queue length, cache hits, durations.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	counts, err := s.db.CountByStatus(r.Context())
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, metricsResponse{
		UptimeSeconds: time.Since(s.stats.started).Seconds(),
		Requests:      s.stats.requests.Load(),
		ClientErrors:  s.stats.clientError.Load(),
		ServerErrors:  s.stats.serverError.Load(),
		CacheHits:     s.stats.cacheHits.Load(),
		CacheMisses:   s.stats.cacheMisses.Load(),
		Analyses:      counts,
		Queue:         counts[store.StatusQueued],
		Jobs:          s.jobs.Stats(),
		Exports:       s.stats.exportsRunning.Load(),
	})
}
