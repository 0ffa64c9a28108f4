package store

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/deltascope/deltascope/analysis/spectral"
)

// TestClaimSpectrumByKey: the shared queue's side of a spectral job (River,
// on PostgreSQL): listed while queued, claimed by key, taken over while
// running (a rescued job), put back by a worker that stops, and refused once
// it has ended.
func TestClaimSpectrumByKey(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, _ := finishSample(t, db, "fp-base", "fp-vla", t.TempDir())
	if _, _, err := db.RequestSpectrum(ctx, a.ID, 8); err != nil {
		t.Fatal(err)
	}
	key := SpectrumKey{Owner: a.ID, Rank: 8}
	if got, err := db.QueuedSpectra(ctx); err != nil || !slices.Equal(got, []SpectrumKey{key}) {
		t.Fatalf("QueuedSpectra = %v, %v; want %v", got, err, key)
	}
	s, req, err := db.ClaimSpectrum(ctx, a.ID, 8)
	if err != nil || s.Status != StatusRunning || s.StartedAt == nil || len(req.Base) == 0 || req.Base[0] != a.Request.Base[0] {
		t.Fatalf("ClaimSpectrum = %+v, %+v, %v; want running, with the analysis's request", s, req, err)
	}
	if got, _ := db.QueuedSpectra(ctx); len(got) != 0 {
		t.Fatalf("QueuedSpectra after the claim = %v", got)
	}
	if err := db.UpdateSpectrumProgress(ctx, a.ID, 8, 50, 200, "t"); err != nil {
		t.Fatal(err)
	}
	// A rescued job takes the running spectrum over, from the start.
	if s, _, err = db.ClaimSpectrum(ctx, a.ID, 8); err != nil || s.Status != StatusRunning || s.BytesDone != 0 {
		t.Fatalf("ClaimSpectrum of a running job = %+v, %v; want running from 0 bytes", s, err)
	}
	if err := db.RequeueSpectrum(ctx, a.ID, 8); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.QueuedSpectra(ctx); !slices.Equal(got, []SpectrumKey{key}) {
		t.Fatalf("QueuedSpectra after RequeueSpectrum = %v", got)
	}
	if s, _ := db.SpectrumOf(ctx, a.ID, 8, false); s.Status != StatusQueued || s.StartedAt != nil {
		t.Fatalf("after RequeueSpectrum: %+v; want queued, not started", s)
	}
	if _, _, err := db.ClaimSpectrum(ctx, a.ID, 8); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishSpectrum(ctx, a.ID, 8, &spectral.Result{Rank: 8}, 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.ClaimSpectrum(ctx, a.ID, 8); !errors.Is(err, ErrConflict) {
		t.Errorf("ClaimSpectrum of a done job: %v; want ErrConflict", err)
	}
	if err := db.RequeueSpectrum(ctx, a.ID, 8); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.SpectrumOf(ctx, a.ID, 8, false); s.Status != StatusDone {
		t.Errorf("RequeueSpectrum of a done job made it %s", s.Status)
	}
	if _, _, err := db.ClaimSpectrum(ctx, a.ID, 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("ClaimSpectrum of a rank never asked for: %v; want ErrNotFound", err)
	}
}
