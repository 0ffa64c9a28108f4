package handlers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// accountsServer is a real server in accounts mode with the π0.5 fixture
// under its root and a running job runner.
type accountsServer struct {
	*httptest.Server
	db   *store.DB
	root string
}

func newAccountsServer(t *testing.T) *accountsServer {
	t.Helper()
	l := startLiveServer(t, testServerOptions{config: func(c *Config) { c.Auth = AuthAccounts }})
	l.start()
	return &accountsServer{Server: l.Server, db: l.db, root: l.root}
}

// user creates an account and a login session for scripted API calls.
func (s *accountsServer) user(t *testing.T, name string, role store.Role) string {
	t.Helper()
	u, err := s.db.CreateUser(context.Background(), name, role, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := s.db.CreateSession(context.Background(), u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// call sends an API request as the session's user (no Origin header: a
// script, which cross-origin protection lets through).
func (s *accountsServer) call(t *testing.T, session, method, path, contentType, body string, want int) string {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	return string(data)
}

func (s *accountsServer) analyze(t *testing.T, session string, base, vla []string) string {
	t.Helper()
	q, _ := json.Marshal(map[string][]string{"base": base, "vla": vla})
	var created struct{ ID string }
	json.Unmarshal([]byte(s.call(t, session, "POST", "/api/analyses", "application/json", string(q), http.StatusAccepted)), &created)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		a, err := s.db.Get(context.Background(), created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status == store.StatusDone {
			return a.ID
		}
		if a.Status.Terminal() {
			t.Fatalf("analysis ended %s: %s", a.Status, a.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("analysis did not finish")
	return ""
}

// jsReady waits until common.js and the page module have wired the page's forms and buttons.
var jsReady = chromedp.WaitReady(chromedp.CSS(`html[data-js="ready"]`))

// login signs a browser in through the login page and waits for next.
func login(t *testing.T, ctx context.Context, base, name, next, readySel string) {
	t.Helper()
	browserDo(t, ctx, "log in as "+name, 30*time.Second,
		chromedp.Navigate(base+"/login?next="+strings.ReplaceAll(strings.ReplaceAll(next, "%", "%25"), "&", "%26")),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SetValue(chromedp.CSS("#name"), name),
		chromedp.SetValue(chromedp.CSS("#password"), testPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(readySel)),
		jsReady)
}

// Two people review together: a viewer comments on a heatmap cell, an editor
// opens the same view, reads the comment and approves the recipe; then the
// comparison and the evaluation chart, as the editor sees them.
func TestBrowserTwoUsersReview(t *testing.T) {
	chromiumPath(t) // skip (or, under CI=true, fail) before any set-up without a browser
	s := newAccountsServer(t)
	s.user(t, "alice", store.RoleViewer)
	bob := s.user(t, "bob", store.RoleEditor)
	id := s.analyze(t, bob, []string{"pi05/base"}, []string{"pi05/vla/model.safetensors"})
	// Carol writes the recipe; bob, a second reviewer, approves it below (an
	// author may not approve their own recipe).
	carol := s.user(t, "carol", store.RoleEditor)
	var rec struct{ ID int64 }
	json.Unmarshal([]byte(s.call(t, carol, "POST", "/api/analyses/"+id+"/recipes", "application/json",
		`{"name": "pi05 light", "recipe": {"preset": "pi05-light"}}`, http.StatusCreated)), &rec)

	// Alice, a viewer, opens a cell's view and comments on it.
	sel := "paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.up_proj.weight"
	view := web.AnalysisViewURL(id, map[string][]string{"sel": {sel}, "metric": {"abs"}})
	alice := newBrowser(t)
	login(t, alice, s.URL, "alice", view, `[data-testid="comment-form"]`)
	browserWait(t, alice, "who is signed in", `document.querySelector('[data-testid="whoami"]')?.hidden === false && document.querySelector('[data-who-name]').textContent === 'alice (viewer)'`, 10*time.Second)
	if hidden := browserEval[bool](t, alice, `document.querySelector('[data-testid="admin-link"]').hidden`); !hidden {
		t.Error("a viewer is shown the link to the accounts page")
	}
	if title := browserEval[string](t, alice, `document.getElementById('comments-title').textContent`); title != "Comments on the cell llm · layer 1 · ffn_up" {
		t.Fatalf("alice sees the thread %q", title)
	}
	browserDo(t, alice, "write a comment", 20*time.Second,
		chromedp.SetValue(chromedp.CSS(`[data-testid="comment-text"]`), "Layer 1 up_proj **moved** most; see [the paper](https://arxiv.org/abs/2606.31382)"),
		chromedp.Click(chromedp.CSS(`[data-testid="comment-submit"]`)))
	browserWait(t, alice, "the comment in the thread", `[...document.querySelectorAll('[data-testid="comment-body"] strong')].some(e => e.textContent === 'moved')`, 20*time.Second)
	// A viewer sees no review buttons on the recipe page.
	browserDo(t, alice, "open the recipe as a viewer", 20*time.Second, chromedp.Navigate(s.URL+web.RecipeURL(id, rec.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="review"]`)))
	if n := browserEval[int](t, alice, `document.querySelectorAll('[data-testid="review-form"]').length`); n != 0 {
		t.Errorf("a viewer is offered %d review forms", n)
	}

	// Bob, an editor, opens the same view and finds Alice's comment.
	bobCtx := newBrowser(t)
	login(t, bobCtx, s.URL, "bob", view, `[data-testid="comment"]`)
	if who := browserEval[string](t, bobCtx, `document.querySelector('[data-testid="comment-author"]').textContent`); who != "alice" {
		t.Errorf("bob sees a comment by %q", who)
	}
	link := browserEval[string](t, bobCtx, `document.querySelector('[data-testid="comment-view"]').getAttribute('href')`)
	if link != view {
		t.Errorf("the comment links to %q, want the view it was made on, %q", link, view)
	}
	if n := browserEval[int](t, bobCtx, `document.querySelectorAll('[data-testid="comment"] [data-toggle]').length`); n != 0 {
		t.Errorf("bob is offered to edit alice's comment")
	}

	// Bob approves the recipe: send it for review, then approve.
	browserDo(t, bobCtx, "open the recipe", 20*time.Second, chromedp.Navigate(s.URL+web.RecipeURL(id, rec.ID)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="review-in_review"]`)), jsReady,
		chromedp.Click(chromedp.CSS(`[data-testid="review-in_review"]`)))
	browserWait(t, bobCtx, "in review", `document.querySelector('[data-testid="review-status"]')?.textContent === 'in_review' && !!document.querySelector('[data-testid="review-approved"]')`, 20*time.Second)
	browserDo(t, bobCtx, "approve", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="review-approved"]`)))
	browserWait(t, bobCtx, "approved", `document.querySelector('[data-testid="review-status"]')?.textContent === 'approved'`, 20*time.Second)
	got, err := s.db.GetRecipe(context.Background(), rec.ID)
	if err != nil || got.ReviewStatus != store.ReviewApproved {
		t.Fatalf("recipe after bob's approval: %+v, %v", got, err)
	}
	hist, _ := s.db.ReviewHistory(context.Background(), rec.ID)
	if len(hist) != 2 || hist[1].Author != "bob" {
		t.Errorf("review history %+v", hist)
	}

	// The comparison: the fixture pair beside a generated π0.5-shaped pair.
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "pi05", Scale: 0.02, Out: filepath.Join(s.root, "synth"), Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	in := func(specs []string) []string {
		out := make([]string, len(specs))
		for i, p := range specs {
			out[i] = filepath.Join("synth", p)
		}
		return out
	}
	other := s.analyze(t, bob, in(pair.Base), in(pair.VLA))
	browserDo(t, bobCtx, "open the comparison", 20*time.Second, chromedp.Navigate(s.URL+web.AnalysesCompareURL(id, other)))
	for _, chart := range []string{"cmp-a-llm", "cmp-b-llm", "cmp-diff-llm"} {
		browserWait(t, bobCtx, chart, heatmapDrawn(chart), 20*time.Second)
	}
	if rows := browserEval[int](t, bobCtx, `document.querySelectorAll('[data-testid="table-modules"] tbody tr').length`); rows < 2 {
		t.Errorf("the Spearman table has %d rows", rows)
	}

	// Evaluation results imported from a CSV through the page's form.
	csvPath := filepath.Join(t.TempDir(), "evals.csv")
	csv := "recipe,benchmark,success_rate,episodes,notes\nbaseline,LIBERO-Spatial,96.9%,50,\npi05 light,LIBERO-Spatial,0.933,50,\n" + strconv.FormatInt(rec.ID, 10) + ",LIBERO-Goal,89,50,run 2\nbaseline,LIBERO-Goal,0.95,50,\n"
	if err := os.WriteFile(csvPath, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	browserDo(t, bobCtx, "import a CSV", 20*time.Second, chromedp.Navigate(s.URL+web.EvalsURL(id)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="eval-import"]`)), jsReady,
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="eval-import"] input[type="file"]`), []string{csvPath}),
		chromedp.Click(chromedp.CSS(`[data-testid="eval-import"] button`)))
	browserWait(t, bobCtx, "the evaluation chart", heatmapDrawn("chart-evals"), 30*time.Second)
	if n := browserEval[int](t, bobCtx, `echarts.getInstanceByDom(document.getElementById('chart-evals')).getOption().series.length`); n != 3 {
		t.Errorf("the chart has %d series, want two benchmarks and their average", n)
	}
}

// An admin finds the accounts page from the top bar of any page.
func TestBrowserAdminFindsAccounts(t *testing.T) {
	chromiumPath(t)
	s := newAccountsServer(t)
	s.user(t, "root", store.RoleAdmin)
	b := newBrowser(t)
	login(t, b, s.URL, "root", "/", `[data-testid="whoami"]`)
	browserWait(t, b, "the accounts link", `document.querySelector('[data-testid="admin-link"]')?.hidden === false`, 10*time.Second)
	browserDo(t, b, "open the accounts page", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="admin-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`main`)))
	browserWait(t, b, "the accounts page", `location.pathname === '`+web.AdminUsersURL()+`' && !!document.querySelector('[data-testid="admin-user"][data-user="root"]')`, 10*time.Second)
}
