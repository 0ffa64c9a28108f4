package checkpoint

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestListRemoteStopsWithItsContext: a store or Hub that takes a request and
// never answers holds a listing only until its context ends (a client that
// left the picker): it returns within a second of the cancel, with the
// context's error, for S3 (minio's listing) and the Hub (the revision and
// tree requests).
func TestListRemoteStopsWithItsContext(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hang)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("HF_ENDPOINT", srv.URL)
	for _, c := range []struct{ root, rel string }{{"s3://models/runs", "pi05"}, {"hf://lab", "pi05/base"}} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := ListRemote(ctx, c.root, c.rel, "", 10)
		took := time.Since(start)
		if !errors.Is(err, context.Canceled) && (err == nil || ctx.Err() == nil) {
			t.Errorf("%s: %v; want the cancel's error", c.root, err)
		}
		if took > 1200*time.Millisecond {
			t.Errorf("%s: listing took %v after a cancel at 200 ms; want under a second more", c.root, took)
		}
	}
}

// TestListRemoteRefusesOtherRoots: the path is joined to its root on whole
// components, so neither ".." nor a sibling with the same first letters is
// reached, and only remote roots are listed here.
func TestListRemoteRefusesOtherRoots(t *testing.T) {
	if _, err := ListRemote(context.Background(), "/data", "x", "", 10); err == nil {
		t.Error("a local root listed as a remote one")
	}
	if _, err := ListRemote(context.Background(), "s3://", "", "", 10); err == nil {
		t.Error("s3:// without a bucket listed")
	}
}

func TestNextCursor(t *testing.T) {
	for link, want := range map[string]string{
		`<https://huggingface.co/api/models/a/b/tree/main?cursor=ZXlK&expand=false>; rel="next"`: "ZXlK",
		`<https://x/prev?cursor=p>; rel="prev", <https://x/next?cursor=n%3D>; rel="next"`:        "n=",
		`<https://x/last?cursor=l>; rel="last"`:                                                  "",
		``:                                                                                       "",
	} {
		if got := nextCursor(link); got != want {
			t.Errorf("nextCursor(%q) = %q; want %q", link, got, want)
		}
	}
}
