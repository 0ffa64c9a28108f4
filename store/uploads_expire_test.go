package store

import (
	"context"
	"testing"
	"time"
)

func TestExpireAbandonedUploads(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return clock }

	old, _ := db.CreateUpload(ctx, "s1", "base", "old.safetensors", 10)
	done, _ := db.CreateUpload(ctx, "s1", "base", "done.safetensors", 4)
	if err := db.AdvanceUpload(ctx, done.ID, 0, 4); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(8 * 24 * time.Hour)
	fresh, _ := db.CreateUpload(ctx, "s2", "vla", "fresh.safetensors", 10)
	cutoff := clock.Add(-7 * 24 * time.Hour)

	list, err := db.AbandonedUploads(ctx, cutoff)
	if err != nil || len(list) != 1 || list[0].ID != old.ID {
		t.Fatalf("abandoned: %v %v, want only %s (complete and fresh uploads stay)", list, err, old.ID)
	}
	// A chunk that arrives between the listing and the sweep keeps the upload alive.
	if err := db.AdvanceUpload(ctx, old.ID, 0, 3); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.ExpireUpload(ctx, old.ID, cutoff); ok || err != nil {
		t.Errorf("expired an upload that just received a chunk: %v %v", ok, err)
	}
	clock = clock.Add(8 * 24 * time.Hour)
	if ok, err := db.ExpireUpload(ctx, old.ID, clock.Add(-7*24*time.Hour)); !ok || err != nil {
		t.Errorf("idle upload not expired: %v %v", ok, err)
	}
	if n, _ := db.CountUploads(ctx); n != 2 {
		t.Errorf("%d uploads left, want the complete one and the fresh one", n)
	}
	if _, err := db.GetUpload(ctx, fresh.ID); err != nil {
		t.Error(err)
	}
}
