package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Uploads belong to an owner (nil without accounts): a session is its
// owner's, the quota counts an owner's uploads, listings show an owner's own.
func TestOwnedUploads(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	alice, err := db.CreateUser(ctx, "alice", RoleEditor, "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := db.CreateUser(ctx, "bob", RoleEditor, "a long enough password")
	quota := UploadQuota{Count: 2, Bytes: 100}
	a1, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "a1", Session: "s1", Side: "base", Path: "x.bin", Size: 60, Owner: &alice.ID}, quota)
	if err != nil || a1.Owner == nil || *a1.Owner != alice.ID {
		t.Fatalf("alice's upload: %+v %v", a1, err)
	}
	// bob cannot add to alice's session, nor can the owner-less local user.
	for _, owner := range []*int64{&bob.ID, nil} {
		if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "b1", Session: "s1", Side: "base", Path: "config.json", Size: 1, Owner: owner}, quota); !errors.Is(err, ErrNotFound) {
			t.Errorf("another owner adds to alice's session: %v", err)
		}
	}
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "a2", Session: "s1", Side: "base", Path: "x.bin", Size: 1, Owner: &alice.ID}, quota); !errors.Is(err, ErrConflict) {
		t.Errorf("the same file twice: %v", err)
	}
	var qe *QuotaError
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "a3", Session: "s1", Side: "vla", Path: "y.bin", Size: 41, Owner: &alice.ID}, quota); !errors.As(err, &qe) || qe.Bytes != 60 {
		t.Errorf("past the bytes: %v", err)
	}
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "a4", Session: "s1", Side: "vla", Path: "y.bin", Size: 40, Owner: &alice.ID}, quota); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "a5", Session: "s2", Side: "vla", Path: "z.bin", Size: 0, Owner: &alice.ID}, quota); !errors.As(err, &qe) || qe.Count != 2 {
		t.Errorf("past the count: %v", err)
	}
	// bob's quota is his own; the local user's too.
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "b2", Session: "s3", Side: "vla", Path: "z.bin", Size: 100, Owner: &bob.ID}, quota); err != nil {
		t.Errorf("bob's first upload: %v", err)
	}
	if _, err := db.CreateOwnedUpload(ctx, NewUpload{ID: "n1", Session: "s4", Side: "vla", Path: "z.bin", Size: 100}, quota); err != nil {
		t.Errorf("the local user's first upload: %v", err)
	}
	list, err := db.ListUploads(ctx, &alice.ID)
	if err != nil || len(list) != 2 {
		t.Errorf("alice's list: %d %v", len(list), err)
	}
	if list, _ := db.ListUploads(ctx, nil); len(list) != 1 || list[0].ID != "n1" {
		t.Errorf("the local user's list: %+v", list)
	}
	for _, c := range []struct {
		session string
		owner   *int64
		want    bool
	}{{"s1", &alice.ID, true}, {"s1", &bob.ID, false}, {"s1", nil, false}, {"s4", nil, true}} {
		if got, err := db.UploadSessionVisible(ctx, c.session, c.owner); err != nil || got != c.want {
			t.Errorf("session %s visible to %v: %v %v", c.session, c.owner, got, err)
		}
	}
	// A finished upload no analysis names is unused once old enough.
	if err := db.CompleteUpload(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	later := db.Now().Add(time.Hour)
	unused, err := db.UnusedCompleteUploads(ctx, later, func(u Upload) string { return "/data/uploads/" + u.Session + "/" + u.Side })
	if err != nil || len(unused) != 1 || unused[0].ID != "a1" {
		t.Fatalf("unused: %+v %v", unused, err)
	}
	if _, err := db.CreateAnalysis(ctx, AnalysisRequest{Base: []string{"/data/uploads/s1/base"}, VLA: []string{"/data/uploads/s1/base/x.bin"}}); err != nil {
		t.Fatal(err)
	}
	if unused, _ := db.UnusedCompleteUploads(ctx, later, func(u Upload) string { return "/data/uploads/" + u.Session + "/" + u.Side }); len(unused) != 0 {
		t.Errorf("an upload an analysis names is listed as unused: %+v", unused)
	}
	if gone, err := db.ExpireCompleteUpload(ctx, "a1", later); err != nil || !gone {
		t.Errorf("expire: %v %v", gone, err)
	}
}
