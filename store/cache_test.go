package store

import (
	"context"
	"errors"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

func TestFindCached(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	dir := t.TempDir()
	a, _ := finishSample(t, db, "fp-base", "fp-vla", dir)
	base := record("fp-base", dir+"/base", 100, 7).files()
	vla := record("fp-vla", dir+"/vla", 200, 8).files()

	changed := func(files []FileIdentity, edit func(*FileIdentity)) []FileIdentity {
		out := append([]FileIdentity(nil), files...)
		edit(&out[0])
		return out
	}
	tests := []struct {
		name      string
		base, vla []FileIdentity
		rules     []string
		hit       bool
	}{
		{"same files", base, vla, sampleRequest.Map, true},
		{"other rules", base, vla, nil, false},
		{"size differs", changed(base, func(f *FileIdentity) { f.Size++ }), vla, sampleRequest.Map, false},
		{"mtime differs", base, changed(vla, func(f *FileIdentity) { f.ModTimeNs++ }), sampleRequest.Map, false},
		{"inode differs", changed(base, func(f *FileIdentity) { f.Inode = 5 }), vla, sampleRequest.Map, false},
		{"header differs", changed(base, func(f *FileIdentity) { f.HeaderSHA = "other" }), vla, sampleRequest.Map, false},
		{"an extra file", append(append([]FileIdentity(nil), base...), FileIdentity{Path: "x"}), vla, sampleRequest.Map, false},
		{"sides swapped", vla, base, sampleRequest.Map, false},
		{"no files", nil, vla, sampleRequest.Map, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.FindCached(ctx, tt.base, tt.vla, tt.rules)
			if tt.hit {
				if err != nil || got.ID != a.ID || got.Status != StatusDone {
					t.Fatalf("FindCached = %+v, %v; want analysis %s", got, err, a.ID)
				}
				return
			}
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("FindCached = %+v, %v; want ErrNotFound", got, err)
			}
		})
	}

	byKey, err := db.FindByKey(ctx, CacheKey("fp-base", "fp-vla", sampleRequest.Map, analysis.EngineVersion))
	if err != nil || byKey.ID != a.ID {
		t.Fatalf("FindByKey = %+v, %v; want %s", byKey, err, a.ID)
	}
	if _, err := db.FindByKey(ctx, CacheKey("fp-base", "fp-vla", sampleRequest.Map, "engine-from-the-future")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindByKey of another engine version: %v, want ErrNotFound", err)
	}
}

