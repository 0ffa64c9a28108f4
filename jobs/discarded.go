package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/deltascope/deltascope/store"
)

// A job whose worker dies MaxAttempts times (killed by the OOM killer on a
// checkpoint too large for it, say) is discarded by River's rescuer, which
// runs no code of ours: its analysis or spectrum would stay "running" for
// good, with a page that waits forever. The queue sweep fails those rows,
// saying why.

// discardedScan bounds one sweep: the most recent discarded jobs of the last
// day are enough, since the sweep runs every 30 s.
const (
	discardedScan   = 100
	discardedWithin = 24 * time.Hour
)

// failDiscarded fails every running analysis and spectrum whose River job was
// discarded after it started. It returns how many it failed.
func (r *Runner) failDiscarded(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	res, err := client.JobList(ctx, river.NewJobListParams().
		States(rivertype.JobStateDiscarded).
		Kinds(analysisArgs{}.Kind(), spectrumArgs{}.Kind()).
		Where("finalized_at > @since", river.NamedArgs{"since": time.Now().Add(-discardedWithin)}).
		OrderBy(river.JobListOrderByFinalizedAt, river.SortOrderDesc).
		First(discardedScan))
	if err != nil {
		return 0, fmt.Errorf("jobs: list discarded jobs: %w", err)
	}
	failed := 0
	for _, job := range res.Jobs {
		if job.FinalizedAt == nil {
			continue
		}
		msg := fmt.Sprintf("its worker stopped during each of %d attempts (killed? out of memory?); see the workers' logs", job.Attempt)
		if len(job.Errors) > 0 {
			msg += "; last error: " + job.Errors[len(job.Errors)-1].Error
		}
		var ok bool
		switch job.Kind {
		case analysisArgs{}.Kind():
			var args analysisArgs
			if json.Unmarshal(job.EncodedArgs, &args) != nil {
				continue
			}
			ok, err = r.failStuckAnalysis(ctx, args.ID, *job.FinalizedAt, msg)
		case spectrumArgs{}.Kind():
			var args spectrumArgs
			if json.Unmarshal(job.EncodedArgs, &args) != nil {
				continue
			}
			ok, err = r.failStuckSpectrum(ctx, args, *job.FinalizedAt, msg)
		}
		if err != nil {
			return failed, err
		}
		if ok {
			failed++
		}
	}
	return failed, nil
}

// failStuckAnalysis fails analysis id if it is still running on the attempt
// the discarded job was for: one started after the discard is another run's.
func (r *Runner) failStuckAnalysis(ctx context.Context, id string, discarded time.Time, msg string) (bool, error) {
	a, err := r.db.Get(ctx, id)
	if store.ErrorCode(err) == store.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if a.Status != store.StatusRunning || (a.StartedAt != nil && a.StartedAt.After(discarded)) {
		return false, nil
	}
	if err := r.db.Fail(ctx, id, msg); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, nil
		}
		return false, err
	}
	r.opt.Log.Warn("analysis failed: its job was discarded", "analysis", id, "reason", msg)
	r.notify(id)
	return true, nil
}

// failStuckSpectrum is failStuckAnalysis for a spectral job.
func (r *Runner) failStuckSpectrum(ctx context.Context, args spectrumArgs, discarded time.Time, msg string) (bool, error) {
	s, err := r.db.SpectrumOf(ctx, args.ID, args.Rank, false)
	if store.ErrorCode(err) == store.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if s.Status != store.StatusRunning || (s.StartedAt != nil && s.StartedAt.After(discarded)) {
		return false, nil
	}
	if err := r.db.FailSpectrum(ctx, s.ResultID, s.Rank, msg); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return false, nil
		}
		return false, err
	}
	r.opt.Log.Warn("spectrum failed: its job was discarded", "spectrum", s.ResultID, "rank", s.Rank, "reason", msg)
	r.notify(spectrumKey(s.ResultID, s.Rank))
	return true, nil
}
