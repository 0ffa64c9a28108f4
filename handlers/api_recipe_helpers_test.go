package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// recipeServer is a server whose store holds the π0.5 fixture analysis, done,
// with only the routes of this feature mounted (so its tests do not depend on
// the rest of the route table or its middleware).
type recipeServer struct {
	*httptest.Server
	srv  *Server
	db   *store.DB
	root string
	id   string // the done fixture analysis
}

// newRecipeServer is a live server holding the π0.5 fixture's analysis,
// done; its job runner is not started.
func newRecipeServer(t *testing.T) *recipeServer {
	t.Helper()
	var id string
	l := startLiveServer(t, testServerOptions{prepare: func(db *store.DB, root string) {
		id = analyzeInto(t, db, root, []string{"pi05/base"}, []string{"pi05/vla/model.safetensors"})
	}})
	return &recipeServer{Server: l.Server, srv: l.srv, db: l.db, root: l.root, id: id}
}

// analyzeInto runs an analysis of specs (relative to root) the way the job
// runner does and stores it, done.
func analyzeInto(t testing.TB, db *store.DB, root string, baseSpecs, vlaSpecs []string) string {
	t.Helper()
	abs := func(specs []string) []string { // as the server stores them
		out := make([]string, len(specs))
		for i, s := range specs {
			out[i] = filepath.Join(root, s)
		}
		return out
	}
	return analyzeSpecs(t, db, []string{root}, abs(baseSpecs), abs(vlaSpecs))
}

// analyzeSpecs runs an analysis of absolute or remote specs, read under
// roots, as the job runner does and stores it, done.
func analyzeSpecs(t testing.TB, db *store.DB, roots, baseSpecs, vlaSpecs []string) string {
	t.Helper()
	ctx := context.Background()
	a, err := db.CreateAnalysis(ctx, store.AnalysisRequest{Base: baseSpecs, VLA: vlaSpecs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimNext(ctx); err != nil {
		t.Fatal(err)
	}
	opt := checkpoint.Options{Roots: roots}
	base, err := checkpoint.OpenSide(baseSpecs, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide(vlaSpecs, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer vla.Close()
	res, err := analysis.Analyze(ctx, base, vla, analysis.Options{Fingerprint: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Finish(ctx, a.ID, jobs.Record(base, res.BaseFingerprint), jobs.Record(vla, res.VLAFingerprint), res); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

var (
	fixtureOnce     sync.Once
	fixtureResult   *analysis.Result
	fixtureVLANames []arch.Named
)

// directFixture analyzes the fixture pair in memory, without the store or the
// server: the reference the API's answers are checked against.
func directFixture(t *testing.T) (*analysis.Result, []arch.Named) {
	t.Helper()
	fixtureOnce.Do(func() {
		base, err := checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05/base")}, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		vla, err := checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05/vla/model.safetensors")}, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer vla.Close()
		fixtureVLANames = vla.Named()
		if fixtureResult, err = analysis.Analyze(context.Background(), base, vla, analysis.Options{}); err != nil {
			t.Fatal(err)
		}
	})
	if fixtureResult == nil {
		t.Fatal("fixture analysis failed in an earlier test")
	}
	return fixtureResult, fixtureVLANames
}

// call sends a request and decodes a JSON answer into out (when not nil).
func (s *recipeServer) call(t *testing.T, method, path, body string, out any) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %.300s", method, path, err, data)
		}
	}
	return resp.StatusCode, resp.Header, data
}

// readDirNames lists the export folder under the server's data folder.
func readDirNames(s *Server) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(filepath.Dir(s.db.Path()), "exports"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}
