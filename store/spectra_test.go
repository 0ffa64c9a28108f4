package store

import (
	"context"
	"errors"
	"testing"

	"github.com/deltascope/deltascope/analysis/spectral"
)

func TestSpectrumLifecycle(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	dir := t.TempDir()
	first, _ := finishSample(t, db, "fp-base", "fp-vla", dir)
	// The same content again, found elsewhere: the second analysis shares
	// the first's rows, and so its spectra.
	moved := sampleRequest
	moved.Base, moved.VLA = []string{"/moved/base"}, []string{"/moved/vla"}
	second := startAnalysis(t, db, moved)
	res0 := sampleResult()
	res0.BaseFingerprint, res0.VLAFingerprint = "fp-base", "fp-vla"
	if err := db.Finish(ctx, second.ID, record("fp-base", dir+"/moved/base", 100, 9), record("fp-vla", dir+"/moved/vla", 200, 9), res0); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Get(ctx, second.ID); got.ResultOf != first.ID {
		t.Fatalf("second analysis result_of = %q, want %s", got.ResultOf, first.ID)
	}

	if _, _, err := db.RequestSpectrum(ctx, first.ID, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("rank 0: %v, want ErrInvalid", err)
	}
	if _, _, err := db.RequestSpectrum(ctx, "nope", 8); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown analysis: %v, want ErrNotFound", err)
	}
	queued, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.RequestSpectrum(ctx, queued.ID, 8); !errors.Is(err, ErrConflict) {
		t.Errorf("spectrum of a queued analysis: %v, want ErrConflict", err)
	}
	if _, err := db.SpectrumOf(ctx, first.ID, 8, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("before any request: %v, want ErrNotFound", err)
	}

	s, created, err := db.RequestSpectrum(ctx, second.ID, 8)
	if err != nil || !created || s.Status != StatusQueued || s.ResultID != first.ID || s.Rank != 8 {
		t.Fatalf("RequestSpectrum = %+v, %v, %v", s, created, err)
	}
	if _, created, _ := db.RequestSpectrum(ctx, first.ID, 8); created {
		t.Error("a second request of a queued job queued another")
	}

	// The job reads the files where the newest analysis of the content found
	// them: the second analysis's paths.
	got, req, err := db.ClaimNextSpectrum(ctx)
	if err != nil || got.Status != StatusRunning || got.ResultID != first.ID || len(req.Base) == 0 || req.Base[0] != "/moved/base" {
		t.Fatalf("ClaimNextSpectrum = %+v, %+v, %v", got, req, err)
	}
	if _, _, err := db.ClaimNextSpectrum(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("second claim: %v, want ErrNotFound", err)
	}
	if err := db.UpdateSpectrumProgress(ctx, first.ID, 8, 50, 200, "llm.0.attn_q.weight"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.SpectrumOf(ctx, second.ID, 8, false); s.Progress() != 0.25 || s.CurrentTensor != "llm.0.attn_q.weight" {
		t.Errorf("progress %+v", s)
	}

	rank2 := 2
	res := &spectral.Result{Rank: 8, Power: 4, Tensors: []spectral.Tensor{{VLA: "llm.0.attn_q.weight", Component: "llm", Layer: 0, Kind: "attn_q",
		Rows: 8, Cols: 6, Spectrum: spectral.Spectrum{SingularValues: []float64{3, 1}, Energy: []float64{0.9, 1}, StableRank: 1.1, Rank90: &rank2, FroDelta: 3.2}}},
		Skipped: []string{}}
	if err := db.FinishSpectrum(ctx, first.ID, 8, res, 1.5); err != nil {
		t.Fatal(err)
	}
	done, err := db.SpectrumOf(ctx, second.ID, 8, true)
	if err != nil || done.Status != StatusDone || done.Progress() != 1 || done.Seconds != 1.5 || done.FinishedAt == nil {
		t.Fatalf("after finish: %+v, %v", done, err)
	}
	sameJSON(t, "stored spectra", done.Result, res)
	if latest, err := db.LatestSpectrum(ctx, second.ID, false); err != nil || latest.Rank != 8 || latest.Result != nil {
		t.Errorf("LatestSpectrum = %+v, %v", latest, err)
	}
	if _, _, err := db.CancelSpectrum(ctx, first.ID, 8); !errors.Is(err, ErrConflict) {
		t.Errorf("cancel a done job: %v, want ErrConflict", err)
	}
	if _, created, _ := db.RequestSpectrum(ctx, first.ID, 8); created {
		t.Error("a done spectrum was queued again")
	}

	// Another rank is another job; cancelled, it can be asked for again.
	if _, _, err := db.RequestSpectrum(ctx, first.ID, 4); err != nil {
		t.Fatal(err)
	}
	owner, running, err := db.CancelSpectrum(ctx, second.ID, 4)
	if err != nil || owner != first.ID || running {
		t.Fatalf("CancelSpectrum = %s, %v, %v", owner, running, err)
	}
	if err := db.UpdateSpectrumProgress(ctx, first.ID, 4, 1, 2, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("progress of a cancelled job: %v, want ErrConflict", err)
	}
	if s, created, err := db.RequestSpectrum(ctx, first.ID, 4); err != nil || !created || s.Status != StatusQueued {
		t.Errorf("re-request after cancel: %+v, %v, %v", s, created, err)
	}
	// A server that stopped mid-job puts it back in the queue.
	if _, _, err := db.ClaimNextSpectrum(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.RecoverSpectra(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.SpectrumOf(ctx, first.ID, 4, false); s.Status != StatusQueued {
		t.Errorf("after recovery: %s", s.Status)
	}
	if err := db.FailSpectrum(ctx, first.ID, 4, "disk on fire"); err != nil {
		t.Fatal(err)
	}
	if s, _ := db.SpectrumOf(ctx, first.ID, 4, false); s.Status != StatusFailed || s.Error != "disk on fire" {
		t.Errorf("after failure: %+v", s)
	}

	// Spectra the CLI computed itself are stored as a done job, once.
	res2 := &spectral.Result{Rank: 2, Tensors: []spectral.Tensor{}, Skipped: []string{}}
	if err := db.StoreSpectrum(ctx, second.ID, res2, 0.5); err != nil {
		t.Fatal(err)
	}
	if s, err := db.SpectrumOf(ctx, first.ID, 2, true); err != nil || s.Status != StatusDone || s.Result == nil || s.Result.Rank != 2 || s.Seconds != 0.5 {
		t.Errorf("stored by the CLI: %+v, %v", s, err)
	}
	if _, _, err := db.RequestSpectrum(ctx, first.ID, 16); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.ClaimNextSpectrum(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.StoreSpectrum(ctx, first.ID, &spectral.Result{Rank: 16}, 1); !errors.Is(err, ErrConflict) {
		t.Errorf("storing over a running job: %v, want ErrConflict", err)
	}
}
