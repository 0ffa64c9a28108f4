package store

import (
	"context"
	"testing"
)

// TestSources: each analysis of one content read from two places gets the
// place it asked for, with its files (and ETags); an analysis not done has
// none.
func TestSources(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	finish := func(base, vla string, etag string) *Analysis {
		a := startAnalysis(t, db, AnalysisRequest{Base: []string{base}, VLA: []string{vla}})
		res := sampleResult()
		res.BaseFingerprint, res.VLAFingerprint = "fp-base", "fp-vla"
		rec := func(fp, spec string) CheckpointRecord {
			return CheckpointRecord{Fingerprint: fp, Params: 1, Bytes: 10, Sources: []SourceRecord{{Spec: spec, Path: spec + "/model.safetensors", Format: "safetensors",
				Files: []FileIdentity{{Path: spec + "/model.safetensors", Size: 10, HeaderSHA: etag}}}}}
		}
		if err := db.Finish(ctx, a.ID, rec("fp-base", base), rec("fp-vla", vla), res); err != nil {
			t.Fatal(err)
		}
		return a
	}
	s3 := finish("s3://models/base", "s3://models/vla", "etag:abc")
	local := finish("/data/base", "/data/vla", "h-local")
	queued, err := db.CreateAnalysis(ctx, AnalysisRequest{Base: []string{"/x"}, VLA: []string{"/y"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Sources(ctx, []string{s3.ID, local.ID, queued.ID}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d analyses with sources; want 2 (not the queued one)", len(got))
	}
	for id, want := range map[string][2]string{s3.ID: {"s3://models/base", "etag:abc"}, local.ID: {"/data/base", "h-local"}} {
		b := got[id].Base
		if len(b) != 1 || b[0].Spec != want[0] || b[0].Path != want[0]+"/model.safetensors" || len(b[0].Files) != 1 || b[0].Files[0].HeaderSHA != want[1] {
			t.Errorf("%s base: %+v; want %v", id, b, want)
		}
		if v := got[id].VLA; len(v) != 1 || v[0].Spec[len(v[0].Spec)-3:] != "vla" {
			t.Errorf("%s vla: %+v", id, v)
		}
	}
	nofiles, err := db.Sources(ctx, []string{s3.ID}, false)
	if err != nil || len(nofiles[s3.ID].Base) != 1 || nofiles[s3.ID].Base[0].Files != nil {
		t.Errorf("without files: %+v %v", nofiles, err)
	}
}
