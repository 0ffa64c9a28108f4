package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// Remote sources: s3://BUCKET/KEY (object storage, s3.go) and
// hf://ORG/REPO[@REVISION]/PATH (the Hugging Face Hub, hub.go). Both are read
// the way local files are — headers first, tensors later, in chunks — through
// a remoteBackend that can stat, list and read ranges of objects. Nothing is
// copied to disk: the header of each file is read with exact ranged GETs, and
// tensor bytes through a process-wide cache of fixed-size blocks, fetched in
// parallel ahead of the reader, so a sequential tensor read runs at the link's
// speed while memory stays at the cache's size.

// IsRemote reports whether a source path names a remote object rather than a
// local file.
func IsRemote(p string) bool {
	return strings.HasPrefix(p, "s3://") || strings.HasPrefix(p, "hf://")
}

// errRemoteNotFound is what a backend's stat answers for an absent object.
var errRemoteNotFound = errors.New("not found")

// remoteObject is one object as a backend describes it.
type remoteObject struct {
	key  string // inside the backend's bucket or repository, slash-separated
	size int64
	etag string // the version read; reads check it did not change
}

// remoteBackend reads objects of one bucket (S3) or one pinned repository
// revision (the Hub).
type remoteBackend interface {
	// display is the user-facing path of key, used in every message.
	display(key string) string
	// stat describes key, or answers errRemoteNotFound.
	stat(ctx context.Context, key string) (remoteObject, error)
	// list names the objects directly under prefix (a "folder"), at most max
	// of them; more is an error.
	list(ctx context.Context, prefix string, max int) ([]string, error)
	// get fills dst with the bytes of obj from off, all of them or an error
	// that says the object is shorter or changed.
	get(ctx context.Context, obj remoteObject, dst []byte, off int64) error
}

// remoteRetries and remoteBackoff bound the retries of one ranged read on a
// transient failure (a reset connection, a 5xx, a throttled 503): a long
// analysis should survive a blip, but not wait minutes on a dead server.
const remoteRetries = 5

var remoteBackoff = 200 * time.Millisecond // a variable so tests need not wait

