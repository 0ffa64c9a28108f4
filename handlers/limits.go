package handlers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Guard bounds what clients may hold of the server: queue places, upload
// connections, and time. Every zero field takes its default (DefaultGuard).
type Guard struct {
	// MaxQueuedAnalyses refuses a new analysis with 429 while this many wait.
	MaxQueuedAnalyses int
	// MaxUploads bounds upload chunks (PATCH requests) being received at once,
	// server-wide; MaxUploadsPerClient bounds them per client address, so one
	// client cannot take every slot. Both answer 429 when hit.
	MaxUploads          int
	MaxUploadsPerClient int
	// HeaderTimeout is the time a client has to send its request line and
	// headers (slowloris); IdleTimeout how long a keep-alive connection waits.
	HeaderTimeout time.Duration
	IdleTimeout   time.Duration
	// BodyTimeout is the time a client has to send a request body, any route
	// (upload chunks instead get UploadStall, renewed as bytes arrive): a body
	// announced and never sent would otherwise hold its connection forever.
	BodyTimeout time.Duration
	// MaxConnsPerClient bounds the connections one client address may hold
	// open; past it a new connection is answered 429 and closed at once, so
	// one client cannot take every file descriptor of the server.
	MaxConnsPerClient int
	// UploadStall is the longest pause inside an upload chunk: a chunk may take
	// hours on a slow link, but a client that stops sending is cut off (what
	// arrived is kept, and the upload resumes from it).
	UploadStall time.Duration
	// UploadExpiry is how long an unfinished upload may sit idle before the
	// sweeper removes its file and row.
	UploadExpiry time.Duration
	// UploadKeep is how long a finished upload that no analysis uses is kept.
	UploadKeep time.Duration
	// MaxUploadsPerUser and MaxUploadBytesPerUser are each account's upload
	// quota (receiving and finished, until deleted or expired): past the count
	// a new upload gets 429, past the bytes 507.
	MaxUploadsPerUser     int
	MaxUploadBytesPerUser int64
	// MaxExports and MaxExportsPerUser bound the checkpoint exports (masked,
	// sliced) written at once; one that gets no slot within ExportWait is
	// refused with 429. ExportStall is the longest a download may stop
	// reading before it is cut off.
	MaxExports, MaxExportsPerUser int
	ExportWait, ExportStall       time.Duration
	// MaxHeavyReads bounds the tensor listings with rows (?rows=1, megabytes
	// each) sent at once; they wait ExportWait for a turn, then get 429.
	MaxHeavyReads int
	// MaxPreviews and MaxPreviewsPerUser bound the requests that open both
	// sides' headers and align them (POST /api/preview, and POST
	// /api/analyses when not in the cache) at once, from the first header to
	// the last suggestion; one that gets no turn within PreviewWait is refused
	// with 429. Ordinary headers take milliseconds; two files at the header
	// limits take one preview to ~180 MB.
	MaxPreviews, MaxPreviewsPerUser int
	PreviewWait                     time.Duration
}

// DefaultGuard holds the defaults: generous for a lab, small enough that one
// client cannot exhaust the server.
var DefaultGuard = Guard{
	MaxQueuedAnalyses:     64,
	MaxUploads:            16,
	MaxUploadsPerClient:   4,
	HeaderTimeout:         10 * time.Second,
	IdleTimeout:           2 * time.Minute,
	BodyTimeout:           30 * time.Second,
	MaxConnsPerClient:     128,
	UploadStall:           time.Minute,
	UploadExpiry:          7 * 24 * time.Hour,
	UploadKeep:            30 * 24 * time.Hour,
	MaxUploadsPerUser:     200,
	MaxUploadBytesPerUser: 1 << 40,
	MaxExports:            4, // streamed: an 8 MiB block and a 1 MiB buffer each
	MaxExportsPerUser:     2,
	ExportWait:            2 * time.Second,
	ExportStall:           30 * time.Second,
	MaxHeavyReads:         4,
	MaxPreviews:           2,
	MaxPreviewsPerUser:    1,
	PreviewWait:           5 * time.Second, // checkpoint.DefaultHeaderWait
}

