package handlers

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter caps the connections one client address holds open. It runs as
// the http.Server's ConnState hook: StateNew is called in the accept loop
// before the connection's goroutine starts, so a refused connection can be
// answered and closed there without racing the server.
type connLimiter struct {
	max int

	mu     sync.Mutex
	byAddr map[string]int
	conns  map[net.Conn]string // the connections counted, so a refused one is never uncounted
}

// connRefusal is what a connection past the cap reads before it is closed.
var connRefusal = func() []byte {
	msg := "too many connections from your address; close some and retry\n"
	return fmt.Appendf(nil, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
}()

func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		host := clientHost(c.RemoteAddr())
		l.mu.Lock()
		if l.byAddr[host] >= l.max {
			l.mu.Unlock()
			// A fresh socket's send buffer takes this at once; the deadline is
			// only a guard so the accept loop can never block on it.
			c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			c.Write(connRefusal)
			c.Close()
			return
		}
		l.byAddr[host]++
		l.conns[c] = host
		l.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		l.mu.Lock()
		if host, ok := l.conns[c]; ok {
			delete(l.conns, c)
			if l.byAddr[host]--; l.byAddr[host] <= 0 {
				delete(l.byAddr, host)
			}
		}
		l.mu.Unlock()
	}
}

// open is the number of connections counted for host (tests).
func (l *connLimiter) open(host string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byAddr[host]
}

func clientHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// bodyDeadline gives every request that carries a body BodyTimeout to send
// it. Without it a client announcing "Content-Length: 1000" and never sending
// the bytes holds its connection forever: the handler may not read the body
// (GET /healthz), but the server tries to before reusing the connection.
// The deadline is lifted when the body has been read to its end, so a long
// response (an export, an event stream) is never cut by it.
// Upload chunks replace it with their own deadline, renewed as bytes arrive.
//
// A response to a request whose body was not read to its end carries
// "Connection: close": net/http discards an unread body of up to 256 KB
// before it writes the response, so without it GET /healthz with a body that
// never comes was answered only when the deadline expired (issue 14). With
// it the answer goes at once and the connection is closed after it, its
// descriptor freed then rather than at the deadline. The header is set before
// the handler runs and taken back when the body reaches its end, so a
// handler that reads its body keeps the connection alive. A handler whose
// read times out answers 408: decodeJSON says so itself, and a 400 written
// after a timed-out read (a form, a CSV, a strict JSON body) is sent as 408.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(s.guard.g.BodyTimeout))
		w.Header().Set("Connection", "close")
		b := &deadlineBody{ReadCloser: r.Body, rc: rc, h: w.Header()}
		r.Body = b
		next.ServeHTTP(&timeoutStatus{ResponseWriter: w, b: b}, r)
		if !b.eof {
			// The connection closes after this response: what is left of
			// the body is not waited for (net/http still reads it on close).
			rc.SetReadDeadline(time.Now())
		}
	})
}

// deadlineBody lifts the connection's read deadline once the body is read to
// its end, and takes back the "Connection: close" bodyDeadline set (a header
// already written is not changed by it). Only the handler's goroutine reads a
// request body.
type deadlineBody struct {
	io.ReadCloser
	rc  *http.ResponseController
	h   http.Header
	eof bool
	// timedOut: a read ended at the deadline.
	timedOut bool
}

// timeoutStatus sends a 400 written after the body's read timed out as 408
// Request Timeout: the request was not malformed, it did not arrive. Flush
// and Unwrap keep event streams and http.ResponseController working through
// it.
type timeoutStatus struct {
	http.ResponseWriter
	b     *deadlineBody
	wrote bool
}

func (w *timeoutStatus) WriteHeader(code int) {
	if !w.wrote && code == http.StatusBadRequest && w.b.timedOut {
		code = http.StatusRequestTimeout
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *timeoutStatus) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *timeoutStatus) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

func (w *timeoutStatus) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && isTimeout(err) {
		b.timedOut = true
	}
	if err == io.EOF && !b.eof {
		b.eof = true
		b.rc.SetReadDeadline(time.Time{})
		if b.h.Get("Connection") == "close" {
			b.h.Del("Connection")
		}
	}
	return n, err
}
