package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRecipeCRUD(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	rules := json.RawMessage(`{"name":"r","rules":[{"module":"llm.ffn_channel","ratio":0.2,"direction":"highest"}]}`)

	r1, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "  light  ", Note: "first", Recipe: rules})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Name != "light" || r1.Note != "first" || r1.ReviewStatus != ReviewDraft || r1.AnalysisID != a.ID || string(r1.Recipe) != string(rules) {
		t.Fatalf("created %+v", r1)
	}
	got, err := db.GetRecipe(ctx, r1.ID)
	if err != nil || got.Name != "light" || !got.CreatedAt.Equal(r1.CreatedAt) {
		t.Fatalf("get: %+v, %v", got, err)
	}

	name, other := "light v2", json.RawMessage(`{"name":"r","rules":[]}`)
	up, err := db.UpdateRecipe(ctx, r1.ID, RecipeChange{Name: &name, Recipe: other})
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != name || up.Note != "first" || string(up.Recipe) != string(other) || !up.UpdatedAt.After(r1.UpdatedAt) {
		t.Fatalf("updated %+v", up)
	}

	dup, err := db.DuplicateRecipe(ctx, r1.ID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if dup.ID == r1.ID || dup.Name != "light v2 (copy)" || dup.Note != "first" || string(dup.Recipe) != string(other) || dup.AnalysisID != a.ID {
		t.Fatalf("duplicate %+v", dup)
	}

	list, err := db.ListRecipes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != dup.ID || list[1].ID != r1.ID {
		t.Fatalf("list: want the copy first (most recently changed), got %+v", list)
	}

	if err := db.DeleteRecipe(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetRecipe(ctx, r1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if list, _ := db.ListRecipes(ctx, a.ID); len(list) != 1 {
		t.Fatalf("list after delete: %d recipes", len(list))
	}
}

func TestRecipeErrors(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	ok := json.RawMessage(`{"rules":[]}`)
	empty, long := "", strings.Repeat("x", MaxRecipeName+1)
	for _, c := range []struct {
		name string
		err  func() error
		want error
	}{
		{"unknown analysis", func() error {
			_, err := db.CreateRecipe(ctx, "nope", NewRecipe{Name: "x", Recipe: ok})
			return err
		}, ErrNotFound},
		{"no name", func() error { _, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: " ", Recipe: ok}); return err }, ErrInvalid},
		{"name too long", func() error { _, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: long, Recipe: ok}); return err }, ErrInvalid},
		{"no recipe", func() error { _, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "x"}); return err }, ErrInvalid},
		{"bad JSON", func() error {
			_, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "x", Recipe: json.RawMessage(`{"rules":`)})
			return err
		}, ErrInvalid},
		{"list unknown analysis", func() error { _, err := db.ListRecipes(ctx, "nope"); return err }, ErrNotFound},
		{"get unknown", func() error { _, err := db.GetRecipe(ctx, 999); return err }, ErrNotFound},
		{"update unknown", func() error { _, err := db.UpdateRecipe(ctx, 999, RecipeChange{Recipe: ok}); return err }, ErrNotFound},
		{"update empty name", func() error {
			r, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "x", Recipe: ok})
			if err != nil {
				return err
			}
			_, err = db.UpdateRecipe(ctx, r.ID, RecipeChange{Name: &empty})
			return err
		}, ErrInvalid},
		{"duplicate unknown", func() error { _, err := db.DuplicateRecipe(ctx, 999, "", nil); return err }, ErrNotFound},
		{"delete unknown", func() error { return db.DeleteRecipe(ctx, 999) }, ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.err(); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestRecipesGoWithTheirAnalysis(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, _ := db.CreateAnalysis(ctx, sampleRequest)
	r, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "x", Recipe: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx, `DELETE FROM analyses WHERE id = ?`, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetRecipe(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("recipe outlived its analysis: %v", err)
	}
}

// Approval is of particular rules: new rules send the recipe back to draft,
// a new name does not.
func TestUpdateRecipeResetsReview(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	a, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := db.CreateRecipe(ctx, a.ID, NewRecipe{Name: "r", Recipe: json.RawMessage(`{"name":"r","rules":[{"module":"llm.ffn_channel","ratio":0.1}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"in_review", "approved"} {
		if _, err := db.SetReviewStatus(ctx, rec.ID, to, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	name := "renamed"
	if got, err := db.UpdateRecipe(ctx, rec.ID, RecipeChange{Name: &name, Recipe: json.RawMessage(`{"name":"renamed","rules":[{"module":"llm.ffn_channel","ratio":0.1}]}`)}); err != nil || got.ReviewStatus != ReviewApproved {
		t.Fatalf("rename: %v, status %v", err, got)
	}
	got, err := db.UpdateRecipe(ctx, rec.ID, RecipeChange{Recipe: json.RawMessage(`{"name":"renamed","rules":[{"module":"llm.ffn_channel","ratio":0.2}]}`)})
	if err != nil || got.ReviewStatus != ReviewDraft {
		t.Fatalf("new rules: %v, status %v", err, got)
	}
	hist, _ := db.ReviewHistory(ctx, rec.ID)
	if last := hist[len(hist)-1]; last.From != "approved" || last.To != "draft" || last.Note == "" {
		t.Errorf("history ends with %+v", last)
	}
}
