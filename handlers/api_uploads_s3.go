package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/s3store"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// Uploads in object storage (serve --uploads s3://BUCKET/PREFIX): with several
// page servers behind one address, a client's chunks reach any of them, so
// the bytes cannot stay on one server's disk. tusd's S3 store keeps each
// upload as an S3 multipart upload, its state in an .info object and the tail
// of a chunk too small to be a part in a .part object: every server reads the
// same state, and a PATCH that server A started is resumed on server B.
//
// Keys: a finished upload is the object PREFIX/<session>/<side>/<path>, the
// same layout as the local folder, so the side's folder is the source
// s3://BUCKET/PREFIX/<session>/<side> (a sharded checkpoint's files share it)
// and the file keeps its name and extension. tusd's own objects lie under
// PREFIX/.tus/. The upload's URL keeps this server's short id; the row gives
// the key, and the key's .info object gives tusd's id (key+multipart id).

// uploadsMetaDir is the folder, under the upload prefix, of tusd's .info and
// .part objects.
const uploadsMetaDir = ".tus"

// ParseUploadStore checks an s3://BUCKET/PREFIX upload store and returns it
// without a trailing slash.
func ParseUploadStore(u string) (string, error) {
	if !strings.HasPrefix(u, "s3://") {
		return "", fmt.Errorf("--uploads %q: give s3://BUCKET/PREFIX", u)
	}
	u = strings.TrimSuffix(u, "/")
	if err := checkpoint.CheckRemotePath(u); err != nil {
		return "", fmt.Errorf("--uploads: %v", err)
	}
	return u, nil
}

// s3Uploads is the upload store in a bucket.
type s3Uploads struct {
	url    string // s3://BUCKET/PREFIX, the root analyses read uploads under
	bucket string
	prefix string // "" or "PREFIX/"
	client *s3.Client
	tusd   s3store.S3Store
	db     *store.DB
	// ids maps this server's upload ids to tusd's (key+"+"+multipart id). A
	// mapping never changes, so caching it is safe (an id whose row is gone
	// is refused before it is looked up here). Uploads removed by another
	// server leave their entries, so the map is emptied when it is full:
	// each entry can be read again from its .info object.
	mu  sync.Mutex
	ids map[string]string
}

// maxCachedIDs bounds the id cache (about 100 bytes an entry).
const maxCachedIDs = 10000

func (su *s3Uploads) cacheID(id, full string) {
	su.mu.Lock()
	defer su.mu.Unlock()
	if len(su.ids) >= maxCachedIDs {
		clear(su.ids)
	}
	su.ids[id] = full
}

func (su *s3Uploads) cachedID(id string) (string, bool) {
	su.mu.Lock()
	defer su.mu.Unlock()
	full, ok := su.ids[id]
	return full, ok
}

func (su *s3Uploads) forgetID(id string) {
	su.mu.Lock()
	defer su.mu.Unlock()
	delete(su.ids, id)
}

// newS3Client connects to the store the way the s3:// sources do
// (analysis/checkpoint/s3.go): AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3),
// AWS_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials
// (AWS_PROFILE) or an instance role; the SDK's default chain reads them all.
func newS3Client(ctx context.Context) (*s3.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("S3 configuration: %w", err)
	}
	if cfg.Region == "" {
		// Self-hosted stores ignore the region, but the SDK signs with one.
		cfg.Region = "us-east-1"
	}
	custom := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		// Self-hosted stores (MinIO, Ceph, Versity) rarely have a DNS name per
		// bucket, as for the s3:// sources.
		o.UsePathStyle = custom
		// The SDK's default checksums (CRC32 trailers on every part) are
		// refused by several S3-compatible stores; MD5 and SigV4 still cover
		// every part, as tusd computes them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// CheckUploadStore says, at start, whether the bucket of an upload store is
// there and these credentials may use it, so a typo fails `serve` instead of
// the first upload.
func CheckUploadStore(ctx context.Context, u string) error {
	u, err := ParseUploadStore(u)
	if err != nil {
		return err
	}
	client, err := newS3Client(ctx)
	if err != nil {
		return err
	}
	bucket, _, _ := strings.Cut(strings.TrimPrefix(u, "s3://"), "/")
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("--uploads %s: the bucket %q cannot be used (%v): check AWS_ENDPOINT_URL and the credentials", u, bucket, err)
	}
	return nil
}

func newS3Uploads(db *store.DB, storeURL, tmpDir string) (*s3Uploads, error) {
	u, err := ParseUploadStore(storeURL)
	if err != nil {
		return nil, err
	}
	client, err := newS3Client(context.Background())
	if err != nil {
		return nil, err
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u, "s3://"), "/")
	if prefix != "" {
		prefix += "/"
	}
	st := s3store.New(bucket, client)
	st.ObjectPrefix = prefix
	st.MetadataObjectPrefix = prefix + uploadsMetaDir
	// tusd buffers each part in a temporary file before sending it; by
	// default 20 parts of 50 MB may wait per PATCH, a gigabyte of this
	// server's disk per upload. Two keep the link busy while one is sent.
	st.TemporaryDirectory = tmpDir
	st.MaxBufferedParts = 2
	return &s3Uploads{url: u, bucket: bucket, prefix: prefix, client: client, tusd: st, db: db, ids: map[string]string{}}, nil
}

