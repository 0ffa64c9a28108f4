package cli

import (
	"strings"
	"testing"
	"time"
)

func TestServeLimitFlags(t *testing.T) {
	parse := func(args ...string) (*serveLimits, error) {
		fs := newFlagSet("serve", 0)
		l := addLimitFlags(fs)
		return l, fs.Parse(args)
	}
	l, _ := parse("--max-upload", "2G", "--max-json-body", "64KiB", "--max-tensors", "10", "--upload-expiry", "3d", "--header-timeout", "5s")
	cfg, err := l.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxUploadBytes != 2<<30 || cfg.MaxJSONBody != 64<<10 || cfg.Limits.MaxTensors != 10 ||
		cfg.Guard.UploadExpiry != 72*time.Hour || cfg.Guard.HeaderTimeout != 5*time.Second || cfg.Limits.MaxHeaderBytes != 16<<20 {
		t.Errorf("parsed %+v", cfg)
	}
	// The default header limit is 16 MiB (real headers are 100-200 KB; issue
	// 14); an admin may raise it up to the format's own cap, not past it.
	l, _ = parse("--max-header", "100000000")
	if cfg, err := l.config(); err != nil || cfg.Limits.MaxHeaderBytes != 100_000_000 {
		t.Errorf("--max-header 100000000: %v, %d", err, cfg.Limits.MaxHeaderBytes)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-upload", "lots"}, "--max-upload"},
		{[]string{"--max-upload", "0"}, "--max-upload"},
		{[]string{"--max-header", "100000001"}, "caps headers at 100000000 bytes"},
		{[]string{"--max-queued", "0"}, "--max-queued must be at least 1"},
		{[]string{"--upload-stall", "soon"}, "--upload-stall"},
		{[]string{"--body-timeout", "-1s"}, "--body-timeout"},
	} {
		l, err := parse(c.args...)
		if err == nil {
			_, err = l.config()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

// The issue-14 limits: connections per address and each account's upload quota.
func TestServeConnectionAndQuotaFlags(t *testing.T) {
	fs := newFlagSet("serve", 0)
	l := addLimitFlags(fs)
	if err := fs.Parse([]string{"--max-conns-per-client", "7", "--upload-quota", "10G", "--upload-quota-count", "5", "--upload-keep", "2d"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := l.config()
	if err != nil {
		t.Fatal(err)
	}
	if g := cfg.Guard; g.MaxConnsPerClient != 7 || g.MaxUploadBytesPerUser != 10<<30 || g.MaxUploadsPerUser != 5 || g.UploadKeep != 48*time.Hour {
		t.Errorf("guard %+v", g)
	}
}
