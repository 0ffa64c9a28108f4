package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// AnalysisSources are the sources each side of a done analysis was read
// from, as recorded when it finished (paths as read: a Hub source pinned to
// its commit; files with their identities: an S3 object's "etag:..."). Empty
// for an analysis not done, or one whose location has since moved to other
// content.
type AnalysisSources struct {
	Base, VLA []SourceRecord
}

// originsChunk is how many analyses one query asks about; the list is padded
// to it, so the statement text (and PostgreSQL's rewrite cache) is one.
const originsChunk = 100

// Sources returns the recorded sources of the given analyses, by id (ids
// without any are left out). A checkpoint may have been found in several
// places; the one chosen for a side is the place whose sources are those the
// analysis asked for (the same specs in the same order), else the latest with
// as many sources. files adds each source's files (for ETags), one more query.
func (db *DB) Sources(ctx context.Context, ids []string, files bool) (map[string]AnalysisSources, error) {
	out := map[string]AnalysisSources{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), originsChunk)]
		ids = ids[len(chunk):]
		if err := db.sourcesChunk(ctx, chunk, files, out); err != nil {
			return nil, fmt.Errorf("store: sources: %w", err)
		}
	}
	return out, nil
}

// paddedIn is the placeholder list "(?, ?, …)" of originsChunk values, and
// the values (at most originsChunk, at least one), the last repeated to fill
// it: one statement text whatever the chunk's size.
func paddedIn[T any](vals []T) (string, []any) {
	args := make([]any, originsChunk)
	for i := range args {
		args[i] = vals[min(i, len(vals)-1)]
	}
	return "(?" + strings.Repeat(", ?", originsChunk-1) + ")", args
}

type locSource struct {
	id  int64
	rec SourceRecord
}

func (db *DB) sourcesChunk(ctx context.Context, ids []string, files bool, out map[string]AnalysisSources) error {
	in, args := paddedIn(ids)
	sel := func(side, col string) string {
		return `SELECT a.id, ` + side + `, a.request, l.id, s.id, s.spec, s.path, s.format FROM analyses a
			JOIN checkpoint_locations l ON l.checkpoint_id = a.` + col + `
			JOIN checkpoint_sources s ON s.location_id = l.id
			WHERE a.id IN ` + in
	}
	rows, err := db.reader.QueryContext(ctx, sel("0", "base_checkpoint_id")+` UNION ALL `+sel("1", "vla_checkpoint_id")+
		` ORDER BY 1, 2, 4 DESC, 5`, append(args, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	type sideKey struct {
		id   string
		side int
	}
	// Per analysis and side: the request's specs, and each location's sources
	// in order, newest location first.
	specs := map[sideKey][]string{}
	locs := map[sideKey][][]locSource{}
	lastLoc := map[sideKey]int64{}
	for rows.Next() {
		var k sideKey
		var reqJSON string
		var locID int64
		var s locSource
		if err := rows.Scan(&k.id, &k.side, &reqJSON, &locID, &s.id, &s.rec.Spec, &s.rec.Path, &s.rec.Format); err != nil {
			return err
		}
		if _, ok := specs[k]; !ok {
			var req AnalysisRequest
			if err := json.Unmarshal([]byte(reqJSON), &req); err != nil {
				return fmt.Errorf("analysis %s: request: %w", k.id, err)
			}
			specs[k] = req.Base
			if k.side == 1 {
				specs[k] = req.VLA
			}
		}
		if l, ok := lastLoc[k]; !ok || l != locID {
			locs[k] = append(locs[k], nil)
			lastLoc[k] = locID
		}
		n := len(locs[k]) - 1
		locs[k][n] = append(locs[k][n], s)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	chosen := map[int64]*SourceRecord{}
	for k, ls := range locs {
		pick := -1
		for i, l := range ls {
			if slices.EqualFunc(l, specs[k], func(s locSource, spec string) bool { return s.rec.Spec == spec }) {
				pick = i
				break
			}
			if pick < 0 && len(l) == len(specs[k]) {
				pick = i
			}
		}
		if pick < 0 {
			continue
		}
		recs := make([]SourceRecord, len(ls[pick]))
		for i, s := range ls[pick] {
			recs[i] = s.rec
			chosen[s.id] = &recs[i] // the array out[k.id] holds
		}
		as := out[k.id]
		if k.side == 0 {
			as.Base = recs
		} else {
			as.VLA = recs
		}
		out[k.id] = as
	}
	if !files || len(chosen) == 0 {
		return nil
	}
	return db.sourceFiles(ctx, chosen)
}

// sourceFiles fills in the files of the chosen sources, by source id.
func (db *DB) sourceFiles(ctx context.Context, chosen map[int64]*SourceRecord) error {
	srcIDs := make([]int64, 0, len(chosen))
	for id := range chosen {
		srcIDs = append(srcIDs, id)
	}
	slices.Sort(srcIDs)
	for len(srcIDs) > 0 {
		chunk := srcIDs[:min(len(srcIDs), originsChunk)]
		srcIDs = srcIDs[len(chunk):]
		in, args := paddedIn(chunk)
		rows, err := db.reader.QueryContext(ctx, `SELECT source_id, path, size, mtime_ns, inode, device, header_sha
			FROM checkpoint_files WHERE source_id IN `+in+` ORDER BY source_id, id`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var src, inode, device int64
			var f FileIdentity
			if err := rows.Scan(&src, &f.Path, &f.Size, &f.ModTimeNs, &inode, &device, &f.HeaderSHA); err != nil {
				rows.Close()
				return err
			}
			f.Inode, f.Device = uint64(inode), uint64(device)
			if r := chosen[src]; r != nil {
				r.Files = append(r.Files, f)
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}
