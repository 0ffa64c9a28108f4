package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestCommentLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newCollabFixture(t)
	cell := CellKey("llm", 3, "attn_q")
	c1, err := f.db.CreateComment(ctx, f.analysis, NewComment{Target: TargetCell, Key: cell, Body: "  look at this  ", View: "/analyses/x?sel=a.b&tab=overview", UserID: f.aliceID})
	if err != nil {
		t.Fatal(err)
	}
	if c1.Body != "look at this" || c1.Author != "alice" || c1.Key != "llm/3/attn_q" || c1.View != "/analyses/x?sel=a.b&tab=overview" || c1.EditedAt != nil {
		t.Fatalf("created %+v", c1)
	}
	if _, err := f.db.CreateComment(ctx, f.analysis, NewComment{Target: TargetAnalysis, Body: "overall fine", UserID: f.bobID}); err != nil {
		t.Fatal(err)
	}
	rid := strconv.FormatInt(f.recipe.ID, 10)
	if _, err := f.db.CreateComment(ctx, f.analysis, NewComment{Target: TargetRecipe, Key: rid, Body: "ship it", UserID: f.bobID}); err != nil {
		t.Fatal(err)
	}

	thread, err := f.db.ListComments(ctx, f.analysis, CommentFilter{Target: TargetCell, Key: cell})
	if err != nil || len(thread) != 1 || thread[0].ID != c1.ID {
		t.Fatalf("cell thread: %+v, %v", thread, err)
	}
	all, err := f.db.ListComments(ctx, f.analysis, CommentFilter{})
	if err != nil || len(all) != 3 || all[0].ID != c1.ID {
		t.Fatalf("all comments, oldest first: %+v, %v", all, err)
	}

	up, err := f.db.UpdateComment(ctx, c1.ID, "look at **this**")
	if err != nil || up.Body != "look at **this**" || up.EditedAt == nil {
		t.Fatalf("update: %+v, %v", up, err)
	}
	if err := f.db.DeleteComment(ctx, c1.ID); err != nil {
		t.Fatal(err)
	}
	gone, err := f.db.GetComment(ctx, c1.ID)
	if err != nil || !gone.Deleted || gone.Body != "" {
		t.Fatalf("deleted comment keeps its text or is not marked: %+v, %v", gone, err)
	}
	if thread, _ := f.db.ListComments(ctx, f.analysis, CommentFilter{Target: TargetCell, Key: cell}); len(thread) != 0 {
		t.Fatalf("deleted comment still listed: %+v", thread)
	}
	if _, err := f.db.UpdateComment(ctx, c1.ID, "again"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("editing a deleted comment: %v", err)
	}
	if err := f.db.DeleteComment(ctx, c1.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestCommentValidation(t *testing.T) {
	ctx := context.Background()
	f := newCollabFixture(t)
	tests := []struct {
		name     string
		analysis string
		in       NewComment
		want     error
		mention  string
	}{
		{"empty body", f.analysis, NewComment{Target: TargetAnalysis, Body: "   "}, ErrInvalid, "text"},
		{"huge body", f.analysis, NewComment{Target: TargetAnalysis, Body: strings.Repeat("x", MaxCommentBody+1)}, ErrInvalid, "at most"},
		{"bad UTF-8", f.analysis, NewComment{Target: TargetAnalysis, Body: "\xff\xfe"}, ErrInvalid, "UTF-8"},
		{"unknown target", f.analysis, NewComment{Target: "unit-ish", Body: "x"}, ErrInvalid, "must be"},
		{"cell without key", f.analysis, NewComment{Target: TargetCell, Body: "x"}, ErrInvalid, "needs a key"},
		{"analysis with key", f.analysis, NewComment{Target: TargetAnalysis, Key: "k", Body: "x"}, ErrInvalid, "no key"},
		{"recipe of nobody", f.analysis, NewComment{Target: TargetRecipe, Key: "9999", Body: "x"}, ErrNotFound, "no recipe"},
		{"unknown analysis", "nope", NewComment{Target: TargetAnalysis, Body: "x"}, ErrNotFound, "nope"},
		{"absolute URL view", f.analysis, NewComment{Target: TargetAnalysis, Body: "x", View: "https://evil.example/"}, ErrInvalid, "local path"},
		{"scheme-relative view", f.analysis, NewComment{Target: TargetAnalysis, Body: "x", View: "//evil.example/a"}, ErrInvalid, "local path"},
		{"backslash view", f.analysis, NewComment{Target: TargetAnalysis, Body: "x", View: "/\\evil.example"}, ErrInvalid, "local path"},
		{"javascript view", f.analysis, NewComment{Target: TargetAnalysis, Body: "x", View: "javascript:alert(1)"}, ErrInvalid, "local path"},
		{"view with a newline", f.analysis, NewComment{Target: TargetAnalysis, Body: "x", View: "/a\nb"}, ErrInvalid, "local path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.db.CreateComment(ctx, tc.analysis, tc.in)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err %v, want %v mentioning %q", err, tc.want, tc.mention)
			}
		})
	}
	if _, err := f.db.ListComments(ctx, "nope", CommentFilter{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("list of an unknown analysis: %v", err)
	}
}

func TestCheckLocalView(t *testing.T) {
	for view, ok := range map[string]bool{
		"":                                 true,
		"/analyses/a1?sel=x%2Fy&tab=units": true,
		"/compare?a=1&b=2":                 true,
		"analyses/a1":                      false,
		"//host/x":                         false,
		"/x#frag":                          false,
		"http://host/x":                    false,
		"/a b":                             false,
	} {
		if err := CheckLocalView(view); (err == nil) != ok {
			t.Errorf("CheckLocalView(%q) = %v, want ok=%v", view, err, ok)
		}
	}
}
