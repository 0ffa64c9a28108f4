package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deltascope/deltascope/store"
)

// The heavy-read finding of issue 14: /api/analyses/{id}/tensors?rows=1 of a
// 7B analysis is 16.7 MB of JSON, and 30 at once held 1.4 GB. Here a
// TinyLlama-shaped analysis gives a listing of similar size; 30 clients ask
// for it at once. The listing is streamed (one tensor in memory at a time)
// and at most MaxHeavyReads run together, so the heap stays near one
// listing's size, every client gets the whole listing, and /healthz answers
// meanwhile. A client that stops reading is cut off, and past the wait a
// listing is refused with 429.
func TestHeavyReadsAreStreamedAndBounded(t *testing.T) {
	var id string
	var slowNet atomic.Bool // from the stall part on
	l := startLiveServer(t, testServerOptions{
		prepare: bigShapeOnlyAnalysis(t, &id),
		limited: true,
		config: func(c *Config) {
			c.Guard = Guard{MaxHeavyReads: 4, ExportWait: 30 * time.Second, ExportStall: time.Second}
		},
		// Small socket buffers, as over a slow network: a client that stops
		// reading blocks the server's writes within kilobytes, not megabytes.
		tweak: func(hs *http.Server) {
			track := hs.ConnState
			hs.ConnState = func(c net.Conn, st http.ConnState) {
				if tc, ok := c.(*net.TCPConn); ok && st == http.StateNew && slowNet.Load() {
					tc.SetWriteBuffer(16 << 10)
				}
				track(c, st)
			}
		},
	})
	began := time.Now()
	srv, ts := l.srv, l.Server
	url := ts.URL + "/api/analyses/" + id + "/tensors?rows=1"

	// One listing, whole and the same as the store's.
	resp, err := quickClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tensors []struct {
			VLA      string    `json:"vla"`
			RowDelta []float32 `json:"row_delta_norm"`
		} `json:"tensors"`
		VLAOnly []string `json:"vla_only"`
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("listing: %d %v", resp.StatusCode, err)
	}
	want, err := l.db.Tensors(context.Background(), id, store.TensorFilter{WithArrays: true})
	if err != nil || len(got.Tensors) != len(want) || got.VLAOnly == nil {
		t.Fatalf("%d tensors listed, the store has %d (%v); vla_only %v", len(got.Tensors), len(want), err, got.VLAOnly)
	}
	for i := range want {
		if got.Tensors[i].VLA != want[i].VLA || len(got.Tensors[i].RowDelta) != len(want[i].RowDelta) {
			t.Fatalf("tensor %d: %s with %d rows, want %s with %d", i, got.Tensors[i].VLA, len(got.Tensors[i].RowDelta), want[i].VLA, len(want[i].RowDelta))
		}
	}
	size := len(raw)
	raw, want, got.Tensors = nil, nil, nil

	// 30 at once, the heap sampled throughout. What is measured is what the
	// listings hold, not garbage waiting for the collector: with the default
	// GOGC the heap may grow by as much as is live before a collection, and
	// what earlier tests of the package left live (the process-wide block
	// cache of remote reads, say) would let garbage alone pass the bound.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	const clients = 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, n := 0, int64(0)
			if resp, err := quickClient.Get(url); err == nil {
				n, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			if n != int64(size) {
				code = -code
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	healthy := true
	other := otherClient()
	for i := 0; i < 5; i++ {
		if resp, err := other.Get(ts.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
			healthy = false
		} else {
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("%d concurrent listings of %.1f MB: %v; heap in use %d MB → peak %d MB (+%d MB)", clients, float64(size)/(1<<20), codes, base.HeapInuse>>20, peak.Load()>>20, growth>>20)
	if codes[200] != clients {
		t.Errorf("%d concurrent listings: %v, want all 200 and whole", clients, codes)
	}
	if !healthy {
		t.Error("/healthz failed during the listings")
	}
	if growth > int64(2*size)+32<<20 {
		t.Errorf("the heap grew by %d MB serving %d listings of %d MB", growth>>20, clients, size>>20)
	}

	t.Logf("set-up and 30 listings: %v", time.Since(began).Round(time.Millisecond))
	// A client that stops reading holds a slot until the stall timeout; past
	// the wait, others get 429.
	srv.guard.g.ExportWait = 200 * time.Millisecond
	slowNet.Store(true)
	// Four listings whose clients never read past the headers (their
	// connections stay open until the test ends).
	for range 4 {
		c, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(16 << 10)
		defer c.Close()
		fmt.Fprintf(c, "GET /api/analyses/%s/tensors?rows=1 HTTP/1.1\r\nHost: x\r\n\r\n", id)
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a listing that will stall: %v %v", resp, err)
		}
	}
	resp, err = other.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a listing while 4 stall: %d, want 429 with Retry-After", resp.StatusCode)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := other.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled listings were never cut off")
		}
	}
	t.Logf("all: %v", time.Since(began).Round(time.Millisecond))
}
