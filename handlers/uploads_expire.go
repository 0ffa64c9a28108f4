package handlers

import (
	"context"
	"errors"
	"os"
	"path"
	"time"
)

// SweepUploads removes the unfinished uploads idle for longer than the
// Guard's UploadExpiry: their partial files, then the folders left empty, and
// their rows. It returns how many it removed.
func (s *Server) SweepUploads(ctx context.Context) (int, error) {
	if s.cfg.UploadDir == "" {
		return 0, nil
	}
	cutoff := s.db.Now().Add(-s.guard.g.UploadExpiry)
	list, err := s.db.AbandonedUploads(ctx, cutoff)
	if err != nil || len(list) == 0 {
		return 0, err
	}
	root, err := os.OpenRoot(s.cfg.UploadDir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	removed := 0
	for _, u := range list {
		unlock := s.lockUpload(u.ID) // no chunk of this upload is being written meanwhile
		// The row goes first, and only if the upload is still idle: a file without
		// a row is harmless, a row without its file would break a resume.
		gone, err := s.db.ExpireUpload(ctx, u.ID, cutoff)
		if gone {
			name := uploadFile(&u)
			if rerr := root.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				s.log.Warn("expired upload: file not removed", "upload", u.ID, "err", rerr)
			}
			// Remove the side and session folders if that left them empty.
			for dir := path.Dir(name); dir != "." && root.Remove(dir) == nil; dir = path.Dir(dir) {
			}
			removed++
			s.log.Info("expired upload removed", "upload", u.ID, "path", u.Path, "received", u.Received, "size", u.Size)
		}
		unlock()
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// SweepUploadsEvery runs SweepUploads now and then every interval until ctx ends.
func (s *Server) SweepUploadsEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.SweepUploads(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("sweeping expired uploads", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
