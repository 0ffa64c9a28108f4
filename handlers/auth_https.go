package handlers

import (
	"net"
	"net/http"
	"strings"
)

// cookieWarning explains a login that cannot stick: with --secure-cookies the
// session cookie is marked Secure, and a browser drops a Secure cookie set
// over plain HTTP, so every sign-in lands back on the login page with no
// word of why. A request is plain HTTP to the browser when it came without
// TLS and no proxy in front says X-Forwarded-Proto: https (a TLS-terminating
// proxy, the setup --secure-cookies is for, sets it). Loopback addresses are
// left out: browsers treat http://localhost and 127.0.0.1 as secure and keep
// Secure cookies there.
func (s *Server) cookieWarning(r *http.Request) string {
	if !s.cfg.SecureCookies || r.TLS != nil || strings.EqualFold(strings.TrimSpace(firstForwarded(r.Header.Get("X-Forwarded-Proto"))), "https") ||
		loopbackHost(r.Host) {
		return ""
	}
	return "This server marks its login cookie Secure (--secure-cookies), which needs HTTPS: over plain HTTP, as this page came, " +
		"your browser drops the cookie and every sign-in returns here. Open the dashboard through its TLS proxy (https://…), " +
		"or, on a trusted network without TLS, restart the server without --secure-cookies."
}

// firstForwarded is the first entry of a comma-separated forwarded header
// (the proxy nearest the browser).
func firstForwarded(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return first
}

// loopbackHost reports whether a Host header names this machine's loopback
// ("localhost", 127.0.0.0/8, ::1), with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
