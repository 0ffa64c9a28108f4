package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// On a PostgreSQL store the processes sharing it tell each other about job
// rows they change through PostgreSQL's LISTEN/NOTIFY, so that a page server
// whose analyses run on a separate worker pushes their progress and end to its
// server-sent-event clients as they happen, and a cancel from any page stops
// the computation at once wherever it runs (without it, a worker sees a cancel
// only at its next progress write). Notifications are hints, never the truth:
// a listener re-reads the row, and one that missed some (its connection was
// down) still has the store, the events' slow re-read and the progress
// write's conflict to fall back on.
//
// A payload is "ORIGIN VERB KEY": ORIGIN tells a Runner its own notices (its
// listeners heard them already), VERB is changed or cancel, KEY an analysis id
// or a spectrumKey, the same names as Runner.running's. It stays well under
// PostgreSQL's 8000-byte limit, and is sent once per row change, so progress
// notices are throttled as the progress writes are (Options.ProgressEvery).

// NotifyChannel is the PostgreSQL channel of job notices.
const NotifyChannel = "deltascope_jobs"

const (
	verbChanged = "changed"
	verbCancel  = "cancel"
)

// newOrigin names one Runner among the processes sharing a store.
func newOrigin() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publish queues a notice for the other processes (on PostgreSQL only). A
// notice already waiting is not queued twice, so a slow database coalesces
// progress instead of piling it up; sendNotices sends them.
func (r *Runner) publish(verb, key string) {
	if r.opt.QueueURL == "" {
		return
	}
	r.outMu.Lock()
	r.out[r.origin+" "+verb+" "+key] = struct{}{}
	r.outMu.Unlock()
	select {
	case r.outKick <- struct{}{}:
	default:
	}
}

// sendNotices sends the queued notices through pool until ctx ends, then
// sends what is left: the requeue of a job stopped by the shutdown is news
// for the others too.
func (r *Runner) sendNotices(ctx context.Context, pool *pgxpool.Pool) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			r.flushNotices(fctx, pool)
			cancel()
			return
		case <-r.outKick:
			r.flushNotices(ctx, pool)
		}
	}
}

func (r *Runner) flushNotices(ctx context.Context, pool *pgxpool.Pool) {
	r.outMu.Lock()
	payloads := make([]string, 0, len(r.out))
	for p := range r.out {
		payloads = append(payloads, p)
	}
	clear(r.out)
	r.outMu.Unlock()
	if len(payloads) == 0 {
		return
	}
	// One round trip for all of them; a notice lost to an error only makes
	// the listeners fall back on re-reading the store.
	if _, err := pool.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, NotifyChannel, payloads); err != nil && ctx.Err() == nil {
		r.opt.Log.Warn("job notifications: send", "err", err)
	}
}

// Listen backoff: a lost connection is retried at once-ish, then less and
// less often while the database stays away.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 10 * time.Second
)

// listen holds one connection listening on NotifyChannel until ctx ends,
// reconnecting with backoff when it drops, and hands every other process's
// notice to received.
func (r *Runner) listen(ctx context.Context, url string) {
	wait := listenRetryMin
	for {
		err := r.listenOnce(ctx, url, func() { wait = listenRetryMin })
		if ctx.Err() != nil {
			return
		}
		r.opt.Log.Warn("job notifications: connection lost; reconnecting", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, listenRetryMax)
	}
}

func (r *Runner) listenOnce(ctx context.Context, url string, connected func()) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+NotifyChannel); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		r.received(n.Payload)
	}
}

// received acts on one notice: a cancel stops the job if it runs here, and
// every notice wakes this process's listeners (server-sent events).
func (r *Runner) received(payload string) {
	origin, rest, ok := strings.Cut(payload, " ")
	if !ok || origin == r.origin {
		return
	}
	verb, key, ok := strings.Cut(rest, " ")
	if !ok || key == "" {
		return
	}
	if verb == verbCancel {
		if r.stop(key) {
			r.opt.Log.Info("job cancelled by another process", "job", key)
		}
	}
	r.notifyLocal(key)
}
