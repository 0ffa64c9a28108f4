package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
)

// Heavy reads (issue 14): GET /api/analyses/{id}/tensors?rows=1 of a 7B
// analysis is 16.7 MB of JSON, and 30 at once held 1.4 GB. Such a listing is
// streamed, one tensor in memory at a time, and at most MaxHeavyReads run at
// once; one that waits past ExportWait for its turn is refused with 429.

// heavySlots is the semaphore of streamed listings.
type heavySlots chan struct{}

func (h heavySlots) acquire(ctx context.Context, wait time.Duration) (func(), bool) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case h <- struct{}{}:
		return func() { <-h }, true
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, false
}

// streamTensors writes {"tensors": [...], and the alignment lists when
// unfiltered}. Errors found before the first byte are JSON answers; one after
// it aborts the connection, so no client takes half a listing for a whole one.
func (s *Server) streamTensors(w http.ResponseWriter, r *http.Request, id string, f store.TensorFilter, unfiltered bool) {
	release, ok := s.heavyReads.acquire(r.Context(), s.guard.g.ExportWait)
	if !ok {
		tooManyRequests(w, fmt.Sprintf("the server is sending %d tensor listings with rows already (limit %d); retry shortly", cap(s.heavyReads), cap(s.heavyReads)))
		return
	}
	defer release()
	tail := map[string]any{}
	if unfiltered {
		res, err := s.db.Alignment(r.Context(), id)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		tail["base_only"], tail["vla_only"], tail["mismatched"], tail["ambiguous"] = res.BaseOnly, res.VLAOnly, res.Mismatched, res.Ambiguous
	}
	// A client that stops reading holds a database read; it is cut off as a
	// stalled download is.
	sw := newStallWriter(w, s.guard.g.ExportStall)
	defer sw.done()
	started := false
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
			sw.Write([]byte(`{"tensors":[`))
		}
	}
	n := 0
	err := s.db.EachTensor(r.Context(), id, f, func(t *analysis.TensorStats) error {
		start()
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if n > 0 {
			b = append([]byte{','}, b...)
		}
		n++
		_, err = sw.Write(b)
		return err
	})
	if err != nil {
		if !started {
			s.apiError(w, r, err)
			return
		}
		if r.Context().Err() == nil {
			s.reqLog(r).Warn("tensor listing aborted midway", "analysis", id, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	start()
	rest, err := json.Marshal(tail)
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	out := []byte{']'}
	if len(rest) > 2 { // more than {}
		out = append(append(out, ','), rest[1:]...)
	} else {
		out = append(out, '}')
	}
	if _, err := sw.Write(append(out, '\n')); err != nil {
		panic(http.ErrAbortHandler)
	}
}
