package handlers

import (
	"context"
	"time"

	"github.com/deltascope/deltascope/store"
)

// SweepUploads removes what uploads leave behind: unfinished uploads idle for
// longer than the Guard's UploadExpiry, and finished ones unchanged for
// UploadKeep that no analysis names among its sources (an upload quota would
// otherwise fill with checkpoints nobody analyses). It removes their files,
// the folders left empty, and their rows, and returns how many it removed.
func (s *Server) SweepUploads(ctx context.Context) (int, error) {
	if s.uploads == nil {
		return 0, nil
	}
	now := s.db.Now()
	idleCutoff, keepCutoff := now.Add(-s.guard.g.UploadExpiry), now.Add(-s.guard.g.UploadKeep)
	abandoned, err := s.db.AbandonedUploads(ctx, idleCutoff)
	if err != nil {
		return 0, err
	}
	unused, err := s.db.UnusedCompleteUploads(ctx, keepCutoff, func(u store.Upload) string {
		return s.uploadView(&u).SideDir
	})
	if err != nil {
		return 0, err
	}
	removed := 0
	sweep := func(u store.Upload, expire func(context.Context, string, time.Time) (bool, error), cutoff time.Time, why string) error {
		// tusd's lock for the id: no chunk of this upload is written meanwhile.
		lock, err := s.uploads.locker.NewLock(u.ID)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if lock.Lock(lctx, func() {}) != nil {
			return nil // busy: a client is at it, so it is not idle
		}
		defer lock.Unlock()
		// Only if still idle: the check and the delete are one statement.
		if gone, err := expire(ctx, u.ID, cutoff); err != nil || !gone {
			return err
		}
		s.removeFiles(&u)
		removed++
		s.log.Info("upload removed", "why", why, "upload", u.ID, "path", u.Path, "received", u.Received, "size", u.Size)
		return nil
	}
	for _, u := range abandoned {
		if err := sweep(u, s.db.ExpireUpload, idleCutoff, "unfinished and idle"); err != nil {
			return removed, err
		}
	}
	for _, u := range unused {
		if err := sweep(u, s.db.ExpireCompleteUpload, keepCutoff, "finished and unused"); err != nil {
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