// TestSameContentElsewhere finishes a second analysis of the same content read
// from other paths: it is recognised by fingerprint, shares the first one's
// rows instead of copying them, and its new paths are remembered.
func TestSameContentElsewhere(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	first, want := finishSample(t, db, "fp-base", "fp-vla", t.TempDir())
	rowsBefore := countRows(t, db, `SELECT count(*) FROM tensor_stats`)

	other := t.TempDir()
	base, vla := record("fp-base", other+"/copy-of-base", 100, 99), record("fp-vla", other+"/copy-of-vla", 200, 98)
	if _, err := db.FindCached(ctx, base.files(), vla.files(), sampleRequest.Map); !errors.Is(err, ErrNotFound) {
		t.Fatalf("files never read before were recognised: %v", err)
	}
	second := startAnalysis(t, db, sampleRequest)
	if err := db.Finish(ctx, second.ID, base, vla, sampleResult()); err != nil {
		t.Fatal(err)
	}

	got, err := db.Get(ctx, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := db.Get(ctx, first.ID)
	if got.Status != StatusDone || got.CacheKey != f.CacheKey || got.ResultOf != first.ID {
		t.Fatalf("second analysis: status %s, key %s, result_of %q; want done, %s, %s", got.Status, got.CacheKey, got.ResultOf, f.CacheKey, first.ID)
	}
	if n := countRows(t, db, `SELECT count(*) FROM tensor_stats`); n != rowsBefore {
		t.Fatalf("%d tensor rows after the second Finish, want %d (no copy)", n, rowsBefore)
	}
	if n := countRows(t, db, `SELECT count(*) FROM checkpoints`); n != 2 {
		t.Fatalf("%d checkpoints, want 2", n)
	}
	if n := countRows(t, db, `SELECT count(*) FROM checkpoint_locations`); n != 4 {
		t.Fatalf("%d checkpoint locations, want 4 (two per side)", n)
	}
	res, err := db.Result(ctx, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "shared result", res, want)
	units, err := db.Units(ctx, second.ID, UnitFilter{})
	if err != nil || len(units) != len(want.Units) {
		t.Fatalf("shared units: %d, %v", len(units), err)
	}

	// The new location is now known too, and the cache answers with the owner.
	hit, err := db.FindCached(ctx, base.files(), vla.files(), sampleRequest.Map)
	if err != nil || hit.ID != first.ID {
		t.Fatalf("FindCached at the new paths = %+v, %v; want %s", hit, err, first.ID)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLocationMovesToNewContent: files rewritten in place with identical quick
// identities (a pathological case) point at whatever content was read last.
func TestLocationMovesToNewContent(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	dir := t.TempDir()
	finishSample(t, db, "fp-base", "fp-vla", dir)
	a := startAnalysis(t, db, sampleRequest)
	base := record("fp-base", dir+"/base", 100, 7)
	base.Fingerprint = "fp-base-v2"
	if err := db.Finish(ctx, a.ID, base, record("fp-vla", dir+"/vla", 200, 8), sampleResult()); err != nil {
		t.Fatal(err)
	}
	hit, err := db.FindCached(ctx, base.files(), record("fp-vla", dir+"/vla", 200, 8).files(), sampleRequest.Map)
	if err != nil || hit.ID != a.ID || hit.BaseFingerprint != "fp-base-v2" {
		t.Fatalf("FindCached = %+v, %v; want %s with the new fingerprint", hit, err, a.ID)
	}
	if n := countRows(t, db, `SELECT count(*) FROM checkpoint_sources`); n != 2 {
		t.Fatalf("%d sources, want 2 (the moved location's old sources are gone)", n)
	}
}

// The options that change a result change its key: exact subtraction and each
// geometry override; map order does not, and a request without options keeps
// the key results were stored under before options existed.
func TestCacheKeyForOptions(t *testing.T) {
	plain := AnalysisRequest{Map: []string{"a=>b"}}
	if got, want := CacheKeyFor("b", "v", plain, "3"), CacheKey("b", "v", plain.Map, "3"); got != want {
		t.Errorf("a request without options: key %s, want CacheKey's %s", got, want)
	}
	g1 := map[string]arch.Geometry{"vision.siglip": {Heads: 16, KVHeads: 16}, "llm": {Heads: 8, KVHeads: 1}}
	g2 := map[string]arch.Geometry{"llm": {Heads: 8, KVHeads: 1}, "vision.siglip": {Heads: 16, KVHeads: 16}}
	keys := map[string]string{}
	for name, req := range map[string]AnalysisRequest{
		"plain":    plain,
		"exact":    {Map: plain.Map, Exact: true},
		"geometry": {Map: plain.Map, Geometry: g1},
		"both":     {Map: plain.Map, Exact: true, Geometry: g1},
		"kv":       {Map: plain.Map, Geometry: map[string]arch.Geometry{"llm": {Heads: 8, KVHeads: 2}, "vision.siglip": {Heads: 16, KVHeads: 16}}},
	} {
		k := CacheKeyFor("b", "v", req, "3")
		for other, ok := range keys {
			if ok == k {
				t.Errorf("%s and %s share a key", name, other)
			}
		}
		keys[name] = k
	}
	if CacheKeyFor("b", "v", AnalysisRequest{Map: plain.Map, Geometry: g2}, "3") != keys["geometry"] {
		t.Error("the key depends on the geometry map's order")
	}
}

// A finished analysis stores its options' key and its advice; a failed one
// can carry advice too; and FindCachedRequest tells requests with different
// options apart.
func TestAdviceAndOptionsRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	dir := t.TempDir()
	req := sampleRequest
	req.Exact = true
	req.Geometry = map[string]arch.Geometry{"vision.siglip": {Heads: 16, KVHeads: 16, HeadDim: 72}}
	a := startAnalysis(t, db, req)
	base, vla := record("fp-b", dir+"/b", 1, 1), record("fp-v", dir+"/v", 1, 1)
	res := sampleResult()
	if err := db.Finish(ctx, a.ID, base, vla, res); err != nil {
		t.Fatal(err)
	}
	got, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Request.Exact || got.Request.Geometry["vision.siglip"].Heads != 16 || got.CacheKey != CacheKeyFor("fp-b", "fp-v", req, analysis.EngineVersion) {
		t.Errorf("request %+v, key %s", got.Request, got.CacheKey)
	}
	sameJSON(t, "advice", got.Advice, &Advice{Suggestions: res.Suggestions, GeometryGuessed: res.GeometryGuessed})
	full, err := db.Result(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !full.Exact || len(full.Suggestions) != 1 || full.GeometryGuessed[0] != "vision.siglip" {
		t.Errorf("rebuilt result: exact %v, suggestions %+v, guessed %v", full.Exact, full.Suggestions, full.GeometryGuessed)
	}
	if hit, err := db.FindCachedRequest(ctx, base.files(), vla.files(), req); err != nil || hit.ID != a.ID {
		t.Errorf("same request: %v, %v", hit, err)
	}
	if _, err := db.FindCachedRequest(ctx, base.files(), vla.files(), sampleRequest); !errors.Is(err, ErrNotFound) {
		t.Errorf("a request without the options found %v", err)
	}

	failed := startAnalysis(t, db, sampleRequest)
	adv := Advice{Suggestions: []arch.Suggestion{{Rule: "^a\\.=>b.", From: "a.", To: "b.", Pairs: 3}}}
	if err := db.FailAdvised(ctx, failed.ID, "no tensor aligned", adv); err != nil {
		t.Fatal(err)
	}
	f, err := db.Get(ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Status != StatusFailed || f.Error != "no tensor aligned" || f.Advice == nil || len(f.Advice.Suggestions) != 1 || f.Advice.GeometryGuessed == nil {
		t.Errorf("failed analysis: %+v, advice %+v", f, f.Advice)
	}
}
