package prune

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/internal/hubtest"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// remoteVLA is one VLA on disk, with the same files in a bucket of the real
// S3 gateway and in a commit of the Hub stand-in.
type remoteVLA struct {
	name     string
	local    string // the source path on disk
	remotes  []string
	m        *Mask
	nonEmpty []string // companion files the export must carry
}

// remoteVLAs publishes two VLAs: the π0.5 fixture's single file with a
// config.json beside it (the one companion a single file brings), and the
// generated OpenVLA-7B-shaped sharded folder with its index, config and a
// tokenizer (a folder's companions, listed from the store).
func remoteVLAs(t *testing.T) []remoteVLA {
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "models")
	hub := hubtest.Start(t)

	pi := t.TempDir()
	copyInto(t, testfixtures.Path("pi05", "vla", "model.safetensors"), filepath.Join(pi, "model.safetensors"))
	writeFile(t, filepath.Join(pi, ConfigFile), `{"model_type": "pi05", "text_config": {"intermediate_size": 64}}`)
	writeFile(t, filepath.Join(pi, "notes.txt"), "not beside a single file's export: only config.json is")
	s3.PutDir(t, "models", "pi05/vla", pi)
	hub.Commit(t, "lab/pi05", "main", false, hubtest.Dir(t, "vla", pi))

	p := openPaperPair(t, "openvla-7b")
	vla := filepath.Join(p.dir, "vla")
	writeFile(t, filepath.Join(vla, "tokenizer.json"), `{"version": "1.0", "model": {"type": "BPE"}}`)
	writeFile(t, filepath.Join(vla, "special_tokens_map.json"), `{"pad_token": "<PAD>"}`)
	s3.PutDir(t, "models", "openvla/vla", vla)
	hub.Commit(t, "lab/openvla", "main", false, hubtest.Dir(t, "vla", vla))
	rc, err := Preset("openvla-moderate")
	if err != nil {
		t.Fatal(err)
	}
	om, err := ResolveWith(p.res, rc, Options{VLATensors: VLATensors(p.vla)})
	if err != nil {
		t.Fatal(err)
	}
	return []remoteVLA{
		{name: "pi05", local: filepath.Join(pi, "model.safetensors"), m: exportMask(t), nonEmpty: []string{ConfigFile},
			remotes: []string{"s3://models/pi05/vla/model.safetensors", "hf://lab/pi05@main/vla/model.safetensors"}},
		{name: "openvla", local: vla, m: om, nonEmpty: []string{ConfigFile, checkpoint.IndexName, "tokenizer.json", "special_tokens_map.json"},
			remotes: []string{"s3://models/openvla/vla", "hf://lab/openvla/vla"}},
	}
}

// TestRemoteExportsMatchLocal: masked and sliced exports of a VLA read from
// s3:// and hf:// are the local export, byte for byte, companions included,
// whether written to a folder or streamed as entries (the server's tar).
func TestRemoteExportsMatchLocal(t *testing.T) {
	ctx := context.Background()
	for _, v := range remoteVLAs(t) {
		for _, kindName := range []string{"masked", "sliced"} {
			kind, err := LookupExport(kindName)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(t.TempDir(), "local")
			local := openSide(t, v.local)
			if err := kind.WriteFolder(ctx, want, v.m, local); err != nil {
				t.Fatalf("%s %s local: %v", v.name, kindName, err)
			}
			wantFiles := treeBytes(t, want)
			for _, f := range v.nonEmpty {
				if _, ok := wantFiles[f]; !ok {
					t.Fatalf("%s %s: the local export lacks %s (has %v)", v.name, kindName, f, keys(wantFiles))
				}
			}
			if _, ok := wantFiles["notes.txt"]; ok {
				t.Errorf("%s %s: a single file's export brought a neighbour other than config.json", v.name, kindName)
			}
			for _, src := range v.remotes {
				t.Run(v.name+"/"+kindName+"/"+src[:2], func(t *testing.T) {
					side := openSide(t, src)
					got := filepath.Join(t.TempDir(), "remote")
					if err := kind.WriteFolder(ctx, got, v.m, side); err != nil {
						t.Fatal(err)
					}
					sameTree(t, wantFiles, treeBytes(t, got))
					entries, err := kind.EntriesContext(ctx, v.m, side)
					if err != nil {
						t.Fatal(err)
					}
					if len(entries) != len(wantFiles) {
						t.Errorf("%d entries, the folder has %d files", len(entries), len(wantFiles))
					}
					for _, e := range entries {
						var b bytes.Buffer
						if err := e.Write(ctx, &b); err != nil {
							t.Fatalf("entry %s: %v", e.Name, err)
						}
						if int64(b.Len()) != e.Size || b.String() != wantFiles[e.Name] {
							t.Errorf("entry %s: %d bytes (announced %d), equal to the local export: %v", e.Name, b.Len(), e.Size, b.String() == wantFiles[e.Name])
						}
					}
				})
			}
		}
	}
}

