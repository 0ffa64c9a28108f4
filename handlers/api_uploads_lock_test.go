package handlers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tus "github.com/tus/tusd/v2/pkg/handler"

	"github.com/deltascope/deltascope/internal/pgtest"
)

// Two servers' upload lockers on one PostgreSQL database exclude each other
// per upload id, not across ids; an unlock frees the id for the other server
// at once, and a server that dies holding a lock (its connections end) holds
// nothing.
func TestUploadLockAcrossServers(t *testing.T) {
	url := pgtest.NewDB(t)
	newLocker := func() *uploadLocker {
		l, err := newUploadLocker(url, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		return l
	}
	a, b := newLocker(), newLocker()
	lock := func(l *uploadLocker, id string, wait time.Duration) (tus.Lock, error) {
		k, err := l.NewLock(id)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		return k, k.Lock(ctx, func() {})
	}
	held, err := lock(a, "upload-1", time.Second)
	if err != nil {
		t.Fatalf("A locks upload-1: %v", err)
	}
	start := time.Now()
	if _, err := lock(b, "upload-1", 300*time.Millisecond); !errors.Is(err, tus.ErrLockTimeout) {
		t.Fatalf("B locks upload-1 while A holds it: %v, want the lock timeout", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("B gave up after %v, before its timeout", waited)
	}
	other, err := lock(b, "upload-2", time.Second)
	if err != nil {
		t.Fatalf("B locks another upload: %v", err)
	}
	other.Unlock()

	// B waits; A's unlock lets it in well within its timeout.
	got := make(chan error, 1)
	var bLock tus.Lock
	go func() {
		k, err := lock(b, "upload-1", 10*time.Second)
		bLock = k
		got <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("B after A's unlock: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("B still waits 5 s after A unlocked")
	}
	bLock.Unlock()

	// A server that dies holding a lock: its connections end with it.
	dying, err := newUploadLocker(url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dying.Close)
	dead, err := lock(dying, "upload-3", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock(a, "upload-3", 200*time.Millisecond); !errors.Is(err, tus.ErrLockTimeout) {
		t.Fatalf("A locks upload-3 held by a live server: %v", err)
	}
	// What a killed process leaves: its connection closed, no Unlock.
	dead.(*sharedUploadLock).conn.Conn().Close(context.Background())
	dead.(*sharedUploadLock).conn.Release() // lets the pool close (it drops a closed connection)
	k, err := lock(a, "upload-3", 5*time.Second)
	if err != nil {
		t.Fatalf("A locks upload-3 after its holder died: %v", err)
	}
	k.Unlock()
}

// With the lock in PostgreSQL, a chunk that server B receives for an upload
// whose chunk server A is still receiving is not written beside it: B waits
// for the lock and answers tusd's lock timeout; A's chunk completes, and the
// upload resumes on B from A's offset.
func TestS3UploadChunkWaitsForOtherServer(t *testing.T) {
	url := pgtest.NewDB(t)
	s := startS3UploadServers(t, func(c *Config) { c.UploadLockDB = url })
	aliceA, aliceB := tusClient{s.a.URL, s.tokens["alice"]}, tusClient{s.b.URL, s.tokens["alice"]}
	data, err := os.ReadFile(filepath.Join(s.a.root, "pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	resp, loc, body := aliceA.create(t, int64(len(data)), "side", "vla", "path", "model.safetensors")
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	url0 := strings.TrimPrefix(loc, s.a.URL)

	// A receives a chunk whose body is still arriving.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", s.a.URL+url0, pr)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+s.tokens["alice"])
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	first := int64(len(data) / 2)
	req.ContentLength = first
	answered := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			answered <- nil
			return
		}
		resp.Body.Close()
		answered <- resp
	}()
	if _, err := pw.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // A holds the lock now

	resp, body = aliceB.patch(t, url0, 0, data)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, "ERR_LOCK_TIMEOUT") {
		t.Errorf("B's chunk while A receives one: %d %s, want tusd's lock timeout", resp.StatusCode, body)
	}
	if _, err := pw.Write(data[1000:first]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-answered; r == nil || r.StatusCode != 204 || r.Header.Get("Upload-Offset") != strconv.FormatInt(first, 10) {
		t.Fatalf("A's chunk: %v", r)
	}
	if code, off := aliceB.offset(t, url0); code != 200 || off != first {
		t.Fatalf("HEAD on B after A's chunk: %d offset %d, want %d", code, off, first)
	}
	if resp, body := aliceB.patch(t, url0, first, data[first:]); resp.StatusCode != 204 {
		t.Fatalf("the rest on B: %d %s", resp.StatusCode, body)
	}
}
