package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// countingTransport counts the response body bytes of every remote request,
// so a test can tell a header read from a download.
type countingTransport struct {
	bytes, requests atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.requests.Add(1)
		resp.Body = &countingBody{resp.Body, &c.bytes}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// fastRetries shortens the backoff for a test that exercises retries.
func fastRetries(t *testing.T) {
	old := remoteBackoff
	remoteBackoff = time.Millisecond
	t.Cleanup(func() { remoteBackoff = old })
}

func countRemote(t *testing.T) *countingTransport {
	c := &countingTransport{}
	remoteTransport = c
	t.Cleanup(func() { remoteTransport = nil })
	return c
}

// s3Fixtures starts a gateway holding the π0.5 fixtures: the sharded base
// folder under models/pi05/base, the single-file VLA as models/pi05/vla/model.safetensors.
func s3Fixtures(t *testing.T) *s3test.Server {
	s := s3test.Start(t)
	s.MakeBucket(t, "models")
	s.PutDir(t, "models", "pi05/base", testfixtures.Path("pi05", "base"))
	s.PutDir(t, "models", "pi05/vla", testfixtures.Path("pi05", "vla"))
	return s
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, _ := e.Info()
		n += info.Size()
	}
	return n
}

// sameTensors checks that a remote side lists the local side's tensors, at the
// same offsets, with the same bytes when read through the block cache.
func sameTensors(t *testing.T, local, remote *Side) {
	t.Helper()
	if len(local.Tensors) != len(remote.Tensors) || len(local.Tensors) == 0 {
		t.Fatalf("remote side has %d tensors, local %d", len(remote.Tensors), len(local.Tensors))
	}
	for i, l := range local.Tensors {
		r := remote.Tensors[i]
		if l.Name != r.Name || l.DType != r.DType || l.Offset != r.Offset || l.Size != r.Size || len(l.Shape) != len(r.Shape) {
			t.Fatalf("tensor %d: local %s %v @%d, remote %s %v @%d", i, l.Name, l.DType, l.Offset, r.Name, r.DType, r.Offset)
		}
		a, b := make([]byte, l.Size), make([]byte, r.Size)
		if err := l.ReadAt(a, 0); err != nil {
			t.Fatal(err)
		}
		// Read in uneven pieces, across block seams, as the engine's chunks do.
		for off := int64(0); off < r.Size; {
			n := min(r.Size-off, 100_003)
			if err := r.ReadAt(b[off:off+n], off); err != nil {
				t.Fatalf("%s: %v", r.Name, err)
			}
			off += n
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: remote bytes differ from the local file's", r.Name)
		}
	}
}