// key is the object key of an upload's file, relative to the prefix.
func s3UploadKey(u *store.Upload) string { return uploadFile(u) }

func (su *s3Uploads) objectKey(u *store.Upload) string { return su.prefix + s3UploadKey(u) }

func (su *s3Uploads) metaKey(u *store.Upload, ext string) string {
	return su.prefix + uploadsMetaDir + "/" + s3UploadKey(u) + ext
}

// spec is the source an analysis names for the upload's file.
func (su *s3Uploads) spec(u *store.Upload) string { return su.url + "/" + s3UploadKey(u) }

// exists says whether an object is at the upload's key already.
func (su *s3Uploads) exists(ctx context.Context, u *store.Upload) (bool, error) {
	_, err := su.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(su.bucket), Key: aws.String(su.objectKey(u))})
	var nf *types.NotFound
	var nk *types.NoSuchKey
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf) || errors.As(err, &nk):
		return false, nil
	}
	return false, err
}

// tusID finds tusd's id of an upload: from the cache, or from its .info object.
func (su *s3Uploads) tusID(ctx context.Context, id string) (string, error) {
	if full, ok := su.cachedID(id); ok {
		return full, nil
	}
	row, err := su.db.GetUpload(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", tus.ErrNotFound
	} else if err != nil {
		return "", err
	}
	res, err := su.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(su.bucket), Key: aws.String(su.metaKey(row, ".info"))})
	var nk *types.NoSuchKey
	if errors.As(err, &nk) {
		return "", tus.ErrNotFound
	} else if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var info tus.FileInfo
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("upload %s: reading its state: %w", id, err)
	}
	// A key of another upload (this one's row is newer than the .info) is not
	// this upload's.
	if !strings.HasPrefix(info.ID, s3UploadKey(row)+"+") {
		return "", tus.ErrNotFound
	}
	su.cacheID(id, info.ID)
	return info.ID, nil
}

// remove deletes everything an upload has in the bucket: its multipart upload
// (aborted), its file, its .info and .part objects. It needs no .info: the
// multipart uploads of the key are listed.
func (su *s3Uploads) remove(ctx context.Context, u *store.Upload) error {
	ctx = context.WithoutCancel(ctx)
	su.forgetID(u.ID)
	key := su.objectKey(u)
	var errs []error
	list, err := su.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(su.bucket), Prefix: aws.String(key)})
	if err != nil {
		errs = append(errs, err)
	} else {
		for _, mu := range list.Uploads {
			if aws.ToString(mu.Key) != key {
				continue // a longer key that shares the prefix
			}
			_, err := su.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(su.bucket), Key: mu.Key, UploadId: mu.UploadId})
			var ns *types.NoSuchUpload
			if err != nil && !errors.As(err, &ns) {
				errs = append(errs, err)
			}
		}
	}
	for _, k := range []string{key, su.metaKey(u, ".info"), su.metaKey(u, ".part")} {
		// One DeleteObject each: DeleteObjects needs a Content-MD5 that the
		// SDK no longer sends by default, and some stores insist on it.
		if _, err := su.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(su.bucket), Key: aws.String(k)}); err != nil {
			var nk *types.NoSuchKey
			if !errors.As(err, &nk) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// validate reads the header of a finished checkpoint file from the bucket,
// with the same limits as any source; other files (index, config, tokenizer)
// are checked when the analysis opens the folder.
func (su *s3Uploads) validate(ctx context.Context, u *store.Upload, opt checkpoint.Options) error {
	if !checkpoint.IsCheckpointFile(u.Path) {
		return nil
	}
	opt.Context = ctx
	src, err := checkpoint.OpenSource(su.spec(u), opt)
	if err != nil {
		return err
	}
	return src.Close()
}

// s3DataStore is tusd's S3 store addressed by this server's upload ids.
type s3DataStore struct{ su *s3Uploads }

func (d s3DataStore) NewUpload(ctx context.Context, info tus.FileInfo) (tus.Upload, error) {
	id := info.ID // chosen by the create hook
	meta := info.MetaData
	info.ID = path.Join(meta["session"], meta["side"], meta["path"])
	up, err := d.su.tusd.NewUpload(ctx, info)
	if err != nil {
		return nil, err
	}
	full, err := up.GetInfo(ctx)
	if err != nil {
		return nil, err
	}
	d.su.cacheID(id, full.ID)
	return &s3Upload{Upload: up, id: id}, nil
}

func (d s3DataStore) GetUpload(ctx context.Context, id string) (tus.Upload, error) {
	full, err := d.su.tusID(ctx, id)
	if err != nil {
		return nil, err
	}
	up, err := d.su.tusd.GetUpload(ctx, full)
	if err != nil {
		return nil, err
	}
	return &s3Upload{Upload: up, id: id}, nil
}

func (d s3DataStore) AsTerminatableUpload(up tus.Upload) tus.TerminatableUpload {
	return d.su.tusd.AsTerminatableUpload(up.(*s3Upload).Upload)
}

// s3Upload is one of tusd's S3 uploads answering with this server's id (the
// one in its URL and its row).
type s3Upload struct {
	tus.Upload
	id string
}

func (u *s3Upload) GetInfo(ctx context.Context) (tus.FileInfo, error) {
	info, err := u.Upload.GetInfo(ctx)
	info.ID = u.id
	return info, err
}
