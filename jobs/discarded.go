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
		row, err := r.jobRow(ctx, job)
		if err != nil {
			return failed, err
		}
		// Still running on the attempt the discarded job was for: one
		// started after the discard is another run's.
		if row == nil || row.status != store.StatusRunning || (row.started != nil && row.started.After(*job.FinalizedAt)) {
			continue
		}
		if err := row.fail(ctx, msg); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return failed, err
		}
		r.opt.Log.Warn("job failed: River discarded it", "job", row.key, "reason", msg)
		r.notify(row.key)
		failed++
	}
	return failed, nil
}

// stuckRow is the row of a discarded job: its state, and how to fail it.
type stuckRow struct {
	key     string // as Runner.running's
	status  store.Status
	started *time.Time
	fail    func(context.Context, string) error
}

// jobRow reads the analysis or spectrum a River job is of; nil if it is gone
// or the job is not one of ours.
func (r *Runner) jobRow(ctx context.Context, job *rivertype.JobRow) (*stuckRow, error) {
	switch job.Kind {
	case analysisArgs{}.Kind():
		var args analysisArgs
		if json.Unmarshal(job.EncodedArgs, &args) != nil {
			return nil, nil
		}
		a, err := r.db.Get(ctx, args.ID)
		if store.ErrorCode(err) == store.ENOTFOUND {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &stuckRow{key: a.ID, status: a.Status, started: a.StartedAt,
			fail: func(c context.Context, msg string) error { return r.db.Fail(c, a.ID, msg) }}, nil
	case spectrumArgs{}.Kind():
		var args spectrumArgs
		if json.Unmarshal(job.EncodedArgs, &args) != nil {
			return nil, nil
		}
		s, err := r.db.SpectrumOf(ctx, args.ID, args.Rank, false)
		if store.ErrorCode(err) == store.ENOTFOUND {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &stuckRow{key: spectrumKey(s.ResultID, s.Rank), status: s.Status, started: s.StartedAt,
			fail: func(c context.Context, msg string) error { return r.db.FailSpectrum(c, s.ResultID, s.Rank, msg) }}, nil
	}
	return nil, nil
}
