package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// remoteTransport, when set (by tests), carries every request to a remote
// backend: a counting transport shows how many bytes a header read fetched.
var remoteTransport http.RoundTripper

// s3Backend reads one bucket of an S3-compatible store (AWS, MinIO, Ceph,
// Versity) with minio-go. The endpoint and credentials come from the standard
// AWS variables, so the same environment that works for the aws CLI works here.
type s3Backend struct {
	core   minio.Core
	bucket string
}

// newS3Backend parses s3://BUCKET/KEY and connects a client from the environment:
// AWS_ENDPOINT_URL (http://host:port for MinIO/Ceph/Versity; AWS otherwise),
// AWS_REGION (or AWS_DEFAULT_REGION), and the credentials of AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY, ~/.aws/credentials (AWS_PROFILE), or an instance role.
func newS3Backend(p string) (remoteBackend, string, error) {
	rest := strings.TrimPrefix(p, "s3://")
	bucket, key, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return nil, "", errorf(p, "give a bucket: s3://BUCKET/KEY")
	}
	endpoint, secure := "s3.amazonaws.com", true
	lookup := minio.BucketLookupAuto
	e := os.Getenv("AWS_ENDPOINT_URL_S3") // the service-specific variable wins, as in the AWS SDKs
	if e == "" {
		e = os.Getenv("AWS_ENDPOINT_URL")
	}
	if e != "" {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, "", errorf(p, "AWS_ENDPOINT_URL %q is not an http(s)://HOST[:PORT] address", e)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
		// Self-hosted stores rarely have a wildcard DNS name per bucket.
		lookup = minio.BucketLookupPath
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}},
	})
	// MaxRetries 1: withRetry is the one retry policy (minio's own ten,
	// multiplied by ours, would keep a dead store's reader waiting minutes).
	opts := &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup, MaxRetries: 1}
	if remoteTransport != nil {
		opts.Transport = remoteTransport
	}
	client, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, "", errorf(p, "connecting to %s: %v", endpoint, err)
	}
	return &s3Backend{core: minio.Core{Client: client}, bucket: bucket}, strings.TrimSuffix(key, "/"), nil
}

func (b *s3Backend) display(key string) string { return "s3://" + b.bucket + "/" + key }

func (b *s3Backend) stat(ctx context.Context, key string) (remoteObject, error) {
	var info minio.ObjectInfo
	err := withRetry(ctx, func() error {
		var err error
		info, err = b.core.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
		return b.classify(key, err)
	})
	if err != nil {
		return remoteObject{}, err
	}
	return remoteObject{key: key, size: info.Size, etag: info.ETag}, nil
}

func (b *s3Backend) list(ctx context.Context, prefix string, max int) ([]string, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when we return early
	p := prefix
	if p != "" {
		p += "/"
	}
	var names []string
	for obj := range b.core.Client.ListObjects(lctx, b.bucket, minio.ListObjectsOptions{Prefix: p}) {
		if obj.Err != nil {
			return nil, b.classify(prefix, obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, p)
		if name == "" || strings.HasSuffix(name, "/") { // the folder marker, or a subfolder
			continue
		}
		if len(names) >= max {
			return nil, errorf(b.display(prefix), "more than %d objects under this prefix", max)
		}
		names = append(names, name)
	}
	return names, nil
}

// get reads one range with If-Match on the ETag seen when the source was opened,
// so an object rewritten during an analysis fails the read instead of mixing
// two versions' bytes; the answer's length and ETag are checked as well, for
// stores that ignore the condition.
func (b *s3Backend) get(ctx context.Context, obj remoteObject, dst []byte, off int64) error {
	if len(dst) == 0 {
		return nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(dst))-1); err != nil {
		return permanentError{err}
	}
	if obj.etag != "" {
		opts.SetMatchETag(obj.etag)
	}
	body, info, _, err := b.core.GetObject(ctx, b.bucket, obj.key, opts)
	if err != nil {
		return b.changed(obj, b.classify(obj.key, err))
	}
	defer body.Close()
	if obj.etag != "" && info.ETag != "" && strings.Trim(info.ETag, `"`) != strings.Trim(obj.etag, `"`) {
		return permanentError{changedError(b.display(obj.key), obj)}
	}
	if info.Size >= 0 && info.Size != int64(len(dst)) {
		return permanentError{errorf(b.display(obj.key), "the store answered %d bytes for a %d-byte range at %d: the object is shorter than the %d bytes it had when opened",
			info.Size, len(dst), off, obj.size)}
	}
	n, err := io.ReadFull(body, dst)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			// A connection cut mid-body looks the same: retry; a truly short
			// object fails the size check on the next try.
			return fmt.Errorf("%s: got %d of %d bytes at %d: %w", b.display(obj.key), n, len(dst), off, err)
		}
		return err
	}
	return nil
}

// classify turns the store's answer into errRemoteNotFound, a permanent
// error that names the problem, or a transient error worth retrying.
func (b *s3Backend) classify(key string, err error) error {
	if err == nil {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	display := b.display(key)
	switch {
	case resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"):
		return permanentError{errRemoteNotFound}
	case resp.Code == "NoSuchBucket":
		return permanentError{errorf(display, "no such bucket %q", b.bucket)}
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized || resp.Code == "AccessDenied" ||
		resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch":
		return permanentError{&tensor.Error{Path: display, Msg: fmt.Sprintf("access denied by the store (%s): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws/credentials", resp.Code)}}
	case resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed":
		return permanentError{errPreconditionFailed}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable || resp.Code == "InvalidRange":
		return permanentError{errorf(display, "the object is shorter than when it was opened")}
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return permanentError{errorf(display, "%s", resp.Message)}
	}
	return err
}

var errPreconditionFailed = errors.New("precondition failed")

// changed rewords a failed If-Match as the object having changed.
func (b *s3Backend) changed(obj remoteObject, err error) error {
	if errors.Is(err, errPreconditionFailed) {
		return permanentError{changedError(b.display(obj.key), obj)}
	}
	return err
}

func changedError(display string, obj remoteObject) error {
	return errorf(display, "the object changed while it was being read (%s when opened); analyse it again", describeRemote(obj))
}
