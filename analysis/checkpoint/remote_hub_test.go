package checkpoint

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/hubtest"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// hubFixtures publishes the π0.5 fixtures as lab/pi05 on a stand-in Hub:
// base/ (sharded, with its index) and vla/model.safetensors.
func hubFixtures(t *testing.T) (*hubtest.Hub, string) {
	h := hubtest.Start(t)
	files := hubtest.Dir(t, "base", testfixtures.Path("pi05", "base"))
	for k, v := range hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")) {
		files[k] = v
	}
	sha := h.Commit(t, "lab/pi05", "main", false, files)
	return h, sha
}

// TestHubHeadersOnlyAndPinned: a Hub folder with an index and a single file
// open from their headers alone (through the resolve URL, its redirect and
// the CDN's ranges), give the local files' tensors and bytes, and name the
// commit read: a branch that moves afterwards changes nothing.
func TestHubHeadersOnlyAndPinned(t *testing.T) {
	h, sha := hubFixtures(t)
	count := countRemote(t)
	for _, c := range []struct{ local, remote string }{
		{testfixtures.Path("pi05", "base"), "hf://lab/pi05/base"},
		{testfixtures.Path("pi05", "vla", "model.safetensors"), "hf://lab/pi05@main/vla/model.safetensors"},
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
			t.Errorf("%s: opening fetched %d bytes of %d; want only the headers", c.remote, got, total)
		}
		src := remote.Sources[0]
		if !strings.HasPrefix(src.Path, "hf://lab/pi05@"+sha+"/") {
			t.Errorf("source path %s: want the commit %s pinned", src.Path, sha)
		}
		for _, f := range src.Files {
			if !strings.HasPrefix(f.Path, "hf://lab/pi05@"+sha+"/") || len(f.HeadSHA) < 20 {
				t.Errorf("file identity %+v: want the pinned path and the ETag", f)
			}
		}
		local, err := OpenSide([]string{c.local}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		if c.remote == "hf://lab/pi05/base" {
			// main moves to a commit with other bytes: the open source still reads its own.
			h.Commit(t, "lab/pi05", "main", false, map[string]string{"base/model.safetensors.index.json": testfixtures.Path("pi05", "vla", "model.safetensors")})
		}
		sameTensors(t, local, remote)
		if c.remote == "hf://lab/pi05/base" {
			h.Commit(t, "lab/pi05", "main", false, hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")))
			var err error
			if sha, err = remoteSha(t, "hf://lab/pi05/vla/model.safetensors"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h.CDNRanges.Load() == 0 {
		t.Error("no ranged read went to the CDN: the redirect was not followed")
	}
}

func remoteSha(t *testing.T, p string) (string, error) {
	src, err := OpenSource(p, Options{})
	if err != nil {
		return "", err
	}
	defer src.Close()
	rest := strings.TrimPrefix(src.Path, "hf://lab/pi05@")
	return rest[:40], nil
}

// TestHubErrors: a gated repository without HF_TOKEN, a wrong token, a missing
// repository, revision or file are clear errors naming the path.
func TestHubErrors(t *testing.T) {
	h, _ := hubFixtures(t)
	h.Commit(t, "lab/gated", "main", true, hubtest.Dir(t, "", testfixtures.Path("pi05", "vla")))
	for _, c := range []struct{ path, token, want string }{
		{"hf://lab/gated/model.safetensors", "", "hf://lab/gated/model.safetensors: the Hub refused access (gated or private); set HF_TOKEN"},
		{"hf://lab/gated/model.safetensors", "hf_wrong", "the token has no access"},
		{"hf://lab/nope/model.safetensors", "", "has no repository lab/nope"},
		{"hf://lab/pi05@v9/base", "", `with a revision "v9"`},
		{"hf://lab/pi05/vla/nope.safetensors", "", "/vla/nope.safetensors: no such object or prefix"},
		{"hf://lab", "", "give a repository"},
		{"hf://lab/x?y=1/model.safetensors", "", "is not a Hub repository name"},
	} {
		t.Setenv("HF_TOKEN", c.token)
		_, err := OpenSource(c.path, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want %q", c.path, err, c.want)
		}
	}
	t.Setenv("HF_TOKEN", h.Token)
	src, err := OpenSource("hf://lab/gated/model.safetensors", Options{})
	if err != nil {
		t.Fatalf("gated with the token: %v", err)
	}
	defer src.Close()
	tn := &src.Tensors[0]
	if err := tn.ReadAt(make([]byte, tn.Size), 0); err != nil {
		t.Fatalf("reading a gated file with the token: %v", err)
	}
}

// TestHubRoots: --root hf://ORG allows that organisation's repositories only.
func TestHubRoots(t *testing.T) {
	hubFixtures(t)
	if src, err := OpenSource("hf://lab/pi05/vla/model.safetensors", Options{Roots: []string{"hf://lab"}}); err != nil {
		t.Fatalf("inside hf://lab: %v", err)
	} else {
		src.Close()
	}
	for _, p := range []string{"hf://labs/pi05/vla/model.safetensors", "hf://other/pi05/vla/model.safetensors"} {
		_, err := OpenSource(p, Options{Roots: []string{"hf://lab"}})
		var te *tensor.Error
		if !errors.As(err, &te) || !te.Forbidden {
			t.Errorf("%s under hf://lab: %v; want forbidden", p, err)
		}
	}
}

// TestHubTransientAndShort: transient CDN failures (503) are retried with
// backoff and the read succeeds; a file served shorter than the Hub announced
// is a clear error naming it, never a silent short read.
func TestHubTransientAndShort(t *testing.T) {
	h, _ := hubFixtures(t)
	fastRetries(t)
	src, err := OpenSource("hf://lab/pi05/vla/model.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	local, err := OpenSource(testfixtures.Path("pi05", "vla", "model.safetensors"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	h.FailRanges.Store(remoteRetries - 1)
	tn := &src.Tensors[0]
	got, want := make([]byte, tn.Size), make([]byte, tn.Size)
	if err := tn.ReadAt(got, 0); err != nil {
		t.Fatalf("read through %d transient failures: %v", remoteRetries-1, err)
	}
	if err := local.Tensors[0].ReadAt(want, 0); err != nil || string(got) != string(want) {
		t.Fatalf("bytes after retries differ (%v)", err)
	}
	if n := h.FailRanges.Load(); n != 0 {
		t.Errorf("%d injected failures left: the reader did not retry", n)
	}
	// A second source, opened before the mirror broke, has fetched its header only.
	src2, err := OpenSource("hf://lab/pi05/vla/model.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	h.CutBlobs.Store(10)
	tn = &src2.Tensors[0]
	err = tn.ReadAt(make([]byte, tn.Size), 0)
	if err == nil || !strings.Contains(err.Error(), "hf://lab/pi05@") || !strings.Contains(err.Error(), "vla/model.safetensors") || !strings.Contains(err.Error(), "Content-Range") {
		t.Fatalf("read of a short file: %v; want an error naming it", err)
	}
}
