package web

import (
	"path/filepath"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// Origin kinds, the badges the pages show.
const (
	OriginLocal  = "local"  // a path on the server's disk, under a --root
	OriginUpload = "upload" // a file uploaded through the page or tus
	OriginS3     = "s3"     // s3://BUCKET/KEY
	OriginHub    = "hub"    // hf://ORG/REPO[@REVISION]/PATH
)

// Origin is where one source of a side came from: the request's spec, and
// what was recorded when it was read (a Hub source's pinned commit, an S3
// object's ETag). It is the "origins" field of GET /api/analyses/{id}.
type Origin struct {
	Kind   string `json:"kind"`             // local, upload, s3 or hub
	Spec   string `json:"spec"`             // as requested: [PREFIX=]PATH
	Prefix string `json:"prefix,omitempty"` // prepended to every tensor name
	// Path is the source as read: for the Hub, pinned to the commit
	// (hf://ORG/REPO@COMMIT/PATH) once the analysis has read it.
	Path string `json:"path"`
	// Upload: the path inside the uploads folder or the upload store (an
	// upload kept in S3 keeps its bucket and key too).
	Upload string `json:"upload,omitempty"`
	// S3: the bucket, and the key of the object or the prefix of a folder.
	Bucket string `json:"bucket,omitempty"`
	Key    string `json:"key,omitempty"`
	// Hub: the repository, the file or folder in it ("" for its top), the
	// revision asked for ("main" when none was), the commit read (once read).
	Repo     string `json:"repo,omitempty"`
	File     string `json:"file,omitempty"`
	Revision string `json:"revision,omitempty"`
	Commit   string `json:"commit,omitempty"`
	// Files are the files read, once read, with their S3 ETag or Hub ETag
	// (the LFS sha256) where the reader recorded one.
	Files []OriginFile `json:"files,omitempty"`
}

// OriginFile is one file of a source as read.
type OriginFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	ETag string `json:"etag,omitempty"`
}

// Origins are both sides' sources, in the request's order.
type Origins struct {
	Base []Origin `json:"base"`
	VLA  []Origin `json:"vla"`
}

// BuildOrigins describes where each source of a's sides came from: from its
// request, and, when rec has them (a done analysis), the sources as read.
// uploads are where the server keeps uploads: its uploads folder, and an
// s3://BUCKET/PREFIX upload store (serve --uploads); "" for none.
func BuildOrigins(a *store.Analysis, rec store.AnalysisSources, uploads ...string) Origins {
	return Origins{Base: sideOrigins(a.Request.Base, rec.Base, uploads), VLA: sideOrigins(a.Request.VLA, rec.VLA, uploads)}
}

func sideOrigins(specs []string, recs []store.SourceRecord, uploads []string) []Origin {
	out := make([]Origin, 0, len(specs))
	for i, spec := range specs {
		var rec *store.SourceRecord
		for j := range recs {
			if recs[j].Spec == spec {
				rec = &recs[j]
				break
			}
		}
		if rec == nil && len(recs) == len(specs) {
			rec = &recs[i] // the same place under a spec written otherwise
		}
		out = append(out, originOf(spec, rec, uploads))
	}
	return out
}

func originOf(spec string, rec *store.SourceRecord, uploads []string) Origin {
	prefix, p := checkpoint.ParseSpec(spec)
	o := Origin{Kind: OriginLocal, Spec: spec, Prefix: prefix, Path: p}
	if rec != nil {
		o.Path = rec.Path
		for _, f := range rec.Files {
			of := OriginFile{Path: f.Path, Size: f.Size}
			if e, ok := strings.CutPrefix(f.HeaderSHA, "etag:"); ok {
				of.ETag = strings.Trim(e, `"`)
			}
			o.Files = append(o.Files, of)
		}
	}
	switch {
	case strings.HasPrefix(p, "s3://"):
		o.Kind = OriginS3
		o.Bucket, o.Key, _ = strings.Cut(strings.TrimPrefix(p, "s3://"), "/")
	case strings.HasPrefix(p, "hf://"):
		o.Kind = OriginHub
		if hp, ok := checkpoint.ParseHubPath(p); ok {
			o.Repo, o.Revision, o.File = hp.Repo(), hp.Revision, hp.File
		}
		// The record names the commit read: hf://ORG/REPO@COMMIT[/PATH].
		if rec != nil {
			if _, rest, ok := strings.Cut(strings.TrimPrefix(rec.Path, "hf://"+o.Repo), "@"); ok {
				o.Commit, _, _ = strings.Cut(rest, "/")
			}
		}
	}
	// An upload is a file on the server's disk or, with an upload store, an
	// object in it (its bucket and key stay shown).
	for _, u := range uploads {
		if u == "" {
			continue
		}
		if checkpoint.IsRemote(u) {
			if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(u, "/")+"/"); ok && rel != "" {
				o.Kind, o.Upload = OriginUpload, rel
			}
		} else if rel, err := filepath.Rel(u, p); err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && filepath.IsAbs(p) {
			o.Kind, o.Upload = OriginUpload, filepath.ToSlash(rel)
		}
	}
	return o
}

// Badge is the origin's label: "S3", "Hub", "local" or "upload".
func (o Origin) Badge() string {
	switch o.Kind {
	case OriginS3:
		return "S3"
	case OriginHub:
		return "Hub"
	}
	return o.Kind
}

// ShortCommit is the commit's first 7 characters, as git shows it.
func (o Origin) ShortCommit() string {
	return o.Commit[:min(7, len(o.Commit))]
}

// Short is the origin in a few words, for a list: the last two parts of an
// S3 key or a local path (with the bucket), the Hub repository with its file
// and commit (or the revision asked, before it is read).
func (o Origin) Short() string {
	s := ""
	switch o.Kind {
	case OriginS3:
		s = o.Bucket + ":" + lastParts(o.Key)
	case OriginHub:
		s = o.Repo
		if o.File != "" {
			s += "/" + lastParts(o.File)
		}
		if o.Commit != "" {
			s += "@" + o.ShortCommit()
		} else {
			s += "@" + o.Revision
		}
	case OriginUpload:
		s = lastParts(o.Upload)
	default:
		s = lastParts(o.Path)
	}
	if o.Prefix != "" {
		s = o.Prefix + "=" + s
	}
	return s
}
