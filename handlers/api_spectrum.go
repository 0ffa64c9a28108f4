package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/store"
)

// spectrumView is a spectral job as the API shows it: its state, progress,
// and once done the spectrum of every 2-D tensor (and fused-qkv block).
type spectrumView struct {
	*store.Spectrum
	Progress float64 `json:"progress"`
	// AnalysisID is the analysis asked about (ResultID may be an earlier
	// analysis of the same content, whose result it shares).
	AnalysisID string `json:"analysis_id"`
}

// rankParam reads ?rank= (0 when absent); it answers a bad value itself.
func rankParam(w http.ResponseWriter, r *http.Request) (int, bool) {
	q := r.URL.Query().Get("rank")
	if q == "" {
		return 0, true
	}
	k, err := strconv.Atoi(q)
	if err != nil || k < 1 || k > spectral.MaxRank {
		badRequest(w, "rank: give a whole number from 1 to "+strconv.Itoa(spectral.MaxRank))
		return 0, false
	}
	return k, true
}

// apiSpectrumGet answers GET /api/analyses/{id}/spectrum[?rank=K]: the job at
// rank K, or the latest one asked for (a finished one first); 404 when none
// was asked for.
func (s *Server) apiSpectrumGet(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	rank, ok := rankParam(w, r)
	if !ok {
		return
	}
	var sp *store.Spectrum
	var err error
	if rank == 0 {
		sp, err = s.db.LatestSpectrum(r.Context(), id, true)
	} else {
		sp, err = s.db.SpectrumOf(r.Context(), id, rank, true)
	}
	if errors.Is(err, store.ErrNotFound) {
		if _, gerr := s.db.Get(r.Context(), id); gerr != nil {
			s.apiError(w, r, gerr)
			return
		}
		notFound(w, "no spectrum computed for this analysis yet: POST /api/analyses/"+id+"/spectrum to start one")
		return
	}
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spectrumView{Spectrum: sp, Progress: sp.Progress(), AnalysisID: id})
}

type spectrumRequest struct {
	Rank int `json:"rank"`
}

// apiSpectrumCreate answers POST /api/analyses/{id}/spectrum {"rank": K}
// (K defaults to 32; an empty body is fine): 202 with the job, queued unless it
// was already queued, running or done (then 200).
func (s *Server) apiSpectrumCreate(w http.ResponseWriter, r *http.Request) {
	req := spectrumRequest{}
	if r.ContentLength != 0 {
		if !s.decodeJSON(w, r, &req) {
			return
		}
	}
	if req.Rank == 0 {
		req.Rank = spectral.DefaultRank
	}
	id := chi.URLParam(r, "id")
	sp, err := s.jobs.QueueSpectrum(r.Context(), id, req.Rank)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	code := http.StatusAccepted
	if sp.Status == store.StatusDone {
		code = http.StatusOK
	}
	w.Header().Set("Location", "/api/analyses/"+id+"/spectrum?rank="+strconv.Itoa(sp.Rank))
	writeJSON(w, code, spectrumView{Spectrum: sp, Progress: sp.Progress(), AnalysisID: id})
}

// apiSpectrumCancel answers POST /api/analyses/{id}/spectrum/cancel?rank=K.
func (s *Server) apiSpectrumCancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	rank, ok := rankParam(w, r)
	if !ok {
		return
	}
	if rank == 0 {
		rank = spectral.DefaultRank
	}
	if err := s.jobs.CancelSpectrum(r.Context(), id, rank); err != nil {
		s.apiError(w, r, err)
		return
	}
	sp, err := s.db.SpectrumOf(r.Context(), id, rank, false)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spectrumView{Spectrum: sp, Progress: sp.Progress(), AnalysisID: id})
}
