package handlers

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// Each limit answers with its status and a message that says what was hit.
func TestLimitsAnswerClearly(t *testing.T) {
	for _, c := range []struct {
		name         string
		cfg          func(*Config)
		method, path string
		body         string
		status       int
		want         string
	}{
		{"upload size", func(c *Config) { c.MaxUploadBytes = 1000 }, "POST", "/api/uploads",
			`{"side": "base", "path": "big.safetensors", "size": 1001}`, 413, "big.safetensors is 1001 bytes; this server accepts files up to 1000 bytes"},
		{"JSON body", func(c *Config) { c.MaxJSONBody = 100 }, "POST", "/api/analyses",
			`{"base": ["` + strings.Repeat("x", 200) + `"], "vla": ["y"]}`, 413, "request body larger than 100 bytes"},
		{"header size", func(c *Config) { c.Limits = checkpoint.Limits{MaxHeaderBytes: 64} }, "POST", "/api/preview",
			fixturePair, 400, "exceeds the limit of 64 bytes"},
		{"tensors", func(c *Config) { c.Limits = checkpoint.Limits{MaxTensors: 3} }, "POST", "/api/analyses",
			fixturePair, 400, "the limit"},
		{"shards", func(c *Config) { c.Limits = checkpoint.Limits{MaxShards: 2} }, "POST", "/api/preview",
			fixturePair, 400, "4 shards exceed the limit of 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newGuardedServer(t, false, c.cfg)
			code, body := s.quick(t, c.method, c.path, c.body)
			if code != c.status || !strings.Contains(body, c.want) {
				t.Errorf("%d %s, want %d with %q", code, body, c.status, c.want)
			}
		})
	}
}

func TestQueueLimit(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) { c.Guard.MaxQueuedAnalyses = 2 })
	for i := range 2 {
		if code, body := s.quick(t, "POST", "/api/analyses", fixturePair); code != 202 {
			t.Fatalf("analysis %d: %d %s", i, code, body)
		}
	}
	code, body := s.quick(t, "POST", "/api/analyses", fixturePair)
	if code != 429 || !strings.Contains(body, "2 analyses are already waiting (limit 2)") {
		t.Errorf("third analysis: %d %s", code, body)
	}
	if n := s.analysisRows(t); n != 2 {
		t.Errorf("%d analyses recorded, want 2", n)
	}
}

// A chunk being received holds a slot; past the limit, chunks get 429.
func TestConcurrentUploadLimits(t *testing.T) {
	for _, c := range []struct {
		name  string
		guard Guard
		want  string
	}{
		{"server-wide", Guard{MaxUploads: 1, MaxUploadsPerClient: 5}, "(limit 1); retry shortly"},
		{"per client", Guard{MaxUploads: 5, MaxUploadsPerClient: 1}, "(limit 1 per client)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newGuardedServer(t, false, func(cfg *Config) { cfg.Guard = c.guard })
			_, a := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "a.bin", "size": 100}`)
			_, b := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "b.bin", "size": 100}`)
			body, send := io.Pipe()
			first := make(chan int)
			go func() {
				resp, err := s.patch(t, a["id"].(string), 0, body)
				if err != nil {
					first <- 0
					return
				}
				resp.Body.Close()
				first <- resp.StatusCode
			}()
			send.Write([]byte("0123456789"))
			// The first chunk holds its slot once its bytes reach the file; a
			// request sent before that could take the slot first.
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if info, err := os.Stat(filepath.Join(s.srv.tusDir(), a["id"].(string))); err == nil && info.Size() == 10 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the first chunk's bytes never reached the file")
				}
			}
			// A harmless request (a wrong offset answers 409) while it is received.
			var code int
			var msg string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if code, msg = s.sendUpload(t, b["id"].(string), 7, []byte("x")); code == 429 {
					break
				}
			}
			if code != 429 || !strings.Contains(msg, c.want) {
				t.Errorf("second chunk while the first is received: %d %s, want 429 with %q", code, msg, c.want)
			}
			send.Close()
			if got := <-first; got != 204 {
				t.Errorf("first chunk: %d", got)
			}
			if off := s.headOffset(t, a["id"].(string)); off != 10 {
				t.Errorf("first chunk confirmed %d bytes, want 10", off)
			}
			// The slot is free again.
			if code, msg := s.sendUpload(t, b["id"].(string), 0, []byte("x")); code != 204 {
				t.Errorf("after the first chunk ended: %d %s", code, msg)
			}
		})
	}
}

