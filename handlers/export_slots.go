package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// userSlots bound work that may run only a few at a time, globally and per
// user (exportUser), so one user cannot take every slot: a request that gets
// none within wait is refused (429 with Retry-After) instead of queueing
// without end. busy and busyUser word the refusal, from (running, max) and
// (mine, perUser).
type userSlots struct {
	max, perUser   int
	wait           time.Duration
	busy, busyUser string

	mu      sync.Mutex
	running int
	byUser  map[string]int
}

// newExportSlots bound the checkpoint exports (masked, sliced) running at
// once: each reads and writes a whole checkpoint, so two slow downloads must
// not starve every other export.
func newExportSlots(g *Guard) *userSlots {
	return &userSlots{max: g.MaxExports, perUser: g.MaxExportsPerUser, wait: g.ExportWait, byUser: map[string]int{},
		busy:     "the server is writing %d checkpoint exports already (limit %d); retry shortly",
		busyUser: "you are running %d checkpoint exports already (limit %d per user); wait for one to finish"}
}

// newPreviewSlots bound the requests that open two checkpoints' headers and
// align them (a preview, or starting an analysis that is not in the cache),
// from the first header read to the last suggestion: the header slots
// (checkpoint.HeaderSlots) are given back once a file is parsed, and a
// header at the limits keeps ~20-40 MB while its request aligns and suggests.
func newPreviewSlots(g *Guard) *userSlots {
	return &userSlots{max: g.MaxPreviews, perUser: g.MaxPreviewsPerUser, wait: g.PreviewWait, byUser: map[string]int{},
		busy:     "the server is reading and aligning the headers of %d checkpoint pairs already (limit %d); retry in a few seconds",
		busyUser: "you have %d requests reading checkpoint headers already (limit %d per user); retry when they are done"}
}

// exportUser is who an export or a preview counts against: the account, or
// the client address without accounts.
func exportUser(r *http.Request) string {
	if id := actorID(r); id != nil {
		return "user:" + strconv.FormatInt(*id, 10)
	}
	return clientAddress(r)
}

// acquire waits up to the slots' wait for one; refusal says why there is none.
func (e *userSlots) acquire(ctx context.Context, user string) (release func(), refusal string) {
	deadline := time.Now().Add(e.wait)
	for {
		e.mu.Lock()
		mine := e.byUser[user]
		if e.running < e.max && mine < e.perUser {
			e.running++
			e.byUser[user]++
			e.mu.Unlock()
			return func() {
				e.mu.Lock()
				defer e.mu.Unlock()
				e.running--
				if e.byUser[user]--; e.byUser[user] <= 0 {
					delete(e.byUser, user)
				}
			}, ""
		}
		running := e.running
		e.mu.Unlock()
		if time.Now().After(deadline) {
			if mine >= e.perUser {
				return nil, fmt.Sprintf(e.busyUser, mine, e.perUser)
			}
			return nil, fmt.Sprintf(e.busy, running, e.max)
		}
		select {
		case <-ctx.Done():
			return nil, "the client went away"
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stallWriter gives every write of a download ExportStall to complete: a
// client that stops reading fills the socket's buffers, the next write
// blocks, and the deadline cuts it off (the export aborts and frees its slot),
// while a slow reader that keeps reading is never cut.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func newStallWriter(w http.ResponseWriter, stall time.Duration) *stallWriter {
	return &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: stall}
}

func (s *stallWriter) Write(p []byte) (int, error) {
	s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return s.ResponseWriter.Write(p)
}

// done lifts the deadline: without a server WriteTimeout nothing resets it,
// and a kept-alive connection's next response must not inherit it.
func (s *stallWriter) done() { s.rc.SetWriteDeadline(time.Time{}) }

func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
