package store

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestClaimIDAndRequeue(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	var ids []string
	for range 3 {
		a, err := db.CreateAnalysis(ctx, sampleRequest)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if got, err := db.QueuedIDs(ctx); err != nil || !slices.Equal(got, ids) {
		t.Fatalf("QueuedIDs = %v, %v; want %v (oldest first)", got, err, ids)
	}
	a, err := db.ClaimID(ctx, ids[1])
	if err != nil || a.Status != StatusRunning || a.Attempts != 1 {
		t.Fatalf("ClaimID: %+v, %v; want running, attempt 1", a, err)
	}
	// A rescued job takes the running analysis over: one more attempt.
	if a, err = db.ClaimID(ctx, ids[1]); err != nil || a.Status != StatusRunning || a.Attempts != 2 {
		t.Fatalf("ClaimID of a running analysis: %+v, %v; want running, attempt 2", a, err)
	}
	if got, _ := db.QueuedIDs(ctx); !slices.Equal(got, []string{ids[0], ids[2]}) {
		t.Fatalf("QueuedIDs after a claim = %v", got)
	}
	if err := db.Requeue(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Get(ctx, ids[1]); a.Status != StatusQueued || a.StartedAt != nil {
		t.Fatalf("after Requeue: %+v, want queued", a)
	}
	if _, err := db.Cancel(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimID(ctx, ids[0]); !errors.Is(err, ErrConflict) {
		t.Fatalf("ClaimID of a cancelled analysis: %v, want ErrConflict", err)
	}
	if err := db.Requeue(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Get(ctx, ids[0]); a.Status != StatusCancelled {
		t.Fatalf("Requeue touched a cancelled analysis: %s", a.Status)
	}
	if _, err := db.ClaimID(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ClaimID of an unknown analysis: %v, want ErrNotFound", err)
	}
}
