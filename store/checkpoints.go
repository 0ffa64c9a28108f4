package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CheckpointRecord describes one side of an analysis as the reader saw it.
type CheckpointRecord struct {
	// Fingerprint is a hash of the headers and tensor bytes computed while
	// reading: equal fingerprints mean equal content, wherever the files live.
	Fingerprint string
	Params      int64
	Bytes       int64
	Sources     []SourceRecord
}

// SourceRecord is one SRC of a side.
type SourceRecord struct {
	Spec     string // as given: [PREFIX=]PATH
	Path     string
	Format   string
	Metadata map[string]string
	Config   json.RawMessage // config.json, when the source has one
	Files    []FileIdentity
}

// FileIdentity recognises an unchanged file without reading it: the same path,
// size, modification time, inode and device, and the same hash of its header.
type FileIdentity struct {
	Path      string
	Size      int64
	ModTimeNs int64
	Inode     uint64
	Device    uint64
	HeaderSHA string
}

// filesKey hashes a side's file identities, order-independently, into the key
// of a checkpoint location.
func filesKey(files []FileIdentity) string {
	lines := make([]string, len(files))
	for i, f := range files {
		lines[i] = strings.Join([]string{strconv.Quote(f.Path), strconv.FormatInt(f.Size, 10),
			strconv.FormatInt(f.ModTimeNs, 10), strconv.FormatUint(f.Inode, 10),
			strconv.FormatUint(f.Device, 10), strconv.Quote(f.HeaderSHA)}, " ")
	}
	slices.Sort(lines)
	h := sha256.New()
	h.Write([]byte("deltascope-files/1\n"))
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (r CheckpointRecord) files() []FileIdentity {
	var out []FileIdentity
	for _, s := range r.Sources {
		out = append(out, s.Files...)
	}
	return out
}

// upsertCheckpoint stores a checkpoint by fingerprint (once per content) and the
// location it was read from (once per set of file identities), returning the
// checkpoint id. A location whose files now belong to other content (rewritten
// in place with the same size and mtime) moves to the new checkpoint.
func upsertCheckpoint(ctx context.Context, tx *sql.Tx, rec CheckpointRecord, now int64) (int64, error) {
	if rec.Fingerprint == "" {
		return 0, errorf(EINVALID, "checkpoint without a fingerprint")
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO checkpoints (fingerprint, params, bytes, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (fingerprint) DO UPDATE SET params = excluded.params, bytes = excluded.bytes
		RETURNING id`, rec.Fingerprint, rec.Params, rec.Bytes, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: %w", rec.Fingerprint, err)
	}
	files := rec.files()
	if len(files) == 0 {
		return id, nil // nothing to recognise it by
	}
	key := filesKey(files)
	var locID, owner int64
	err = tx.QueryRowContext(ctx, `SELECT id, checkpoint_id FROM checkpoint_locations WHERE files_key = ?`, key).Scan(&locID, &owner)
	switch {
	case err == nil && owner == id:
		return id, nil // known location, known content
	case err == nil:
		if _, err := tx.ExecContext(ctx, `DELETE FROM checkpoint_locations WHERE id = ?`, locID); err != nil {
			return 0, fmt.Errorf("checkpoint %s: %w", rec.Fingerprint, err)
		}
	case !errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("checkpoint %s: %w", rec.Fingerprint, err)
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO checkpoint_locations (checkpoint_id, files_key, created_at) VALUES (?, ?, ?)
		RETURNING id`, id, key, now).Scan(&locID)
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s: location: %w", rec.Fingerprint, err)
	}
	for pos, s := range rec.Sources {
		meta := s.Metadata
		if meta == nil {
			meta = map[string]string{}
		}
		metaJSON, err := json.Marshal(meta)
		if err != nil {
			return 0, fmt.Errorf("source %s: metadata: %w", s.Spec, err)
		}
		var config any // NULL unless present
		if len(s.Config) > 0 {
			if !json.Valid(s.Config) {
				return 0, errorf(EINVALID, "source %s: config is not valid JSON", s.Spec)
			}
			config = string(s.Config)
		}
		var srcID int64
		err = tx.QueryRowContext(ctx, `INSERT INTO checkpoint_sources (location_id, position, spec, path, format, metadata, config)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, locID, pos, s.Spec, s.Path, s.Format, string(metaJSON), config).Scan(&srcID)
		if err != nil {
			return 0, fmt.Errorf("source %s: %w", s.Spec, err)
		}
		for _, f := range s.Files {
			_, err := tx.ExecContext(ctx, `INSERT INTO checkpoint_files (source_id, path, size, mtime_ns, inode, device, header_sha)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, srcID, f.Path, f.Size, f.ModTimeNs, int64(f.Inode), int64(f.Device), f.HeaderSHA)
			if err != nil {
				return 0, fmt.Errorf("file %s: %w", f.Path, err)
			}
		}
	}
	return id, nil
}

// fingerprintByFiles returns the fingerprint of the checkpoint last read from
// exactly these files, or "" when none was.
func fingerprintByFiles(ctx context.Context, q queryer, files []FileIdentity) (string, error) {
	if len(files) == 0 {
		return "", nil
	}
	var fp string
	err := q.QueryRowContext(ctx, `SELECT c.fingerprint FROM checkpoint_locations l
		JOIN checkpoints c ON c.id = l.checkpoint_id WHERE l.files_key = ?`, filesKey(files)).Scan(&fp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return fp, err
}

// CheckpointSummary is a known checkpoint as the home page lists it.
type CheckpointSummary struct {
	Fingerprint string    `json:"fingerprint"`
	Params      int64     `json:"params"`
	Bytes       int64     `json:"bytes"`
	CreatedAt   time.Time `json:"created_at"`
	Locations   int       `json:"locations"` // places its files were found
	Analyses    int       `json:"analyses"`  // as base or VLA
	// Sources are the specs of the latest location it was read from.
	Sources []string `json:"sources"`
}

// ListCheckpoints returns the known checkpoints, newest first (limit ≤ 0: 100).
func (db *DB) ListCheckpoints(ctx context.Context, limit int) ([]CheckpointSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT c.id, c.fingerprint, c.params, c.bytes, c.created_at,
		(SELECT count(*) FROM checkpoint_locations l WHERE l.checkpoint_id = c.id),
		(SELECT count(*) FROM analyses a WHERE a.base_checkpoint_id = c.id OR a.vla_checkpoint_id = c.id),
		coalesce((SELECT json_group_array(s.spec) FROM (SELECT s.spec FROM checkpoint_sources s
			WHERE s.location_id = (SELECT max(l.id) FROM checkpoint_locations l WHERE l.checkpoint_id = c.id)
			ORDER BY s.position) s), '[]')
		FROM checkpoints c ORDER BY c.created_at DESC, c.id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []CheckpointSummary
	for rows.Next() {
		var c CheckpointSummary
		var id, created int64
		var specs string
		if err := rows.Scan(&id, &c.Fingerprint, &c.Params, &c.Bytes, &created, &c.Locations, &c.Analyses, &specs); err != nil {
			return nil, fmt.Errorf("store: list checkpoints: %w", err)
		}
		c.CreatedAt = time.UnixMilli(created)
		if err := json.Unmarshal([]byte(specs), &c.Sources); err != nil {
			return nil, fmt.Errorf("store: list checkpoints: sources: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
