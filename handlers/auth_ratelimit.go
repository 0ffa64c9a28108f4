package handlers

import (
	"net"
	"net/http"
	"time"

	"github.com/go-chi/httprate"
)

// Login rate limits (github.com/go-chi/httprate, sliding windows). Every
// attempt is counted before the password is checked, in the same step as the
// check, so concurrent guesses cannot all slip past a count that bcrypt has
// not yet updated. Attempts are limited per (name, client address) and per
// client address, each with a fast window and a slower hourly one (the
// backoff): one client can neither guess one password quickly nor try many
// names, and nobody can lock an account out from an address of their own.
// An admin's unlock (user unlock NAME, POST /api/users/{name}/unlock) starts
// the account's counts afresh.
var (
	loginNameLimits = []limitTier{{5, time.Minute}, {20, time.Hour}}
	loginAddrLimits = []limitTier{{30, time.Minute}, {200, time.Hour}}
)

type limitTier struct {
	n      int
	window time.Duration
}

// loginLimiter holds the limiters of the tiers above.
type loginLimiter struct {
	byName, byAddr []*httprate.RateLimiter
}

func newLoginLimiter() *loginLimiter {
	l := &loginLimiter{}
	for _, t := range loginNameLimits {
		l.byName = append(l.byName, httprate.NewRateLimiter(t.n, t.window))
	}
	for _, t := range loginAddrLimits {
		l.byAddr = append(l.byAddr, httprate.NewRateLimiter(t.n, t.window))
	}
	return l
}

// attempt counts one login attempt for (name, address) and for the address,
// and says false when a limit refuses it; httprate then has set Retry-After.
// The name's tiers come first: a client hammering one name is refused there
// without using up its address's allowance.
func (l *loginLimiter) attempt(w http.ResponseWriter, r *http.Request, nameKey, addrKey string) bool {
	for _, rl := range l.byName {
		if rl.OnLimit(w, r, nameKey+"|"+addrKey) {
			return false
		}
	}
	for _, rl := range l.byAddr {
		if rl.OnLimit(w, r, addrKey) {
			return false
		}
	}
	return true
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