// A client that stops sending inside an upload chunk is cut off after the
// stall timeout; what arrived is confirmed and the upload resumes from it.
func TestUploadStallIsCutAndResumable(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) { c.Guard.UploadStall = 200 * time.Millisecond })
	_, u := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "notes.txt", "size": 20}`)
	id := u["id"].(string)
	body, send := io.Pipe()
	defer send.Close()
	go send.Write([]byte("0123456789"))
	resp, err := s.patch(t, id, 0, body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 408 || !strings.Contains(string(msg), "no bytes arrived for 200ms; what arrived is saved") {
		t.Errorf("stalled chunk: %d %s", resp.StatusCode, msg)
	}
	if off := s.headOffset(t, id); off != 10 {
		t.Errorf("HEAD after the stall: offset %d, want 10", off)
	}
	if code, msg := s.sendUpload(t, id, 10, []byte("abcdefghij")); code != 204 {
		t.Fatalf("resume: %d %s", code, msg)
	}
	if data, _ := os.ReadFile(u["spec_path"].(string)); string(data) != "0123456789abcdefghij" {
		t.Errorf("stored %q", data)
	}
}

// A JSON body that trickles in is cut off after the body timeout.
func TestSlowJSONBodyIsCut(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) { c.Guard.BodyTimeout = 200 * time.Millisecond })
	body, send := io.Pipe()
	defer send.Close()
	go send.Write([]byte(`{"base": [`))
	resp, err := quickClient.Post(s.URL+"/api/analyses", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 408 || !strings.Contains(string(msg), "did not arrive within 200ms") {
		t.Errorf("slow body: %d %s", resp.StatusCode, msg)
	}
}

// A slowloris client, sending its headers a byte at a time, is disconnected
// by the header timeout while other clients are served.
func TestSlowlorisIsDisconnected(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) { c.Guard.HeaderTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hang := time.Now().Add(20 * time.Second) // a guard against hanging, not a timing check
	conn.SetDeadline(hang)
	disconnected := false
	partial := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
	for i := 0; i < len(partial) && !disconnected; i++ {
		if _, err := conn.Write([]byte{partial[i]}); err != nil {
			disconnected = true
			break
		}
		// A closed connection shows as EOF (or a 408) on read.
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		var buf [256]byte
		n, err := conn.Read(buf[:])
		switch {
		case n > 0 && strings.Contains(string(buf[:n]), "200 OK"):
			t.Fatal("the slow request was served")
		case n > 0, errors.Is(err, io.EOF), err != nil && !os.IsTimeout(err):
			disconnected = true
		}
		if time.Now().After(hang) {
			break
		}
	}
	if !disconnected {
		t.Fatal("the slowloris client was never disconnected")
	}
	if code, _ := s.quick(t, "GET", "/healthz", ""); code != 200 {
		t.Errorf("healthz beside the slow client: %d", code)
	}
}

// Drain (what Shutdown calls) makes a chunk being received stop, keep what
// arrived and answer 503; HEAD gives the offset to resume from.
func TestDrainConfirmsInFlightUpload(t *testing.T) {
	s := newGuardedServer(t, false, nil)
	_, u := s.do(t, "POST", "/api/uploads", `{"side": "base", "path": "notes.txt", "size": 100}`)
	id := u["id"].(string)
	body, send := io.Pipe()
	defer send.Close()
	done := make(chan *http.Response)
	go func() {
		resp, err := s.patch(t, id, 0, body)
		if err != nil {
			close(done)
			return
		}
		done <- resp
	}()
	send.Write([]byte("0123456789"))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		// tusd receives into <uploads>/.tus/<id> until the upload is complete.
		if info, err := os.Stat(filepath.Join(s.srv.tusDir(), id)); err == nil && info.Size() == 10 {
			break // the server has written them
		}
		if time.Now().After(deadline) {
			t.Fatal("the chunk's first bytes never reached the file")
		}
	}
	s.srv.Drain()
	resp, ok := <-done
	if !ok {
		t.Fatal("the chunk failed without an answer")
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := s.headOffset(t, id)
	if resp.StatusCode != 503 || got != 10 || !strings.Contains(string(msg), "the server is restarting; what arrived is saved") {
		t.Errorf("drained chunk: %d, HEAD offset %d, %s", resp.StatusCode, got, msg)
	}
	if code, msg := s.sendUpload(t, id, 10, make([]byte, 90)); code != 204 {
		t.Errorf("resume after the drain: %d %s", code, msg)
	}
}
