package handlers

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// exportSlots bound the checkpoint exports (masked, sliced) running at once:
// each reads and writes a whole checkpoint. Slots are global and per user, so
// one user (or two slow downloads) cannot take them all, and an export that
// cannot get one within a short wait is refused with 429 and Retry-After
// instead of queueing without end.
type exportSlots struct {
	g *Guard

	mu      sync.Mutex
	running int
	byUser  map[string]int
}

func newExportSlots(g *Guard) *exportSlots { return &exportSlots{g: g, byUser: map[string]int{}} }

// exportUser is who an export counts against: the account, or the client
// address without accounts.
func exportUser(r *http.Request) string {
	if id := actorID(r); id != nil {
		return "user:" + strconv.FormatInt(*id, 10)
	}
	return clientAddress(r)
}

// acquire waits up to ExportWait for a slot; refusal says why there is none.
func (e *exportSlots) acquire(ctx context.Context, user string) (release func(), refusal string) {
	deadline := time.Now().Add(e.g.ExportWait)
	for {
		e.mu.Lock()
		mine := e.byUser[user]
		if e.running < e.g.MaxExports && mine < e.g.MaxExportsPerUser {
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
			if mine >= e.g.MaxExportsPerUser {
				return nil, fmt.Sprintf("you are running %d checkpoint exports already (limit %d per user); wait for one to finish", mine, e.g.MaxExportsPerUser)
			}
			return nil, fmt.Sprintf("the server is writing %d checkpoint exports already (limit %d); retry shortly", running, e.g.MaxExports)
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
