package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

var uploadFixture = testfixtures.Path("pi05", "vla", "model.safetensors")

// chunkUpload is one upload to a child server process.
type chunkUpload struct {
	id, file string
	// recv is where tusd receives the bytes (<data>/uploads/.tus/<id>) until
	// the upload completes and is linked at file.
	recv string
	data []byte
}

func (p *serverProcess) startUpload(t *testing.T) *chunkUpload {
	t.Helper()
	data, err := os.ReadFile(uploadFixture)
	if err != nil {
		t.Fatal(err)
	}
	u := p.post(t, "/api/uploads", fmt.Sprintf(`{"side": "vla", "path": "model.safetensors", "size": %d}`, len(data)))
	file := u["spec_path"].(string)
	recv := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(file))), ".tus", u["id"].(string))
	return &chunkUpload{id: u["id"].(string), file: file, recv: recv, data: data}
}

func (p *serverProcess) patchUpload(u *chunkUpload, offset int64, body io.Reader) (*http.Response, error) {
	req, _ := http.NewRequest("PATCH", p.url+"/api/uploads/"+u.id, body)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	return http.DefaultClient.Do(req)
}

func (p *serverProcess) offset(t *testing.T, u *chunkUpload) int64 {
	t.Helper()
	resp, err := http.Head(p.url + "/api/uploads/" + u.id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}
	return n
}

// slowChunk starts a chunk at offset whose body sends `first` bytes and then
// waits; it returns once the server has written them to the file.
func (p *serverProcess) slowChunk(t *testing.T, u *chunkUpload, offset, first int64) (*io.PipeWriter, chan *http.Response) {
	t.Helper()
	body, send := io.Pipe()
	answer := make(chan *http.Response, 1)
	go func() {
		resp, err := p.patchUpload(u, offset, body)
		if err != nil {
			close(answer)
			return
		}
		answer <- resp
	}()
	go send.Write(u.data[offset : offset+first])
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if info, err := os.Stat(u.recv); err == nil && info.Size() >= offset+first {
			return send, answer
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never wrote the chunk's first bytes")
		}
	}
}

// finish sends the rest from the server's offset and checks the stored file.
func (p *serverProcess) finish(t *testing.T, u *chunkUpload) {
	t.Helper()
	off := p.offset(t, u)
	resp, err := p.patchUpload(u, off, bytes.NewReader(u.data[off:]))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("last chunk from %d: %d %s", off, resp.StatusCode, msg)
	}
	if stored, _ := os.ReadFile(u.file); !bytes.Equal(stored, u.data) {
		t.Fatalf("stored file (%d bytes) differs from the original (%d bytes)", len(stored), len(u.data))
	}
}

func checkIntegrity(t *testing.T, data string) {
	t.Helper()
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Fatalf("integrity: %v", err)
	}
}

// SIGKILL in the middle of an upload chunk: the database is intact, and the
// upload resumes from the offset tusd reports after the restart (every byte on
// disk before it is the client's, in order) and completes.
func TestKilledDuringUploadResumes(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, "--data", data)
	u := srv.startUpload(t)
	const confirmed = 1 << 20
	resp, err := srv.patchUpload(u, 0, bytes.NewReader(u.data[:confirmed]))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("first chunk: %v %v", resp, err)
	}
	resp.Body.Close()
	send, _ := srv.slowChunk(t, u, confirmed, 300_000)
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.done
	send.Close()

	checkIntegrity(t, data)
	if info, _ := os.Stat(u.recv); info.Size() <= confirmed {
		t.Fatalf("the killed chunk left %d bytes; the test needs bytes past %d", info.Size(), confirmed)
	}
	srv = startServer(t, "--data", data)
	off := srv.offset(t, u)
	if off < confirmed || off > confirmed+300_000 {
		t.Fatalf("after the crash the upload is at %d, want between the confirmed %d and what was sent", off, confirmed)
	}
	if stored, _ := os.ReadFile(u.recv); int64(len(stored)) < off || !bytes.Equal(stored[:off], u.data[:off]) {
		t.Fatal("the bytes before the offset are not the client's")
	}
	srv.finish(t, u)
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-srv.done; err != nil {
		t.Errorf("SIGTERM exit: %v", err)
	}
}

// SIGTERM while a chunk is being received: the server stops reading it,
// keeps what arrived, answers 503, and exits 0; after a restart the upload
// resumes from there.
func TestTerminatedDuringUploadConfirms(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, "--data", data)
	u := srv.startUpload(t)
	const sent = 500_000
	send, answer := srv.slowChunk(t, u, 0, sent)
	defer send.Close()
	srv.cmd.Process.Signal(syscall.SIGTERM)
	resp, ok := <-answer
	if !ok {
		t.Fatal("the chunk got no answer")
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "the server is restarting") {
		t.Errorf("chunk at SIGTERM: %d %s; want 503", resp.StatusCode, body)
	}
	if err := <-srv.done; err != nil {
		t.Errorf("SIGTERM exit: %v", err)
	}
	checkIntegrity(t, data)
	srv = startServer(t, "--data", data)
	if off := srv.offset(t, u); off != sent {
		t.Errorf("after the restart the upload is at %d, want %d", off, sent)
	}
	srv.finish(t, u)
	if _, err := os.Stat(filepath.Join(data, "uploads")); err != nil {
		t.Error(err)
	}
}