// TestRemoteExportChangedObject: an object rewritten after the VLA was opened
// (same size, other bytes: only its ETag tells) fails the export with a
// message naming it, and nothing is left behind — the shards already written
// included. A cancelled remote export stops as a local one does.
func TestRemoteExportChangedObject(t *testing.T) {
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "models")
	s3.PutDir(t, "models", "base", fixtures+"/base")
	side := openSide(t, "s3://models/base")
	m := shardedMask(t, side)

	// Stopped by its context before it starts, and in the middle of a file.
	for _, name := range []string{"masked", "sliced"} {
		kind, _ := LookupExport(name)
		parent := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var ie *InterruptedError
		if err := kind.WriteFolder(ctx, filepath.Join(parent, "out"), m, side); !errors.As(err, &ie) {
			t.Errorf("%s cancelled: %v, want an *InterruptedError", name, err)
		}
		if left, _ := os.ReadDir(parent); len(left) != 0 {
			t.Errorf("%s cancelled: left %v", name, left)
		}
		entries, err := kind.EntriesContext(context.Background(), m, side)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithCancel(context.Background())
		w := &cancelOnWrite{cancel: cancel}
		if err := entries[0].Write(ctx, w); !errors.Is(err, context.Canceled) || w.n >= entries[0].Size {
			t.Errorf("%s entry cancelled on its first write: %v after %d of %d bytes", name, err, w.n, entries[0].Size)
		}
	}

	last := side.Sources[0].Files[len(side.Sources[0].Files)-1]
	key := strings.TrimPrefix(last.Path, "s3://models/")
	data := readAll(t, filepath.Join(fixtures, key))
	data[len(data)-1] ^= 0xff // the last tensor's last byte: the header still parses
	s3.PutBytes(t, "models", key, data)
	for _, name := range []string{"masked", "sliced"} {
		kind, _ := LookupExport(name)
		parent := t.TempDir()
		err := kind.WriteFolder(context.Background(), filepath.Join(parent, "out"), m, side)
		if err == nil || !strings.Contains(err.Error(), last.Path) || !strings.Contains(err.Error(), "changed") {
			t.Errorf("%s of a changed object: %v; want an error naming %s and saying it changed", name, err, last.Path)
		}
		if left, _ := os.ReadDir(parent); len(left) != 0 {
			t.Errorf("%s of a changed object left %v", name, left)
		}
	}
}

// shardedMask resolves a mask on the 4-shard base fixture analysed against
// itself (ΔW is zero, so the selection falls to position order), so that
// each shard has masked tensors.
func shardedMask(t *testing.T, side *checkpoint.Side) *Mask {
	t.Helper()
	local := openSide(t, fixtures+"/base")
	res := analyzeSelf(t, local)
	m, err := Resolve(res, Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.25, Direction: DirHighest}, {Module: ModSigLIPFFN, Ratio: 0.5, Direction: DirLowest, Scope: ScopeLayer}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkAgainst(m, side); err != nil {
		t.Fatal(err)
	}
	return m
}

func openSide(t *testing.T, spec string) *checkpoint.Side {
	t.Helper()
	s, err := checkpoint.OpenSide([]string{spec}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	if !slices.Equal(keys(want), keys(got)) {
		t.Fatalf("files %v, want %v", keys(got), keys(want))
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s differs from the local export (%d bytes, want %d)", name, len(got[name]), len(w))
		}
	}
}

func keys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyInto(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, string(readAll(t, from)))
}

func analyzeSelf(t *testing.T, side *checkpoint.Side) *analysis.Result {
	t.Helper()
	res, err := analysis.Analyze(context.Background(), side, side, analysis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRemoteExportCancelWhileFetching: an export whose store has stopped
// answering (every ranged read a 503, retried with backoff) stops within a
// second of its cancel, mid-fetch, and removes what it wrote.
func TestRemoteExportCancelWhileFetching(t *testing.T) {
	hub := hubtest.Start(t)
	hub.Commit(t, "lab/pi05", "main", false, hubtest.Dir(t, "base", fixtures+"/base"))
	side := openSide(t, "hf://lab/pi05/base")
	m := shardedMask(t, side)
	for _, name := range []string{"masked", "sliced"} {
		kind, _ := LookupExport(name)
		parent := t.TempDir()
		hub.FailRanges.Store(1 << 30)
		ranges := hub.CDNRanges.Load()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- kind.WriteFolder(ctx, filepath.Join(parent, "out"), m, side) }()
		deadline := time.Now().Add(10 * time.Second)
		for hub.CDNRanges.Load() == ranges && time.Now().Before(deadline) { // the export is waiting on the store
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
		start := time.Now()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: still running 5 s after the cancel", name)
		}
		var ie *InterruptedError
		if !errors.As(err, &ie) || time.Since(start) > time.Second {
			t.Errorf("%s: %v after %v; want an *InterruptedError within 1 s", name, err, time.Since(start))
		}
		if left, _ := os.ReadDir(parent); len(left) != 0 {
			t.Errorf("%s: left %v", name, left)
		}
		hub.FailRanges.Store(0)
	}
}