func (g *Guard) fillDefaults() {
	d := DefaultGuard
	for _, f := range []struct{ v, def *int }{{&g.MaxQueuedAnalyses, &d.MaxQueuedAnalyses}, {&g.MaxUploads, &d.MaxUploads}, {&g.MaxUploadsPerClient, &d.MaxUploadsPerClient}, {&g.MaxConnsPerClient, &d.MaxConnsPerClient}, {&g.MaxUploadsPerUser, &d.MaxUploadsPerUser},
		{&g.MaxExports, &d.MaxExports}, {&g.MaxExportsPerUser, &d.MaxExportsPerUser},
		{&g.MaxHeavyReads, &d.MaxHeavyReads}, {&g.MaxPreviews, &d.MaxPreviews}, {&g.MaxPreviewsPerUser, &d.MaxPreviewsPerUser}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *time.Duration }{{&g.HeaderTimeout, &d.HeaderTimeout}, {&g.IdleTimeout, &d.IdleTimeout},
		{&g.BodyTimeout, &d.BodyTimeout}, {&g.UploadStall, &d.UploadStall}, {&g.UploadExpiry, &d.UploadExpiry}, {&g.UploadKeep, &d.UploadKeep},
		{&g.ExportWait, &d.ExportWait}, {&g.ExportStall, &d.ExportStall}, {&g.PreviewWait, &d.PreviewWait}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if g.MaxUploadBytesPerUser <= 0 {
		g.MaxUploadBytesPerUser = d.MaxUploadBytesPerUser
	}
}

// guardState is the live side of Guard: the upload slots and the drain signal.
type guardState struct {
	g *Guard

	mu       sync.Mutex
	uploads  int
	byClient map[string]int

	drainOnce sync.Once
	draining  chan struct{} // closed when the server starts shutting down

	// openUpload opens an upload's file for writing; tests swap it for a
	// writer that fails like a full disk.
	openUpload func(root *os.Root, name string) (uploadWriter, error)

	conns connLimiter
}

// uploadWriter is the part of *os.File an upload chunk needs.
type uploadWriter interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

func newGuardState(g *Guard) *guardState {
	g.fillDefaults()
	return &guardState{g: g, byClient: map[string]int{}, draining: make(chan struct{}),
		openUpload: func(root *os.Root, name string) (uploadWriter, error) { return root.OpenFile(name, os.O_WRONLY, 0) },
		conns:      connLimiter{max: g.MaxConnsPerClient, byAddr: map[string]int{}, conns: map[net.Conn]string{}}}
}

// maxRequestHeader bounds a request's line and headers (net/http's default is
// 1 MB): the longest legitimate ones (a session cookie, tus metadata) are a
// few KB, and an upload id of 500 KB in the URL is an attack, not a request.
const maxRequestHeader = 64 << 10

// HTTPServer is the http.Server to run h with: header and idle timeouts from
// the Guard, a cap on connections per client address, and a shutdown hook that
// makes in-flight upload chunks stop reading and confirm what arrived, so
// Shutdown does not wait on slow clients.
// No server-wide ReadTimeout or WriteTimeout: a ReadTimeout cancels the
// request context of every response that outlives it (event streams, exports),
// and a WriteTimeout would cut long downloads; bodies get their deadline from
// the bodyDeadline middleware instead.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: s.guard.g.HeaderTimeout, IdleTimeout: s.guard.g.IdleTimeout,
		ConnState: s.guard.conns.track, MaxHeaderBytes: maxRequestHeader}
	srv.RegisterOnShutdown(s.Drain)
	return srv
}

// Drain tells in-flight upload chunks to stop reading and confirm what they
// have. Called by http.Server.Shutdown through HTTPServer.
func (s *Server) Drain() { s.guard.drainOnce.Do(func() { close(s.guard.draining) }) }

// acquireUpload takes an upload slot for the client, or says why not.
func (gs *guardState) acquireUpload(r *http.Request) (release func(), refusal string) {
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.uploads >= gs.g.MaxUploads {
		return nil, fmt.Sprintf("the server is receiving %d upload chunks already (limit %d); retry shortly", gs.uploads, gs.g.MaxUploads)
	}
	if gs.byClient[client] >= gs.g.MaxUploadsPerClient {
		return nil, fmt.Sprintf("you are sending %d upload chunks at once (limit %d per client); wait for one to finish", gs.byClient[client], gs.g.MaxUploadsPerClient)
	}
	gs.uploads++
	gs.byClient[client]++
	return func() {
		gs.mu.Lock()
		defer gs.mu.Unlock()
		gs.uploads--
		if gs.byClient[client]--; gs.byClient[client] == 0 {
			delete(gs.byClient, client)
		}
	}, ""
}

func tooManyRequests(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "5")
	writeJSON(w, http.StatusTooManyRequests, errorBody{msg})
}

var errDraining = errors.New("the server is shutting down")

// isTimeout says the client was too slow (a read deadline passed).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
