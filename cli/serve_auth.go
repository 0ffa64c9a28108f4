package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/deltascope/deltascope/handlers"
	"github.com/deltascope/deltascope/store"
)

// serveAuth are the serve flags that decide who may use the server.
type serveAuth struct {
	mode          *string
	secureCookies *bool
	origins       *[]string
}

func addAuthFlags(fs *flagSet) *serveAuth {
	return &serveAuth{
		mode:          fs.String("auth", "none", "authentication: none (loopback only; everyone is admin) or accounts (see deltascope user)"),
		secureCookies: fs.Bool("secure-cookies", "mark login cookies Secure even on plain HTTP (set it behind a TLS-terminating proxy)"),
		origins:       fs.List("trusted-origin", "another origin allowed to send state-changing browser requests, e.g. https://deltascope.lab.example (repeatable)"),
	}
}

// apply checks the flags against the listen address and fills cfg. Without
// accounts anyone who reaches the port could read every checkpoint and start
// analyses, so auth none only listens on loopback.
func (a *serveAuth) apply(addr string, cfg *handlers.Config) error {
	mode, err := handlers.ParseAuthMode(*a.mode)
	if err != nil {
		return fmt.Errorf("serve: --auth: %v", err)
	}
	for _, o := range *a.origins {
		if err := handlers.CheckTrustedOrigin(o); err != nil {
			return fmt.Errorf("serve: --trusted-origin %q: %v", o, err)
		}
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("serve: --addr %q: %v", addr, err)
	}
	if mode == handlers.AuthNone && !isLoopback(host) {
		return fmt.Errorf("serve: --addr %s is not a loopback address; without accounts anyone who reaches it could read your checkpoints (use --auth accounts)", addr)
	}
	cfg.Auth, cfg.SecureCookies, cfg.TrustedOrigins = mode, *a.secureCookies, *a.origins
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// warn tells the operator, once at start, what would make accounts useless or
// unsafe: nobody to log in, or passwords and cookies crossing a network in
// clear text.
func (a *serveAuth) warn(ctx context.Context, db *store.DB, addr string, log *slog.Logger) {
	if *a.mode != string(handlers.AuthAccounts) {
		return
	}
	if n, err := db.CountUsers(ctx); err == nil && n == 0 {
		log.Warn("no accounts yet: nobody can log in; create an admin with `deltascope user add NAME --role admin`")
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && !isLoopback(host) && !*a.secureCookies {
		log.Warn("serving accounts over plain HTTP on a network address: put deltascope behind a TLS proxy and pass --secure-cookies")
	}
}
