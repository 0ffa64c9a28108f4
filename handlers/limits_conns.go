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
// response (an export, an event stream) is never cut by it, and set again when
// the handler returns with the body unread, which bounds that last read.
// Upload chunks replace it with their own deadline, renewed as bytes arrive.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		timeout := s.guard.g.BodyTimeout
		rc.SetReadDeadline(time.Now().Add(timeout))
		b := &deadlineBody{ReadCloser: r.Body, rc: rc}
		r.Body = b
		next.ServeHTTP(w, r)
		if !b.eof {
			rc.SetReadDeadline(time.Now().Add(timeout))
		}
	})
}

// deadlineBody lifts the connection's read deadline once the body is read to
// its end. Only the handler's goroutine reads a request body.
type deadlineBody struct {
	io.ReadCloser
	rc  *http.ResponseController
	eof bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
