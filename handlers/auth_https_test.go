package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The login page says when --secure-cookies cannot work: over plain HTTP (no
// TLS, no proxy saying https) the browser drops the Secure cookie.
func TestLoginSecureCookiesOverPlainHTTP(t *testing.T) {
	for _, c := range []struct {
		name    string
		secure  bool
		host    string
		proto   string
		warning bool
	}{
		{"secure cookies, plain HTTP on the LAN", true, "192.168.1.20:8080", "", true},
		{"secure cookies, behind a TLS proxy", true, "lab.example", "https", false},
		{"secure cookies, proxy on http", true, "lab.example", "http", true},
		{"secure cookies, loopback (browsers keep them)", true, "127.0.0.1:8080", "", false},
		{"secure cookies, localhost", true, "localhost:8080", "", false},
		{"plain cookies", false, "192.168.1.20:8080", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newAuthFixture(t, Config{Auth: AuthAccounts, SecureCookies: c.secure, SessionTTL: time.Hour})
			req := f.request("GET", "/login", "", anonymous)
			req.Host = c.host
			if c.proto != "" {
				req.Header.Set("X-Forwarded-Proto", c.proto)
			}
			body := f.serve(req).Body.String()
			if got := strings.Contains(body, "needs HTTPS"); got != c.warning {
				t.Errorf("warning shown %v, want %v:\n%s", got, c.warning, body)
			}
		})
	}
}

// In a browser over plain HTTP with --secure-cookies, signing in returns to
// the login page (the browser drops the cookie), and the page says why. The
// server is reached by a name (lab.test, mapped to the loopback listener):
// a browser treats 127.0.0.1 itself as secure and would keep the cookie.
func TestBrowserLoginSecureCookiesLoop(t *testing.T) {
	ctx := newBrowser(t, chromedp.Flag("host-resolver-rules", "MAP lab.test 127.0.0.1"))
	f := newAuthFixture(t, Config{Auth: AuthAccounts, SecureCookies: true, SessionTTL: time.Hour})
	site := strings.Replace(f.url, "127.0.0.1", "lab.test", 1)
	browserDo(t, ctx, "open the dashboard", 20*time.Second, chromedp.Navigate(site+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)))
	if !browserEval[bool](t, ctx, `!!document.querySelector('[data-testid="cookie-warning"]')`) {
		t.Fatal("the login page over plain HTTP does not warn about --secure-cookies")
	}
	browserDo(t, ctx, "sign in", 20*time.Second,
		chromedp.SendKeys(chromedp.CSS(`#name`), "root"),
		chromedp.SendKeys(chromedp.CSS(`#password`), testPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	// The sign-in is a POST answered by a redirect: wait until it has left
	// the form behind (the password field is empty on the fresh page).
	browserWait(t, ctx, "back on the login page", `location.pathname === '/login' && document.readyState === 'complete' && document.querySelector('#password')?.value === ''`, 20*time.Second)
	text := browserEval[string](t, ctx, `document.querySelector('[data-testid="cookie-warning"]')?.textContent || ''`)
	if !strings.Contains(text, "needs HTTPS") || !strings.Contains(text, "--secure-cookies") {
		t.Errorf("after signing in: warning %q", text)
	}
}