// TestS3HeadersOnly: opening a sharded folder and a single file from a real
// S3 server reads the index and the headers only — a small fraction of the
// objects — and then gives the local files' tensors and bytes.
func TestS3HeadersOnly(t *testing.T) {
	s3Fixtures(t)
	count := countRemote(t)
	for _, c := range []struct{ local, remote string }{
		{testfixtures.Path("pi05", "base"), "s3://models/pi05/base"},
		{testfixtures.Path("pi05", "vla", "model.safetensors"), "s3://models/pi05/vla/model.safetensors"},
	} {
		count.bytes.Store(0)
		remote, err := OpenSide([]string{c.remote}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer remote.Close()
		var total int64
		if info, _ := os.Stat(c.local); info.IsDir() {
			total = dirBytes(t, c.local)
		} else {
			total = info.Size()
		}
		if got := count.bytes.Load(); got == 0 || got > total/10 {
			t.Errorf("%s: opening fetched %d bytes of %d; want only the headers (under a tenth)", c.remote, got, total)
		}
		local, err := OpenSide([]string{c.local}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		if local.Sources[0].Format != remote.Sources[0].Format {
			t.Errorf("format %s, want %s", remote.Sources[0].Format, local.Sources[0].Format)
		}
		for _, f := range remote.Sources[0].Files {
			if !strings.HasPrefix(f.Path, "s3://models/pi05/") || !strings.HasPrefix(f.HeadSHA, "etag:") || len(f.HeadSHA) < 10 || f.Size <= 0 {
				t.Errorf("file identity %+v: want the s3:// path, its size and ETag", f)
			}
		}
		sameTensors(t, local, remote)
		if got := count.bytes.Load(); got < total*9/10 {
			t.Errorf("%s: reading every tensor fetched %d bytes of %d", c.remote, got, total)
		}
	}
}

// TestS3ChangedObject: an object rewritten after it was opened fails the next
// data read with a message that names it and says it changed, instead of
// mixing two versions' bytes.
func TestS3ChangedObject(t *testing.T) {
	s := s3Fixtures(t)
	src, err := OpenSource("s3://models/pi05/vla/model.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	data, err := os.ReadFile(testfixtures.Path("pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff // same size, same header, other bytes
	s.PutBytes(t, "models", "pi05/vla/model.safetensors", data)
	var big *Tensor
	for i := range src.Tensors {
		if big == nil || src.Tensors[i].Size > big.Size {
			big = &src.Tensors[i]
		}
	}
	err = big.ReadAt(make([]byte, big.Size), 0)
	if err == nil || !strings.Contains(err.Error(), "s3://models/pi05/vla/model.safetensors") || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("read after the object changed: %v; want an error naming it and saying it changed", err)
	}
}

// TestS3Missing: a missing key, an empty prefix and a missing bucket are
// clear errors that name the path.
func TestS3Missing(t *testing.T) {
	s3Fixtures(t)
	for _, c := range []struct{ path, want string }{
		{"s3://models/pi05/vla/nope.safetensors", "s3://models/pi05/vla/nope.safetensors: no such object"},
		{"s3://models/nothing-here", "s3://models/nothing-here: no such object or prefix"},
		{"s3://nobucket/x.safetensors", `no such bucket "nobucket"`},
		{"s3://models/pi05/../x", "'..' component"},
	} {
		_, err := OpenSource(c.path, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.path, err, c.want)
		}
	}
	// A store that cannot be reached: retried, then named.
	fastRetries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	t.Setenv("AWS_ENDPOINT_URL", "http://"+closed)
	_, err = OpenSource("s3://models/pi05/base", Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "s3://models/pi05/base: ") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unreachable store: %v", err)
	}
}

// TestS3Roots: on a server, remote sources are allowed only under an s3://
// root, by whole path components.
func TestS3Roots(t *testing.T) {
	s3Fixtures(t)
	roots := []string{t.TempDir(), "s3://models/pi05"}
	if src, err := OpenSource("s3://models/pi05/vla/model.safetensors", Options{Roots: roots}); err != nil {
		t.Fatalf("inside the s3 root: %v", err)
	} else {
		src.Close()
	}
	for _, p := range []string{"s3://models/pi050/x.safetensors", "s3://other/pi05/x.safetensors", "hf://org/repo/x.safetensors"} {
		_, err := OpenSource(p, Options{Roots: roots})
		var te *tensor.Error
		if !errors.As(err, &te) || !te.Forbidden || !strings.Contains(err.Error(), "outside the allowed sources") {
			t.Errorf("%s: %v; want a forbidden error", p, err)
		}
	}
	_, err := OpenSource("s3://models/pi05/vla/model.safetensors", Options{Roots: []string{t.TempDir()}})
	if err == nil || !strings.Contains(err.Error(), "--root s3://") {
		t.Errorf("a server with local roots only: %v; want a refusal that says how to allow s3", err)
	}
	// A local path is not allowed by an s3 root.
	_, err = OpenSource(filepath.Join(t.TempDir(), "x.safetensors"), Options{Roots: []string{"s3://models/pi05"}})
	if err == nil || !strings.Contains(err.Error(), "outside the allowed folders") {
		t.Errorf("local path under s3 roots only: %v", err)
	}
}

