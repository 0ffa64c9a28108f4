package handlers

import "net/http"

// contentSecurityPolicy allows nothing inline and nothing from elsewhere: the
// dashboard's scripts, styles and images all come from this server, so an
// injected <script> or style attribute (say, through a comment) does not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// securityHeaders sets the browser protections on every response, errors and
// redirects included.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP 2
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// crossOriginProtection refuses state-changing requests that a browser sends
// on behalf of another site (CSRF), using the Fetch metadata the browser
// attaches (Sec-Fetch-Site, else Origin against Host). Reads pass; so do
// requests without those headers, which no browser makes: scripts with API
// tokens are not at risk of being forged.
func (s *Server) crossOriginProtection(next http.Handler) http.Handler {
	return s.auth.csrf.Handler(next)
}
