package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deltascope/deltascope/internal/hostile"
)

// clientFrom is an HTTP client whose connections come from ip (any 127.x.y.z
// reaches the test server on Linux), so the server counts it as another
// client address.
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func postFrom(t *testing.T, c *http.Client, url, body string) (code int, retryAfter string, resp map[string]any) {
	t.Helper()
	r, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, "", nil
	}
	defer r.Body.Close()
	data, _ := io.ReadAll(r.Body)
	json.Unmarshal(data, &resp)
	return r.StatusCode, r.Header.Get("Retry-After"), resp
}

// TestPreviewSlotsBoundHeaderWork (issue 14 follow-up): the header slots are
// given back once a file is parsed, so before this the requests that then
// hold both sides and align them ran without bound — three previews of two
// files at the limits (65,536 tensors, 200-byte names, a 16.5 MB header)
// took the server to 476 MB RSS. Now a preview or a create holds one of
// Guard.MaxPreviews slots (one per user) from its first header to its last
// suggestion: with the slots taken, a request is refused with 429 and
// Retry-After naming the limit (global, then per user); six concurrent
// previews from three addresses all succeed in turn, at a peak heap of at
// most ~2 previews' (it was ~6 without the cap).
func TestPreviewSlotsBoundHeaderWork(t *testing.T) {
	l := startLiveServer(t, testServerOptions{})
	for _, name := range []string{"a.safetensors", "b.safetensors"} {
		hostile.WriteFile(t, filepath.Join(l.root, name), hostile.ManyTensorsSafetensors(65_536, 200))
	}
	const body = `{"base": ["a.safetensors"], "vla": ["b.safetensors"]}`
	url := l.URL + "/api/preview"
	slots := l.srv.previewSlots
	if slots.max != 2 || slots.perUser != 1 {
		t.Fatalf("default preview slots %d, %d per user; want 2, 1", slots.max, slots.perUser)
	}

	// Every slot taken (by two other users): refused after the wait.
	slots.wait = 50 * time.Millisecond
	ctx := context.Background()
	r1, _ := slots.acquire(ctx, "user:901")
	r2, _ := slots.acquire(ctx, "user:902")
	local := clientFrom(t, "127.0.0.1")
	for _, path := range []string{"/api/preview", "/api/analyses"} {
		code, retry, resp := postFrom(t, local, l.URL+path, body)
		if msg := fmt.Sprint(resp["error"]); code != http.StatusTooManyRequests || retry == "" || !strings.Contains(msg, "(limit 2)") {
			t.Errorf("%s with every preview slot taken: %d, Retry-After %q, %q; want 429 with Retry-After and the limit", path, code, retry, msg)
		}
	}
	// One free, but this client already holds one: refused per user.
	r2()
	r3, _ := slots.acquire(ctx, "addr:127.0.0.1")
	code, retry, resp := postFrom(t, local, url, body)
	if msg := fmt.Sprint(resp["error"]); code != http.StatusTooManyRequests || retry == "" || !strings.Contains(msg, "(limit 1 per user)") {
		t.Errorf("second preview of one client: %d, Retry-After %q, %q; want 429 per user", code, retry, msg)
	}
	r1()
	r3()
	if slots.running != 0 || len(slots.byUser) != 0 {
		t.Fatalf("slots not given back: %d running, %v", slots.running, slots.byUser)
	}

	// One preview alone, then six at once from three addresses: the latter
	// wait their turn (none is refused) and keep the heap to about two.
	slots.wait = 5 * time.Minute
	var code1 int
	one := hostile.Measure(func() { code1, _, _ = postFrom(t, local, url, body) })
	if code1 != http.StatusOK {
		t.Fatalf("one preview: %d", code1)
	}
	const n = 6
	codes := make([]int, n)
	six := hostile.Measure(func() {
		var wg sync.WaitGroup
		for i := range n {
			c := clientFrom(t, fmt.Sprintf("127.0.0.%d", 1+i%3))
			wg.Go(func() { codes[i], _, _ = postFrom(t, c, url, body) })
		}
		wg.Wait()
	})
	t.Logf("one preview: %v; %d at once: %v (%.1f×); codes %v", one, n, six, float64(six.Peak)/float64(one.Peak), codes)
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("preview %d of %d: %d, want 200 after waiting its turn", i+1, n, c)
		}
	}
	if six.Peak > 3*one.Peak {
		t.Errorf("%d previews at once peaked at +%d MB of heap, one alone at +%d MB: want at most 3× (two run at once)", n, six.Peak>>20, one.Peak>>20)
	}
	if slots.running != 0 {
		t.Errorf("%d preview slots still taken", slots.running)
	}
}
