package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// collabFixture is an analysis with one recipe and two users.
type collabFixture struct {
	db             *DB
	analysis       string
	recipe         *Recipe
	alice, bob     *User
	aliceID, bobID *int64
}

func newCollabFixture(t *testing.T) *collabFixture {
	t.Helper()
	ctx := context.Background()
	db := mustOpen(t)
	a, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "light", Recipe: json.RawMessage(`{"rules":[]}`)})
	if err != nil {
		t.Fatal(err)
	}
	f := &collabFixture{db: db, analysis: a.ID, recipe: r}
	if f.alice, err = db.CreateUser(ctx, "alice", RoleViewer, ""); err != nil {
		t.Fatal(err)
	}
	if f.bob, err = db.CreateUser(ctx, "bob", RoleEditor, ""); err != nil {
		t.Fatal(err)
	}
	f.aliceID, f.bobID = &f.alice.ID, &f.bob.ID
	return f
}

func TestReviewWorkflow(t *testing.T) {
	ctx := context.Background()
	f := newCollabFixture(t)
	steps := []struct {
		to      string
		wantErr error // nil: allowed
	}{
		{ReviewApproved, ErrConflict}, // a draft must be reviewed first
		{ReviewInReview, nil},
		{ReviewInReview, ErrConflict},
		{ReviewApproved, nil},
		{ReviewRejected, ErrConflict},
		{ReviewDraft, nil},
		{ReviewInReview, nil},
		{ReviewRejected, nil},
		{"published", ErrInvalid},
	}
	from := ReviewDraft
	var accepted []string
	for i, st := range steps {
		ev, err := f.db.SetReviewStatus(ctx, f.recipe.ID, st.to, " step "+st.to+" ", f.bobID)
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("step %d → %s: err %v, want %v", i, st.to, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d → %s: %v", i, st.to, err)
		}
		if ev.From != from || ev.To != st.to || ev.Author != "bob" || ev.Note != "step "+st.to || ev.RecipeID != f.recipe.ID {
			t.Fatalf("step %d: event %+v", i, ev)
		}
		from = st.to
		accepted = append(accepted, st.to)
	}
	r, err := f.db.GetRecipe(ctx, f.recipe.ID)
	if err != nil || r.ReviewStatus != ReviewRejected {
		t.Fatalf("recipe after the workflow: %+v, %v", r, err)
	}
	hist, err := f.db.ReviewHistory(ctx, f.recipe.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range hist {
		got = append(got, e.To)
	}
	if strings.Join(got, ",") != strings.Join(accepted, ",") {
		t.Fatalf("history %v, want %v", got, accepted)
	}
	if _, err := f.db.SetReviewStatus(ctx, 9999, ReviewInReview, "", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown recipe: %v", err)
	}
	if _, err := f.db.ReviewHistory(ctx, 9999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("history of an unknown recipe: %v", err)
	}
}

func TestReviewConflictNamesTheWay(t *testing.T) {
	f := newCollabFixture(t)
	_, err := f.db.SetReviewStatus(context.Background(), f.recipe.ID, ReviewApproved, "", nil)
	if err == nil || !strings.Contains(err.Error(), "draft") || !strings.Contains(err.Error(), "in_review") {
		t.Fatalf("err %v: should say the recipe is a draft and can go to in_review", err)
	}
}
