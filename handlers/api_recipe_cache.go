package handlers

import (
	"container/list"
	"context"
	"sync"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
)

// resultCacheSize is how many analyses' Results stay in memory. An OpenVLA-7B
// Result with its row/column norms and unit scores is ~30 MB; a composer
// session works on one analysis, a comparison on two.
const resultCacheSize = 4

// recipeState is what the composer API keeps between requests.
type recipeState struct {
	cache *resultCache
}

func (s *Server) recipeState() *recipeState { return s.recipes }

// resolveBase is everything a recipe resolves against: the analysis, its
// Result with arrays and units, and the VLA's tensor list when its files are
// still there.
type resolveBase struct {
	analysis *store.Analysis
	res      *analysis.Result
	// vlaTensors lets the accounting place VLA-only tensors (π0.5's action
	// expert) in their components; nil when the VLA files cannot be opened.
	vlaTensors []arch.Named
	vlaErr     error
}

// loadResolveBase reads a done analysis from the store (100–300 ms at
// OpenVLA-7B scale: that is why it is cached).
func (s *Server) loadResolveBase(ctx context.Context, id string) (*resolveBase, error) {
	res, err := s.db.Result(ctx, id)
	if err != nil {
		return nil, err
	}
	a, err := s.db.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	b := &resolveBase{analysis: a, res: res}
	// Headers only: fast even for sharded 15 GB checkpoints.
	if vla, err := checkpoint.OpenSide(a.Request.VLA, s.openOptions()); err != nil {
		b.vlaErr = err
	} else {
		b.vlaTensors = prune.VLATensors(vla) // a tied tensor (shared bytes) counts once
		vla.Close()
	}
	return b, nil
}

// resultCache is a small LRU of resolveBases by analysis id. A done analysis's
// result never changes, so entries need no invalidation. Concurrent requests
// for an id being loaded wait for that one load instead of starting their own.
type resultCache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // of *cacheEntry, most recently used first
	entries map[string]*list.Element
	load    func(context.Context, string) (*resolveBase, error)
}

type cacheEntry struct {
	id    string
	ready chan struct{} // closed when val/err are set
	val   *resolveBase
	err   error
}

func newResultCache(size int, load func(context.Context, string) (*resolveBase, error)) *resultCache {
	return &resultCache{size: size, order: list.New(), entries: map[string]*list.Element{}, load: load}
}

// get returns the resolveBase of an analysis, loading it on a miss. Failed
// loads are not kept: an analysis that is not done yet will be later.
func (c *resultCache) get(ctx context.Context, id string) (*resolveBase, error) {
	c.mu.Lock()
	if el, ok := c.entries[id]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		select {
		case <-e.ready:
			return e.val, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e := &cacheEntry{id: id, ready: make(chan struct{})}
	c.entries[id] = c.order.PushFront(e)
	c.mu.Unlock()

	// The load outlives this request: others may be waiting for it.
	e.val, e.err = c.load(context.WithoutCancel(ctx), id)
	close(e.ready)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.err != nil {
		if el, ok := c.entries[id]; ok && el.Value == e {
			c.order.Remove(el)
			delete(c.entries, id)
		}
		return nil, e.err
	}
	// Evict only once the new entry is good: a failed load never costs a
	// cached one.
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).id)
	}
	return e.val, nil
}

// len is the number of entries (tests).
func (c *resultCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