// permanentError marks a failure that retrying cannot fix (changed, short,
// missing, forbidden).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// withRetry runs get until it succeeds, fails permanently, or the retries or
// the context run out; the backoff doubles each time.
func withRetry(ctx context.Context, get func() error) error {
	wait := remoteBackoff
	for attempt := 1; ; attempt++ {
		err := get()
		var perm permanentError
		if err == nil || errors.As(err, &perm) || ctx.Err() != nil || attempt >= remoteRetries {
			if errors.As(err, &perm) {
				return perm.err
			}
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait *= 2
	}
}

// newRemoteBackend parses a remote path into its backend and the key it names.
func newRemoteBackend(ctx context.Context, p string) (remoteBackend, string, error) {
	switch {
	case strings.HasPrefix(p, "s3://"):
		return newS3Backend(p)
	case strings.HasPrefix(p, "hf://"):
		return newHubBackend(ctx, p)
	}
	return nil, "", errorf(p, "not a remote source")
}

// remoteAllowed checks a remote path against the server's roots: it must lie
// under an s3:// or hf:// root (a whole path component, so s3://b/run1 does
// not allow s3://b/run10). With no roots at all (the CLI), anything goes.
func remoteAllowed(p string, roots []string) error {
	if len(roots) == 0 {
		return nil
	}
	var remote []string
	for _, r := range roots {
		if !IsRemote(r) {
			continue
		}
		remote = append(remote, r)
		r = strings.TrimSuffix(r, "/")
		if p == r || strings.HasPrefix(p, r+"/") || (strings.HasPrefix(r, "hf://") && strings.HasPrefix(p, r+"@")) {
			return nil
		}
	}
	if len(remote) == 0 {
		return &tensor.Error{Path: p, Forbidden: true,
			Msg: "remote sources are not allowed on this server; start it with --root s3://BUCKET/PREFIX or --root hf://ORG to allow some"}
	}
	return &tensor.Error{Path: p, Forbidden: true,
		Msg: "outside the allowed sources (" + strings.Join(remote, ", ") + "); start the server with --root to allow another"}
}

// openRemote opens a remote source: one object, or a prefix holding a sharded
// folder (with its index) or plain *.safetensors objects.
func (s *Source) openRemote(opt Options) error {
	if err := CheckRemotePath(s.Path); err != nil {
		return err
	}
	if err := remoteAllowed(s.Path, opt.Roots); err != nil {
		return err
	}
	ctx := opt.Context
	if ctx == nil {
		ctx = context.Background()
	}
	// Closing the source cancels whatever it still has in flight.
	ctx, cancel := context.WithCancel(ctx)
	s.closers = append(s.closers, closerFunc(func() error { cancel(); return nil }))
	be, key, err := newRemoteBackend(ctx, s.Path)
	if err != nil {
		return err
	}
	if hp, ok := be.(interface{ pinned(string) string }); ok {
		s.Path = hp.pinned(key) // hf://ORG/REPO@COMMIT/PATH: the record names the commit read
	}
	rf := remoteFolder{ctx: ctx, be: be, prefix: key}
	lim := opt.limits()
	obj, err := remoteObject{}, errRemoteNotFound
	if key != "" {
		obj, err = be.stat(ctx, key)
	}
	switch {
	case err == nil:
		if err := rf.openFile(s, obj, lim); err != nil {
			return err
		}
		if dir := path.Dir(key); dir != "." {
			rf.prefix = dir
		} else {
			rf.prefix = ""
		}
		s.Config = rf.config()
	case err != nil && !errors.Is(err, errRemoteNotFound):
		return remoteErr(s.Path, err)
	default:
		if err := rf.openPrefix(s, lim); err != nil {
			return err
		}
		s.Config = rf.config()
	}
	if len(s.Tensors) > lim.MaxTensors {
		return errorf(s.Path, "%d tensors exceed the limit of %d", len(s.Tensors), lim.MaxTensors)
	}
	for i := range s.Tensors {
		s.Tensors[i].Name = s.Prefix + s.Tensors[i].Stored
	}
	return nil
}

// CheckRemotePath refuses an s3:// or hf:// path without a bucket or
// organisation, or with an empty, "." or ".." component: object stores take
// them literally, but a root check on such a path would not mean what it
// says.
func CheckRemotePath(p string) error {
	rest := p[len("s3://"):]
	if rest == "" {
		return errorf(p, "give a bucket and a key: s3://BUCKET/KEY or hf://ORG/REPO/PATH")
	}
	for _, el := range strings.Split(strings.TrimSuffix(rest, "/"), "/") {
		if el == "" || el == "." || el == ".." {
			return &tensor.Error{Path: p, Forbidden: true, Msg: "has an empty, '.' or '..' component"}
		}
	}
	return nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// remoteFolder is a prefix of a backend seen as a folder: the remote twin of
// localFolder, so sharded sources are checked by the same readIndexed.
type remoteFolder struct {
	ctx    context.Context
	be     remoteBackend
	prefix string // "" for the bucket or repository root
}

func (r remoteFolder) key(name string) string { return joinKey(r.prefix, name) }

// joinKey is the key of name in the folder dir ("" for the root).
func joinKey(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (r remoteFolder) join(name string) string { return r.be.display(r.key(name)) }

func (r remoteFolder) readSmall(name, display string, limit int64) ([]byte, error) {
	obj, err := r.be.stat(r.ctx, r.key(name))
	if err != nil {
		return nil, remoteErr(display, err)
	}
	if obj.size > limit {
		return nil, errorf(display, "%d bytes is larger than the %d allowed for this file", obj.size, limit)
	}
	data := make([]byte, obj.size)
	if err := withRetry(r.ctx, func() error { return r.be.get(r.ctx, obj, data, 0) }); err != nil {
		return nil, remoteErr(display, err)
	}
	return data, nil
}

func (r remoteFolder) readFile(s *Source, name, display string, lim Limits) error {
	obj, err := r.be.stat(r.ctx, r.key(name))
	if err != nil {
		return remoteErr(display, err)
	}
	return r.openFile(s, obj, lim)
}

// openFile adds one object's tensors to s, reading only its header.
func (r remoteFolder) openFile(s *Source, obj remoteObject, lim Limits) error {
	display := r.be.display(obj.key)
	f := &remoteFile{ctx: r.ctx, be: r.be, obj: obj, display: display}
	s.closers = append(s.closers, f)
	// The identity a cache needs without reading the object: its key, size and
	// ETag (which changes with the content), in the fields a local file fills
	// with its inode and hashed edges. No modification time: the same bytes
	// uploaded again keep their ETag and are the same checkpoint.
	s.Files = append(s.Files, FileInfo{Path: display, Size: obj.size, HeadSHA: "etag:" + obj.etag})
	if s.filesOnly {
		return nil
	}
	before := len(s.Tensors)
	if err := s.parseFile(f, nil, nil, obj.size, obj.key, display, lim); err != nil {
		return err
	}
	// Each tensor reads through its own view, so readahead stops at its end
	// instead of fetching the next tensor's blocks that may never be read.
	for i := range s.Tensors[before:] {
		t := &s.Tensors[before+i]
		t.f = &remoteData{f: f, end: t.Offset + t.Size}
	}
	return nil
}

// openPrefix opens key as a folder: its index when there is one, otherwise its
// *.safetensors objects.
func (r remoteFolder) openPrefix(s *Source, lim Limits) error {
	names, err := r.be.list(r.ctx, r.prefix, lim.MaxShards*4+64)
	if err != nil {
		return remoteErr(s.Path, err)
	}
	var shards []string
	hasIndex := false
	for _, n := range names {
		switch {
		case n == IndexName:
			hasIndex = true
		case strings.HasSuffix(n, ".safetensors"):
			shards = append(shards, n)
		}
	}
	if hasIndex {
		return s.readIndexed(r, r.join(IndexName), lim)
	}
	if len(names) == 0 {
		return errorf(s.Path, "no such object or prefix")
	}
	if len(shards) == 0 {
		return errorf(s.Path, "prefix has no %s and no .safetensors objects", IndexName)
	}
	if len(shards) > lim.MaxShards {
		return errorf(s.Path, "more than %d .safetensors objects", lim.MaxShards)
	}
	sort.Strings(shards)
	s.Format = FormatFolder
	if err := s.readShards(shards, r.join, func(n, display string) error { return r.readFile(s, n, display, lim) }); err != nil {
		return err
	}
	if s.Format == "" || s.Format == FormatSafetensors {
		s.Format = FormatFolder
	}
	return nil
}

// config reads config.json beside the checkpoint, if there is a valid one.
func (r remoteFolder) config() json.RawMessage {
	data, err := r.readSmall("config.json", r.join("config.json"), maxConfigBytes)
	if err != nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return nil
	}
	return data
}

// remoteErr words a backend error for the path it concerns.
func remoteErr(display string, err error) error {
	var te *tensor.Error
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, errRemoteNotFound) {
		return errorf(display, "no such object")
	}
	return errorf(display, "%v", err)
}

// headBytes is what the first read of a file fetches: the 8-byte length and
// the header of a small checkpoint in one request; a larger header takes one
// more request of exactly its length.
const headBytes = 16 << 10

// remoteFile reads one object. ReadAt serves header parsing: exact ranges,
// the first headBytes fetched once. Tensor data goes through remoteData.
type remoteFile struct {
	ctx     context.Context
	be      remoteBackend
	obj     remoteObject
	display string

	mu   sync.Mutex
	head []byte
}

func (f *remoteFile) Close() error {
	blocks.drop(f)
	return nil
}

func (f *remoteFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errorf(f.display, "negative offset")
	}
	if off >= f.obj.size {
		return 0, io.EOF
	}
	want := p
	if rest := f.obj.size - off; int64(len(p)) > rest {
		want = p[:rest]
	}
	f.mu.Lock()
	if f.head == nil {
		head := make([]byte, min(f.obj.size, headBytes))
		if err := withRetry(f.ctx, func() error { return f.be.get(f.ctx, f.obj, head, 0) }); err != nil {
			f.mu.Unlock()
			return 0, remoteErr(f.display, err)
		}
		f.head = head
	}
	head := f.head
	f.mu.Unlock()
	if off+int64(len(want)) <= int64(len(head)) {
		copy(want, head[off:])
	} else if err := withRetry(f.ctx, func() error { return f.be.get(f.ctx, f.obj, want, off) }); err != nil {
		return 0, remoteErr(f.display, err)
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// remoteData is a tensor's window on its object: reads go through the block
// cache, and readahead fetches blocks up to end (the tensor's last byte).
type remoteData struct {
	f   *remoteFile
	end int64
}

// Readahead: blockSize-byte blocks, up to readAhead ahead of each reader, at
// most cacheBlocks held process-wide (128 MiB): enough in flight to fill a
// fast link from one or two sequential readers per side, small enough that the
// RSS target (under 300 MB for a 2 × 2.2 GB pair) holds.
const (
	blockSize   = 8 << 20
	readAhead   = 4
	cacheBlocks = 16
)

func (d *remoteData) ReadAt(p []byte, off int64) (int, error) {
	f := d.f
	if off < 0 || off+int64(len(p)) > f.obj.size {
		return 0, errorf(f.display, "read [%d, %d) outside the object's %d bytes", off, off+int64(len(p)), f.obj.size)
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		i := pos / blockSize
		b, err := blocks.get(f, i)
		if err != nil {
			return n, err
		}
		// Prefetch after the first block is asked for, so the block this reader
		// needs now is fetched first.
		for k := int64(1); k <= readAhead && (i+k)*blockSize < d.end; k++ {
			blocks.prefetch(f, i+k)
		}
		c := copy(p[n:], b.data[pos-i*blockSize:])
		blocks.unpin(b)
		n += c
	}
	return n, nil
}

// blockCache holds recently read blocks of remote objects, keyed by file and
// block number.
//
// Prefetched blocks not yet read may fill at most half of it: the other half
// keeps the blocks readers are in (read 256 KiB at a time, each is used
// again and again until its end) and recent ones. Eviction takes the least
// recently used block that has been read; an unread prefetched block is never
// evicted — a reader that finds nothing else to evict goes over the cap by its
// one block instead (evicting a prefetch there fetched it twice: four readers
// of 41 MiB tensors fetched 1.2× the object now and then). Plain LRU over all
// blocks was measured to thrash: four readers of 41 MiB tensors fetched 1.8×
// the object, and ten times it when slowed down (-race), as readahead evicted
// the blocks readers were in.
type blockCache struct {
	mu     sync.Mutex
	blocks map[blockKey]*cblock
	unread int      // prefetched blocks no reader has used yet
	free   [][]byte // buffers of evicted blocks, reused: the heap stays flat
	tick   uint64
}

type blockKey struct {
	f *remoteFile
	i int64
}

type cblock struct {
	key  blockKey
	data []byte
	err  error
	done chan struct{}
	pins int    // readers copying from data; never evicted while > 0
	used uint64 // last use, for LRU
	read bool   // a reader has used it (or it was demanded)
}

var blocks = &blockCache{blocks: map[blockKey]*cblock{}}

// get returns block i of f, fetched if needed, pinned: call unpin once copied.
func (c *blockCache) get(f *remoteFile, i int64) (*cblock, error) {
	c.mu.Lock()
	k := blockKey{f, i}
	b := c.blocks[k]
	if b == nil {
		b = c.start(k, true)
	}
	if !b.read {
		b.read = true
		c.unread--
	}
	b.pins++
	c.tick++
	b.used = c.tick
	c.mu.Unlock()
	select {
	case <-b.done:
	case <-f.ctx.Done():
		c.unpin(b)
		return nil, errorf(f.display, "reading: %v", f.ctx.Err())
	}
	if b.err != nil {
		err := b.err
		c.unpin(b)
		c.mu.Lock()
		if c.blocks[k] == b && b.pins == 0 { // let a later read try again
			c.remove(b)
		}
		c.mu.Unlock()
		return nil, err
	}
	return b, nil
}

// prefetch starts fetching block i of f when it is not cached, fewer than
// half the cache's blocks are unread prefetches, and a slot is free or holds
// a block already read.
func (c *blockCache) prefetch(f *remoteFile, i int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.ctx.Err() != nil || c.blocks[blockKey{f, i}] != nil || c.unread >= cacheBlocks/2 {
		return
	}
	if len(c.blocks) >= cacheBlocks && !c.evict() {
		return
	}
	c.start(blockKey{f, i}, false)
}

// start registers block k and fetches it in the background; c.mu is held.
// A demanded block is started whatever the cache holds — its reader waits for
// it, so the excess over cacheBlocks is at most one block per reader.
func (c *blockCache) start(k blockKey, demanded bool) *cblock {
	if demanded && len(c.blocks) >= cacheBlocks {
		c.evict()
	}
	var buf []byte
	if n := len(c.free); n > 0 {
		buf, c.free = c.free[n-1], c.free[:n-1]
	} else {
		buf = make([]byte, blockSize)
	}
	f := k.f
	size := min(blockSize, f.obj.size-k.i*blockSize)
	b := &cblock{key: k, data: buf[:size], done: make(chan struct{}), read: demanded}
	if !demanded {
		c.unread++
	}
	c.tick++
	b.used = c.tick
	c.blocks[k] = b
	go func() {
		err := withRetry(f.ctx, func() error { return f.be.get(f.ctx, f.obj, b.data, k.i*blockSize) })
		if err != nil {
			b.err = remoteErr(f.display, err)
		}
		close(b.done)
	}()
	return b
}

// evict drops the least recently used block that is fetched, unpinned and
// read (or failed); c.mu is held. It reports whether one was dropped.
func (c *blockCache) evict() bool {
	var victim *cblock
	for _, b := range c.blocks {
		if b.pins > 0 || (!b.read && b.err == nil) {
			continue
		}
		select {
		case <-b.done:
		default:
			continue
		}
		if victim == nil || b.used < victim.used {
			victim = b
		}
	}
	if victim == nil {
		return false
	}
	c.remove(victim)
	return true
}

// remove forgets b and keeps its buffer for the next block; c.mu is held and
// b is done and unpinned.
func (c *blockCache) remove(b *cblock) {
	delete(c.blocks, b.key)
	if !b.read {
		c.unread--
	}
	if len(c.free) < cacheBlocks && cap(b.data) == blockSize {
		c.free = append(c.free, b.data[:blockSize])
	}
	b.data = nil
}

func (c *blockCache) unpin(b *cblock) {
	c.mu.Lock()
	b.pins--
	c.mu.Unlock()
}

// drop forgets the blocks of a closed file. Blocks still being fetched finish
// (their context is cancelled by the source's Close) and are evicted later.
func (c *blockCache) drop(f *remoteFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, b := range c.blocks {
		if k.f != f || b.pins > 0 {
			continue
		}
		select {
		case <-b.done:
			c.remove(b)
		default:
		}
	}
}

// describeRemote is used in messages about an object that changed or came
// back short.
func describeRemote(obj remoteObject) string {
	return fmt.Sprintf("ETag %s, %d bytes", obj.etag, obj.size)
}
