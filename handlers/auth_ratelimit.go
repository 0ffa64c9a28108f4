package handlers

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Login rate limits: after loginFailuresAllowed failed logins within
// loginWindow from one client address, or for one user name, further attempts
// are refused with 429 until the window ends. The name limit stops a password
// being guessed from many addresses; the address limit stops one client
// trying many names.
const (
	loginFailuresAllowed = 5
	loginWindow          = time.Minute
	// loginLimiterCapacity bounds the limiter's memory (~100 bytes an entry).
	loginLimiterCapacity = 10_000
)

// loginLimiter counts failures per key in fixed windows that start at a key's
// first failure.
type loginLimiter struct {
	mu       sync.Mutex
	allowed  int
	window   time.Duration
	capacity int
	entries  map[string]limitEntry
	now      func() time.Time // tests move the clock
}

type limitEntry struct {
	start    time.Time
	failures int
}

func newLoginLimiter(allowed int, window time.Duration, capacity int) *loginLimiter {
	return &loginLimiter{allowed: allowed, window: window, capacity: capacity,
		entries: make(map[string]limitEntry), now: time.Now}
}

// blocked returns how long to wait when any key has used up its failures.
func (l *loginLimiter) blocked(keys ...string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		e, ok := l.entries[k]
		if !ok || !now.Before(e.start.Add(l.window)) {
			continue
		}
		if e.failures >= l.allowed {
			wait = max(wait, e.start.Add(l.window).Sub(now))
		}
	}
	return wait, wait > 0
}

// fail counts one failure against each key.
func (l *loginLimiter) fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		e, ok := l.entries[k]
		if !ok || !now.Before(e.start.Add(l.window)) {
			l.makeRoom()
			e = limitEntry{start: now}
		}
		e.failures++
		l.entries[k] = e
	}
}

// forget clears a key (a successful login clears its user name).
func (l *loginLimiter) forget(key string) {
	l.mu.Lock()
	delete(l.entries, key)
	l.mu.Unlock()
}

// makeRoom keeps the map under capacity: expired entries go first; if every
// entry is live (a flood from many addresses), the oldest goes, which can only
// shorten someone's wait, never lock out a user who did nothing.
func (l *loginLimiter) makeRoom() {
	if len(l.entries) < l.capacity {
		return
	}
	now := l.now()
	for k, e := range l.entries {
		if !now.Before(e.start.Add(l.window)) {
			delete(l.entries, k)
		}
	}
	for len(l.entries) >= l.capacity {
		var oldestKey string
		var oldest time.Time
		for k, e := range l.entries {
			if oldestKey == "" || e.start.Before(oldest) {
				oldestKey, oldest = k, e.start
			}
		}
		delete(l.entries, oldestKey)
	}
}

func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// clientAddress is the limiter's key for the client: its IP address, or its
// /64 for IPv6, since one host usually holds a whole /64. X-Forwarded-For is
// not trusted: anyone can send it.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "addr:" + host
	}
	if ip.To4() == nil {
		ip = ip.Mask(net.CIDRMask(64, 128))
	}
	return "addr:" + ip.String()
}
