// Package s3test runs a real S3 server for tests: the Versity S3 Gateway
// (github.com/versity/versitygw, installed by .ci/run with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`) in posix mode
// over a temporary folder, on a free loopback port. Without the binary a test
// is skipped with a message, except under CI=true, where that is a failure:
// CI must exercise the real server.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is one running gateway.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Access   string
	Secret   string
	Client   *minio.Client
}

// Binary finds versitygw on PATH or in $(go env GOPATH)/bin.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "versitygw not found on PATH or in $(go env GOPATH)/bin; install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs a gateway over a fresh folder until the test ends, and points the
// AWS_* variables of the test at it (so s3:// sources resolve to it).
func Start(t *testing.T) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{Access: "deltascope-test", Secret: "deltascope-test-secret-key"}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var logs bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--port", addr, "--access", s.Access, "--secret", s.Secret, "--quiet", "posix", dir)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if waitListening(addr, exited) {
			t.Cleanup(func() { cancel(); <-exited })
			s.Endpoint = "http://" + addr
			break
		}
		cancel()
		<-exited
		lastErr = fmt.Errorf("versitygw did not start on %s: %s", addr, logs.String())
	}
	if s.Endpoint == "" {
		t.Fatal(lastErr)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.Secret)
	t.Setenv("AWS_ENDPOINT_URL", s.Endpoint)
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_REGION", "us-east-1")
	c, err := minio.New(strings.TrimPrefix(s.Endpoint, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(s.Access, s.Secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	s.Client = c
	return s
}

func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(t testing.TB, bucket string) {
	t.Helper()
	if err := s.Client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Put uploads a local file as bucket/key.
func (s *Server) Put(t testing.TB, bucket, key, path string) {
	t.Helper()
	if _, err := s.Client.FPutObject(context.Background(), bucket, key, path, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("uploading %s as s3://%s/%s: %v", path, bucket, key, err)
	}
}

// PutBytes uploads data as bucket/key.
func (s *Server) PutBytes(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := s.Client.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("uploading s3://%s/%s: %v", bucket, key, err)
	}
}

// PutDir uploads every regular file directly in dir under prefix/.
func (s *Server) PutDir(t testing.TB, bucket, prefix, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			s.Put(t, bucket, prefix+"/"+e.Name(), filepath.Join(dir, e.Name()))
		}
	}
}
