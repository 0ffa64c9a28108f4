package jobs

import (
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// Identities lists the quick identity of every file of a side. The source prefix
// is part of each path: the same files loaded under another prefix give other
// tensor names, and so another result.
func Identities(side *checkpoint.Side) []store.FileIdentity {
	var out []store.FileIdentity
	for _, src := range side.Sources {
		out = append(out, sourceFiles(src)...)
	}
	return out
}

func sourceFiles(src *checkpoint.Source) []store.FileIdentity {
	out := make([]store.FileIdentity, 0, len(src.Files))
	for _, f := range src.Files {
		path := f.Path
		if src.Prefix != "" {
			path = src.Prefix + "=" + path
		}
		out = append(out, store.FileIdentity{Path: path, Size: f.Size, ModTimeNs: f.ModTimeNs, Inode: f.Inode, Device: f.Device, HeaderSHA: f.HeadSHA})
	}
	return out
}

// Record describes a side for the store, with the content fingerprint the
// analysis computed.
func Record(side *checkpoint.Side, fingerprint string) store.CheckpointRecord {
	rec := store.CheckpointRecord{Fingerprint: fingerprint, Params: side.Params(), Bytes: side.Bytes()}
	for _, src := range side.Sources {
		rec.Sources = append(rec.Sources, store.SourceRecord{Spec: src.Spec, Path: src.Path, Format: string(src.Format),
			Metadata: src.Metadata, Config: src.Config, Files: sourceFiles(src)})
	}
	return rec
}
