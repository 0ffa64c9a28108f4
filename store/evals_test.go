package store

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestEvalResults(t *testing.T) {
	ctx := context.Background()
	f := newCollabFixture(t)
	rid := f.recipe.ID
	got, err := f.db.AddEvalResults(ctx, f.analysis, []NewEval{
		{RecipeID: &rid, Benchmark: " LIBERO-Spatial ", SuccessRate: 0.933, Episodes: 500, Notes: "seed 0"},
		{Benchmark: "LIBERO-Spatial", SuccessRate: 0.969, Episodes: 500},
	}, f.bobID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Benchmark != "LIBERO-Spatial" || got[0].RecipeName != "light" || got[0].Author != "bob" || got[1].RecipeID != nil {
		t.Fatalf("added %+v", got)
	}
	list, err := f.db.ListEvalResults(ctx, f.analysis, EvalFilter{})
	if err != nil || len(list) != 2 || list[0].RecipeID != nil || list[1].SuccessRate != 0.933 {
		t.Fatalf("list (baseline first): %+v, %v", list, err)
	}
	mine, err := f.db.ListEvalResults(ctx, f.analysis, EvalFilter{RecipeID: &rid})
	if err != nil || len(mine) != 1 || *mine[0].RecipeID != rid {
		t.Fatalf("one recipe's results: %+v, %v", mine, err)
	}

	// A recipe of another analysis is refused, and nothing of the batch stays.
	other, err := f.db.CreateAnalysis(ctx, AnalysisRequest{Base: []string{"/b2"}, VLA: []string{"/v2"}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.db.CreateRecipe(ctx, other.ID, NewRecipe{Name: "x", Recipe: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.db.AddEvalResults(ctx, f.analysis, []NewEval{
		{Benchmark: "LIBERO-Goal", SuccessRate: 0.5, Episodes: 10},
		{RecipeID: &r2.ID, Benchmark: "LIBERO-Goal", SuccessRate: 0.5, Episodes: 10},
	}, nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "result 2") {
		t.Fatalf("foreign recipe: %v", err)
	}
	if list, _ := f.db.ListEvalResults(ctx, f.analysis, EvalFilter{}); len(list) != 2 {
		t.Fatalf("a refused batch left rows: %d results", len(list))
	}

	// Deleting the recipe removes its results, not the baseline's.
	if err := f.db.DeleteRecipe(ctx, rid); err != nil {
		t.Fatal(err)
	}
	if list, _ := f.db.ListEvalResults(ctx, f.analysis, EvalFilter{}); len(list) != 1 || list[0].RecipeID != nil {
		t.Fatalf("after deleting the recipe: %+v", list)
	}
}

func TestCheckEval(t *testing.T) {
	tests := []struct {
		name    string
		in      NewEval
		mention string // "" = valid
	}{
		{"valid", NewEval{Benchmark: "LIBERO-Long", SuccessRate: 1, Episodes: 0}, ""},
		{"no benchmark", NewEval{Benchmark: " ", SuccessRate: 0.5}, "benchmark"},
		{"rate above 1", NewEval{Benchmark: "b", SuccessRate: 1.01}, "success_rate"},
		{"negative rate", NewEval{Benchmark: "b", SuccessRate: -0.1}, "success_rate"},
		{"NaN rate", NewEval{Benchmark: "b", SuccessRate: math.NaN()}, "success_rate"},
		{"negative episodes", NewEval{Benchmark: "b", SuccessRate: 0.5, Episodes: -1}, "episodes"},
		{"long notes", NewEval{Benchmark: "b", SuccessRate: 0.5, Notes: strings.Repeat("n", MaxEvalNotes+1)}, "notes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckEval(&tc.in)
			if tc.mention == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err %v, want invalid mentioning %q", err, tc.mention)
			}
		})
	}
	if _, err := mustOpen(t).AddEvalResults(context.Background(), "x", nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestActivityFeed(t *testing.T) {
	ctx := context.Background()
	f := newCollabFixture(t)
	rid := f.recipe.ID
	mustDo := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustDo(f.db.CreateComment(ctx, f.analysis, NewComment{Target: TargetAnalysis, Body: "first", UserID: f.aliceID}))
	mustDo(f.db.SetReviewStatus(ctx, rid, ReviewInReview, "please", f.bobID))
	mustDo(f.db.AddEvalResults(ctx, f.analysis, []NewEval{{RecipeID: &rid, Benchmark: "LIBERO-Object", SuccessRate: 0.9, Episodes: 50}}, f.bobID))
	deleted, err := f.db.CreateComment(ctx, f.analysis, NewComment{Target: TargetAnalysis, Body: "oops", UserID: f.aliceID})
	mustDo(deleted, err)
	mustDo(nil, f.db.DeleteComment(ctx, deleted.ID))
	mustDo(f.db.SetReviewStatus(ctx, rid, ReviewApproved, "", f.bobID))

	feed, err := f.db.ActivityFeed(ctx, f.analysis, 50)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range feed {
		kinds = append(kinds, a.Kind)
	}
	if strings.Join(kinds, ",") != "review,eval,review,comment" {
		t.Fatalf("feed kinds %v, want newest first without the deleted comment", kinds)
	}
	if feed[0].Review.To != ReviewApproved || feed[0].Review.RecipeName != "light" || feed[0].Author != "bob" || feed[3].Comment.Body != "first" {
		t.Fatalf("feed %+v", feed)
	}
	if short, _ := f.db.ActivityFeed(ctx, f.analysis, 2); len(short) != 2 || short[0].Kind != "review" || short[1].Kind != "eval" {
		t.Fatalf("limited feed %+v", short)
	}
	if _, err := f.db.ActivityFeed(ctx, "nope", 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("feed of an unknown analysis: %v", err)
	}
}

// Results saved before the rebuild of eval_results keep their recipe and gain
// its analysis.
func TestEvalResultsSurviveMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := openTest(t, dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, err := old.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	r, err := old.CreateRecipe(ctx, a.ID, NewRecipe{Name: "old", Recipe: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.writer.Exec(`INSERT INTO eval_results (recipe_id, benchmark, success_rate, episodes, created_at) VALUES (?, 'LIBERO-Goal', 0.7, 20, 1)`, r.ID); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db := mustOpenDir(t, dir)
	list, err := db.ListEvalResults(ctx, a.ID, EvalFilter{})
	if err != nil || len(list) != 1 || list[0].RecipeID == nil || *list[0].RecipeID != r.ID || list[0].SuccessRate != 0.7 {
		t.Fatalf("after migration: %+v, %v", list, err)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}
