package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

// Labels are what a person calls an analysis: a name and free-form tags. They
// are not part of the request, so they never change the cache key: renaming
// an analysis does not make its result stale.
type Labels struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// labelsSchema is the schema version that added the name and tags columns
// (migrations/0006_analysis_names.sql).
const labelsSchema = 6

// Bounds on labels: a name is a title, not a document.
const (
	MaxNameLen = 200
	MaxTagLen  = 40
	MaxTags    = 20
)

// normalizeLabels trims the name and the tags, drops empty and repeated tags
// (case-insensitively, keeping the first spelling) and checks the bounds.
func normalizeLabels(l Labels) (Labels, error) {
	out := Labels{Name: strings.TrimSpace(l.Name), Tags: []string{}}
	if n := utf8.RuneCountInString(out.Name); n > MaxNameLen {
		return out, errorf(EINVALID, "a name has at most %d characters (this one has %d)", MaxNameLen, n)
	}
	seen := map[string]bool{}
	for _, t := range l.Tags {
		t = strings.TrimSpace(t)
		if t == "" || seen[strings.ToLower(t)] {
			continue
		}
		if n := utf8.RuneCountInString(t); n > MaxTagLen {
			return out, errorf(EINVALID, "tag %q is longer than %d characters", t[:min(len(t), 20)]+"…", MaxTagLen)
		}
		seen[strings.ToLower(t)] = true
		out.Tags = append(out.Tags, t)
	}
	if len(out.Tags) > MaxTags {
		return out, errorf(EINVALID, "at most %d tags (%d given)", MaxTags, len(out.Tags))
	}
	return out, nil
}

// UpdateLabels renames and retags an analysis; a nil argument leaves that
// label as it is. An empty name goes back to the default one.
func (db *DB) UpdateLabels(ctx context.Context, id string, name *string, tags *[]string) (*Analysis, error) {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		cur, err := db.getFrom(ctx, tx, id)
		if err != nil {
			return err
		}
		l := Labels{Tags: cur.Tags}
		if cur.Named {
			l.Name = cur.Name
		}
		if name != nil {
			l.Name = *name
		}
		if tags != nil {
			l.Tags = *tags
		}
		if l, err = normalizeLabels(l); err != nil {
			return err
		}
		tagsJSON, _ := json.Marshal(l.Tags)
		_, err = tx.ExecContext(ctx, `UPDATE analyses SET name = ?, tags = ? WHERE id = ?`, l.Name, string(tagsJSON), id)
		return err
	})
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			return nil, err
		}
		return nil, fmt.Errorf("store: label analysis %s: %w", id, err)
	}
	return db.getFrom(ctx, db.writer, id)
}

// DefaultName is the name of an analysis nobody named: "VLA vs base", each
// side called by its first source ("openvla-7b vs prism-dinosiglip").
func DefaultName(req AnalysisRequest) string {
	v, b := sideName(req.VLA), sideName(req.Base)
	switch {
	case v == "" && b == "":
		return "unnamed analysis"
	case b == "":
		return v
	case v == "":
		return b
	}
	return v + " vs " + b
}

// hfSnapshot matches the Hugging Face cache's layout,
// models--ORG--NAME/snapshots/REVISION: the name is in the folder two up.
var hfSnapshot = regexp.MustCompile(`(?:^|/)models--[^/]+--([^/]+)/snapshots/[^/]+$`)

// genericFile are file names that say nothing of the model: the folder
// holding them does.
var genericFile = regexp.MustCompile(`^(model|pytorch_model|diffusion_pytorch_model|consolidated|weights|checkpoint|last|best|latest)([-.].*)?\.(safetensors|bin|pt|pth|json)$`)

var genericDir = map[string]bool{"checkpoints": true, "checkpoint": true, "weights": true, "model": true}

// sideName calls one side by its first source without a prefix (prefixed
// sources are parts grafted on, like OpenVLA's vision encoders), or its first.
func sideName(specs []string) string {
	if len(specs) == 0 {
		return ""
	}
	spec := specs[0]
	for _, s := range specs {
		if !strings.Contains(s, "=") {
			spec = s
			break
		}
	}
	if i := strings.Index(spec, "="); i >= 0 && !strings.Contains(spec[:i], "/") {
		spec = spec[i+1:]
	}
	p := strings.TrimRight(strings.ReplaceAll(spec, `\`, "/"), "/")
	if m := hfSnapshot.FindStringSubmatch(p); m != nil {
		return m[1]
	}
	base := path.Base(p)
	if genericFile.MatchString(base) || strings.HasSuffix(base, ".index.json") {
		p = path.Dir(p)
		if m := hfSnapshot.FindStringSubmatch(p); m != nil {
			return m[1]
		}
		base = path.Base(p)
		// Prismatic keeps its weights in NAME/checkpoints/latest-checkpoint.pt.
		if genericDir[base] && path.Dir(p) != p {
			base = path.Base(path.Dir(p))
		}
	}
	for _, ext := range []string{".safetensors", ".bin", ".pth", ".pt"} {
		base = strings.TrimSuffix(base, ext)
	}
	if base == "." || base == "/" {
		return ""
	}
	return base
}

// MatchesFilter reports whether every word of the filter occurs in the
// analysis's name, tags, id or sources (case-insensitive): the home page's
// filter box, and ?q= for scripts.
func (a *Analysis) MatchesFilter(filter string) bool {
	hay := strings.ToLower(strings.Join(slices.Concat([]string{a.Name, a.ID, string(a.Status)}, a.Tags, a.Request.Base, a.Request.VLA), "\n"))
	for _, w := range strings.Fields(strings.ToLower(filter)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}