// TestS3Cancel: closing the source (or cancelling its context) stops a read
// in progress with an error rather than hanging.
func TestS3Cancel(t *testing.T) {
	s3Fixtures(t)
	ctx, cancel := context.WithCancel(context.Background())
	src, err := OpenSource("s3://models/pi05/base", Options{Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	cancel()
	tn := &src.Tensors[0]
	if err := tn.ReadAt(make([]byte, tn.Size), 0); err == nil || !strings.Contains(err.Error(), "s3://models/pi05/base/") {
		t.Fatalf("read after cancel: %v", err)
	}
}

// flakyTransport answers the first fail ranged GETs with the 503 SlowDown a
// busy S3 store sends, then passes requests to the real server.
type flakyTransport struct{ fail atomic.Int64 }

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Range") != "" && f.fail.Add(-1) >= 0 {
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestS3Transient: a store that throttles (503 SlowDown) is retried with
// backoff until it answers; one that keeps failing is an error naming the object.
func TestS3Transient(t *testing.T) {
	s3Fixtures(t)
	fastRetries(t)
	flaky := &flakyTransport{}
	remoteTransport = flaky
	t.Cleanup(func() { remoteTransport = nil })
	flaky.fail.Store(2)
	src, err := OpenSource("s3://models/pi05/vla/model.safetensors", Options{})
	if err != nil {
		t.Fatalf("open through 2 throttled answers: %v", err)
	}
	defer src.Close()
	if n := flaky.fail.Load(); n > 0 {
		t.Fatalf("%d throttled answers left: not retried", n)
	}
	src2, err := OpenSource("s3://models/pi05/vla/model.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	flaky.fail.Store(1000)
	tn := &src2.Tensors[0]
	err = tn.ReadAt(make([]byte, tn.Size), 0)
	if err == nil || !strings.Contains(err.Error(), "s3://models/pi05/vla/model.safetensors") || !strings.Contains(err.Error(), "reduce your request rate") {
		t.Fatalf("read from a store that keeps throttling: %v", err)
	}
	if used := 1000 - flaky.fail.Load(); used != remoteRetries {
		t.Errorf("%d attempts; want %d", used, remoteRetries)
	}
}

// TestS3ReadaheadFetchesOnce: four readers stream four 41 MiB tensors of one
// object at once, in the engine's 256 KiB chunks — more readahead than the
// cache holds — and no prefetched block is evicted unread and fetched again
// (with plain LRU they fetched 1.8× the object), and the bytes come back right.
func TestS3ReadaheadFetchesOnce(t *testing.T) {
	s := s3test.Start(t)
	s.MakeBucket(t, "big")
	const n, elems = 4, 41 << 18 // 41 MiB of F32 each: blocks straddle tensors
	header := map[string]any{}
	for i := range n {
		header[fmt.Sprintf("t%d", i)] = map[string]any{"dtype": "F32", "shape": []int{elems}, "data_offsets": []int{i * elems * 4, (i + 1) * elems * 4}}
	}
	js, _ := json.Marshal(header)
	js = append(js, bytes.Repeat([]byte(" "), (8-len(js)%8)%8)...)
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	file = append(file, js...)
	data := make([]byte, n*elems*4)
	for i := range data {
		data[i] = byte(i*7 + i>>16)
	}
	file = append(file, data...)
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Put(t, "big", "big.safetensors", path)
	count := countRemote(t)
	src, err := OpenSource("s3://big/big.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range src.Tensors {
		tn := &src.Tensors[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for off := int64(0); off < tn.Size; off += int64(len(buf)) {
				b := buf[:min(int64(len(buf)), tn.Size-off)]
				if err := tn.ReadAt(b, off); err != nil {
					errs <- err
					return
				}
				start := tn.Offset + off - int64(8+len(js))
				if !bytes.Equal(b, data[start:start+int64(len(b))]) {
					errs <- fmt.Errorf("%s: wrong bytes at %d", tn.Name, off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A block two tensors share may be read by one reader, evicted, and read
	// again by the other much later: one block per seam at most.
	if got := count.bytes.Load(); got > int64(len(file))+headBytes+(n-1)*blockSize {
		t.Errorf("fetched %d bytes for a %d-byte object: prefetched blocks were evicted unread and fetched again", got, len(file))
	}
}
