package web

import (
	"strconv"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// JobView is the progress of a running analysis as text, for the first paint;
// job.js keeps it current from the server's events.
type JobView struct {
	Permille               string
	Bytes, Percent, Tensor string
	Rate, ETA              string
	// Origins says where each side comes from (the handler sets it; nil
	// leaves it off): before the analysis has read them, from the request.
	Origins *Origins
	// ReadSoFar is how far a failed or cancelled analysis had read ("1.2 MB
	// of 4.0 MB (30.0 %)"); empty when it read nothing.
	ReadSoFar string
	// Reason is a failed analysis's error less the Reasons listed under it:
	// an analysis in which nothing aligned says, per component, what likely
	// happened (store.Advice.Unmatched).
	Reason  string
	Reasons []string
}

// cutOnce removes the first sub from s.
func cutOnce(s, sub string) (string, bool) {
	before, after, ok := strings.Cut(s, sub)
	return before + after, ok
}

// NewJobView computes the rate and time left from the bytes read since the
// job started.
func NewJobView(a *store.Analysis, now time.Time) JobView {
	p := a.Progress()
	j := JobView{
		Permille: strconv.Itoa(int(p * 1000)),
		Bytes:    viz.FormatBytes(a.BytesDone) + " of " + viz.FormatBytes(a.BytesTotal),
		Percent:  Percent(p), Tensor: a.CurrentTensor, Rate: "–", ETA: "–",
	}
	if a.Status.Terminal() && a.BytesDone > 0 {
		j.ReadSoFar = j.Bytes + " (" + j.Percent + ")"
	}
	j.Reason = a.Error
	if a.Advice != nil {
		for _, r := range arch.UnmatchedReasons(a.Advice.Unmatched) {
			if rest, ok := cutOnce(j.Reason, "; "+r); ok {
				j.Reason = rest
				j.Reasons = append(j.Reasons, r)
			}
		}
	}
	if a.Status == store.StatusQueued {
		j.Tensor, j.ETA = "waiting for a worker", "–"
	}
	if a.StartedAt != nil && a.BytesDone > 0 {
		secs := now.Sub(*a.StartedAt).Seconds()
		if secs > 0 {
			rate := float64(a.BytesDone) / secs
			j.Rate = viz.FormatBytes(int64(rate)) + "/s"
			if rate > 0 && a.BytesTotal > a.BytesDone {
				j.ETA = (time.Duration(float64(a.BytesTotal-a.BytesDone)/rate) * time.Second).Round(time.Second).String()
			}
		}
	}
	return j
}
