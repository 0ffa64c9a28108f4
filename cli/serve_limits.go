package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/handlers"
)

// serveLimits are the serve flags that bound what clients may send or hold.
// Sizes take K, M, G, T suffixes (powers of 1024); durations Go's form (90s,
// 5m) or days (7d).
type serveLimits struct {
	maxUpload, maxJSON, maxHeader                  *string
	maxTensors, maxShards                          *int
	maxQueued, maxUploads, maxUploadsPerClient     *int
	maxConnsPerClient, uploadQuotaCount            *int
	uploadQuota, uploadKeep                        *string
	headerTimeout, bodyTimeout, stall, expireAfter *string
}

func addLimitFlags(fs *flagSet) *serveLimits {
	d, g := checkpoint.DefaultLimits, handlers.DefaultGuard
	return &serveLimits{
		maxUpload:           fs.String("max-upload", "64G", "largest file one upload may declare"),
		maxJSON:             fs.String("max-json-body", "1M", "largest JSON request body"),
		maxHeader:           fs.String("max-header", strconv.FormatInt(d.MaxHeaderBytes, 10), "largest safetensors JSON header (real ones are 100-200 KB; the format allows 100000000)"),
		maxTensors:          fs.Int("max-tensors", d.MaxTensors, "most tensors one checkpoint source may hold"),
		maxShards:           fs.Int("max-shards", d.MaxShards, "most shard files in one checkpoint folder"),
		maxQueued:           fs.Int("max-queued", g.MaxQueuedAnalyses, "analyses that may wait in the queue; more are refused with 429"),
		maxUploads:          fs.Int("max-uploads", g.MaxUploads, "upload chunks received at once, server-wide (429 past it)"),
		maxUploadsPerClient: fs.Int("max-uploads-per-client", g.MaxUploadsPerClient, "upload chunks received at once from one client address"),
		maxConnsPerClient:   fs.Int("max-conns-per-client", g.MaxConnsPerClient, "connections one client address may hold open; more are answered 429 and closed"),
		headerTimeout:       fs.String("header-timeout", g.HeaderTimeout.String(), "time a client has to send its request headers"),
		bodyTimeout:         fs.String("body-timeout", g.BodyTimeout.String(), "time a client has to send a request body (upload chunks use --upload-stall)"),
		stall:               fs.String("upload-stall", g.UploadStall.String(), "longest pause inside an upload chunk before it is cut (what arrived is kept)"),
		expireAfter:         fs.String("upload-expiry", "7d", "unfinished uploads idle this long are removed"),
		uploadKeep:          fs.String("upload-keep", "30d", "finished uploads no analysis uses are removed after this long"),
		uploadQuotaCount:    fs.Int("upload-quota-count", g.MaxUploadsPerUser, "uploads one account may hold (429 past it)"),
		uploadQuota:         fs.String("upload-quota", "1T", "bytes one account's uploads may hold (507 past it)"),
	}
}

// config turns the flags into the server's limits, refusing nonsense.
func (l *serveLimits) config() (handlers.Config, error) {
	var cfg handlers.Config
	var err error
	sizes := []struct {
		flag, v string
		dst     *int64
	}{{"max-upload", *l.maxUpload, &cfg.MaxUploadBytes}, {"max-json-body", *l.maxJSON, &cfg.MaxJSONBody}, {"upload-quota", *l.uploadQuota, &cfg.Guard.MaxUploadBytesPerUser}, {"max-header", *l.maxHeader, &cfg.Limits.MaxHeaderBytes}}
	for _, s := range sizes {
		if *s.dst, err = parseSize(s.v); err != nil || *s.dst <= 0 {
			return cfg, fmt.Errorf("serve: --%s %q: give a positive size such as 512M or 64G", s.flag, s.v)
		}
	}
	if cfg.Limits.MaxHeaderBytes > safetensors.MaxHeaderLen {
		return cfg, fmt.Errorf("serve: --max-header: the safetensors format caps headers at %d bytes", safetensors.MaxHeaderLen)
	}
	cfg.Limits.MaxTensors, cfg.Limits.MaxShards = *l.maxTensors, *l.maxShards
	cfg.Limits.MaxPickleBytes = checkpoint.DefaultLimits.MaxPickleBytes
	cfg.Guard = handlers.Guard{MaxQueuedAnalyses: *l.maxQueued, MaxUploads: *l.maxUploads, MaxUploadsPerClient: *l.maxUploadsPerClient, MaxConnsPerClient: *l.maxConnsPerClient, MaxUploadsPerUser: *l.uploadQuotaCount,
		MaxUploadBytesPerUser: cfg.Guard.MaxUploadBytesPerUser}
	for name, n := range map[string]int{"max-tensors": *l.maxTensors, "max-shards": *l.maxShards, "max-queued": *l.maxQueued,
		"max-uploads": *l.maxUploads, "max-uploads-per-client": *l.maxUploadsPerClient, "max-conns-per-client": *l.maxConnsPerClient, "upload-quota-count": *l.uploadQuotaCount} {
		if n <= 0 {
			return cfg, fmt.Errorf("serve: --%s must be at least 1", name)
		}
	}
	durations := []struct {
		flag, v string
		dst     *time.Duration
	}{{"header-timeout", *l.headerTimeout, &cfg.Guard.HeaderTimeout}, {"body-timeout", *l.bodyTimeout, &cfg.Guard.BodyTimeout},
		{"upload-stall", *l.stall, &cfg.Guard.UploadStall}, {"upload-expiry", *l.expireAfter, &cfg.Guard.UploadExpiry},
		{"upload-keep", *l.uploadKeep, &cfg.Guard.UploadKeep}}
	for _, d := range durations {
		if *d.dst, err = parseDuration(d.v); err != nil || *d.dst <= 0 {
			return cfg, fmt.Errorf("serve: --%s %q: give a positive duration such as 30s, 5m or 7d", d.flag, d.v)
		}
	}
	return cfg, nil
}

// parseSize reads 123, 512K, 64M, 64G, 1T (also with "iB" or "B": powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGT", t[n-1]); i >= 0 {
			mult, t = int64(1)<<(10*(i+1)), t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// parseDuration is time.ParseDuration plus a whole number of days ("7d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
