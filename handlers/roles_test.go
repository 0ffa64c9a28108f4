package handlers

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/store"
)

// The role findings of issue 14: editors could delete each other's recipes
// and approve their own. Now deleting someone else's recipe needs an admin,
// the author may not approve their own recipe (a second reviewer must), and
// what editors do to each other's analyses and recipes (cancel, rename, edit,
// delete) is in the activity feed with who did it.
func TestEditorsShareButAreAccountable(t *testing.T) {
	s, tok := tokenServer(t, nil, "root", "alice", "bob")
	ctx := context.Background()
	if _, err := s.db.SetUserRole(ctx, "root", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	aliceUser, _ := s.db.GetUser(ctx, "alice")
	a, err := s.db.CreateAnalysis(ctx, store.AnalysisRequest{Base: []string{"/m/base"}, VLA: []string{"/m/vla"}})
	if err != nil {
		t.Fatal(err)
	}
	var recipes []int64
	for _, name := range []string{"light", "heavy"} {
		r, err := s.db.CreateRecipe(ctx, a.ID, store.NewRecipe{Name: name, Recipe: json.RawMessage(`{"rules":[]}`), CreatedBy: &aliceUser.ID})
		if err != nil {
			t.Fatal(err)
		}
		recipes = append(recipes, r.ID)
	}
	alice, bob, root := tusClient{s.URL, tok["alice"]}, tusClient{s.URL, tok["bob"]}, tusClient{s.URL, tok["root"]}
	recipe := func(i int) string { return "/api/analyses/" + a.ID + "/recipes/" + strconv.FormatInt(recipes[i], 10) }
	review := func(i int) string { return "/api/recipes/" + strconv.FormatInt(recipes[i], 10) + "/review" }
	json := func(c tusClient, method, url, body string) (int, string) {
		t.Helper()
		resp, out := c.req(t, method, url, strings.NewReader(body), "Content-Type", "application/json")
		return resp.StatusCode, out
	}
	for _, st := range []struct {
		name         string
		who          tusClient
		method, url  string
		body         string
		status       int
		wantInAnswer string
	}{
		{"bob edits alice's recipe", bob, "PUT", recipe(0), `{"note": "lighter"}`, 200, `"note":"lighter"`},
		{"bob renames alice's analysis", bob, "PATCH", "/api/analyses/" + a.ID, `{"name": "bob's name"}`, 200, "bob's name"},
		{"bob may not delete alice's recipe", bob, "DELETE", recipe(1), "", 403, "author or an admin"},
		{"alice sends hers for review", alice, "POST", review(0), `{"status": "in_review"}`, 200, "in_review"},
		{"alice may not approve her own", alice, "POST", review(0), `{"status": "approved"}`, 403, "a second reviewer must"},
		{"bob approves it", bob, "POST", review(0), `{"status": "approved"}`, 200, `"status":"approved"`},
		{"an admin deletes alice's other recipe", root, "DELETE", recipe(1), "", 204, ""},
		{"bob cancels alice's analysis", bob, "POST", "/api/analyses/" + a.ID + "/cancel", "", 200, "cancelled"},
	} {
		code, out := json(st.who, st.method, st.url, st.body)
		if code != st.status || !strings.Contains(out, st.wantInAnswer) {
			t.Errorf("%s: %d %s, want %d with %q", st.name, code, out, st.status, st.wantInAnswer)
		}
	}
	_, feed := json(alice, "GET", "/api/analyses/"+a.ID+"/activity", "")
	for _, want := range []string{
		`"author":"bob","action":{`, `"action":"edited the recipe","target":"light"`,
		`"action":"renamed or retagged the analysis","target":"bob's name"`,
		`"author":"root","action":{`, `"action":"deleted the recipe","target":"heavy"`,
		`"action":"cancelled the analysis"`, `"to":"approved"`,
	} {
		if !strings.Contains(feed, want) {
			t.Errorf("the feed lacks %s: %s", want, feed)
		}
	}
}
