package web

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/store"
)

// TestBuildOrigins: each kind of source is recognised from its spec, and what
// the reader recorded (the Hub's pinned commit, S3 ETags) is added once read.
func TestBuildOrigins(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	a := &store.Analysis{Request: store.AnalysisRequest{
		Base: []string{"s3://models/runs/pi05/base", "vision.=/srv/uploads/s1/base/siglip.safetensors"},
		VLA:  []string{"hf://lab/pi05@v2/vla/model.safetensors", "/data/x.pt"},
	}}
	rec := store.AnalysisSources{
		Base: []store.SourceRecord{
			{Spec: "s3://models/runs/pi05/base", Path: "s3://models/runs/pi05/base", Files: []store.FileIdentity{
				{Path: "s3://models/runs/pi05/base/a.safetensors", Size: 10, HeaderSHA: `etag:"abc"`},
				{Path: "s3://models/runs/pi05/base/b.safetensors", Size: 20, HeaderSHA: "etag:def"}}},
			{Spec: "vision.=/srv/uploads/s1/base/siglip.safetensors", Path: "/srv/uploads/s1/base/siglip.safetensors"},
		},
		VLA: []store.SourceRecord{
			{Spec: "hf://lab/pi05@v2/vla/model.safetensors", Path: "hf://lab/pi05@" + sha + "/vla/model.safetensors"},
			{Spec: "/data/x.pt", Path: "/data/x.pt"},
		},
	}
	o := BuildOrigins(a, rec, "/srv/uploads")
	s3, up, hub, local := o.Base[0], o.Base[1], o.VLA[0], o.VLA[1]
	if s3.Kind != OriginS3 || s3.Bucket != "models" || s3.Key != "runs/pi05/base" || len(s3.Files) != 2 || s3.Files[0].ETag != "abc" || s3.Short() != "models:pi05/base" {
		t.Errorf("s3: %+v (%s)", s3, s3.Short())
	}
	if up.Kind != OriginUpload || up.Upload != "s1/base/siglip.safetensors" || up.Prefix != "vision." || up.Badge() != "upload" {
		t.Errorf("upload: %+v", up)
	}
	if hub.Kind != OriginHub || hub.Repo != "lab/pi05" || hub.File != "vla/model.safetensors" || hub.Revision != "v2" || hub.Commit != sha || hub.Short() != "lab/pi05/vla/model.safetensors@0123456" {
		t.Errorf("hub: %+v (%s)", hub, hub.Short())
	}
	if local.Kind != OriginLocal || local.Path != "/data/x.pt" {
		t.Errorf("local: %+v", local)
	}
	// Before it is read: the revision asked, no commit; an upload folder
	// elsewhere does not make a local path an upload.
	o = BuildOrigins(a, store.AnalysisSources{}, "/srv/uploads-other")
	if h := o.VLA[0]; h.Commit != "" || h.Revision != "v2" || h.Short() != "lab/pi05/vla/model.safetensors@v2" {
		t.Errorf("hub before reading: %+v", h)
	}
	if o.Base[1].Kind != OriginLocal {
		t.Errorf("%+v: not under the uploads folder, so local", o.Base[1])
	}
	if h := BuildOrigins(&store.Analysis{Request: store.AnalysisRequest{VLA: []string{"hf://lab/pi05"}}}, store.AnalysisSources{}, "").VLA[0]; h.Revision != "main" || h.File != "" {
		t.Errorf("hf://lab/pi05: %+v; want revision main, no file", h)
	}

	// With an upload store, an object in it is an upload (and still in S3).
	st := BuildOrigins(&store.Analysis{Request: store.AnalysisRequest{Base: []string{"s3://up/store/s1/base"}, VLA: []string{"s3://up/store2/x"}}},
		store.AnalysisSources{}, "/srv/uploads", "s3://up/store")
	if b := st.Base[0]; b.Kind != OriginUpload || b.Upload != "s1/base" || b.Bucket != "up" || b.Key != "store/s1/base" {
		t.Errorf("an object in the upload store: %+v", b)
	}
	if v := st.VLA[0]; v.Kind != OriginS3 {
		t.Errorf("%+v: beside the upload store, not in it (whole components), so S3", v)
	}

	var buf bytes.Buffer
	if err := OriginsView("", BuildOrigins(a, rec, "/srv/uploads")).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`>S3</span>`, `>Hub</span>`, `>upload</span>`, `>local</span>`, `runs/pi05/base</code>`,
		`title="` + sha + `"`, `>0123456</code> (asked: <code>v2</code>)`, `ETag <code data-testid="origin-etag">abc</code>`} {
		if !strings.Contains(html, want) {
			t.Errorf("origins view lacks %q:\n%s", want, html)
		}
	}
}
