package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

type createAnalysisRequest struct {
	Base []string `json:"base"`
	VLA  []string `json:"vla"`
	Map  []string `json:"map"`
	// Name and Tags label the analysis (not the result: they never change the
	// cache key). No name: one is made from the sources (store.DefaultName).
	Name string   `json:"name"`
	Tags []string `json:"tags"`
	// Exact subtracts at full precision; Geometry sets components' attention
	// layout ({"vision.siglip": {"heads": 16, "kv_heads": 16}}). Both change
	// the result, and so the cache key.
	Exact    bool                     `json:"exact"`
	Geometry map[string]arch.Geometry `json:"geometry"`
}

type createAnalysisResponse struct {
	ID     string       `json:"id"`
	Status store.Status `json:"status"`
	// Cached is true when the same files were analysed before: the id is that
	// analysis, already done.
	Cached bool `json:"cached"`
}

// apiAnalysisCreate queues an analysis of checkpoints already on the server.
// Both sides are opened (headers only) before anything is queued, so a path
// outside the roots is refused with 403 and a malformed file with 400 at once.
func (s *Server) apiAnalysisCreate(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeAnalysisRequest(w, r)
	if !ok {
		return
	}
	// Files analysed before are recognised by their quick identity alone,
	// without parsing a header: a repeated request costs a few stats.
	if a, ok := s.findCached(r, req); ok {
		s.stats.cacheHits.Add(1)
		writeJSON(w, http.StatusAccepted, createAnalysisResponse{ID: a.ID, Status: a.Status, Cached: true})
		return
	}
	_, _, done, ok := s.openRequestSides(w, r, req)
	if !ok {
		return
	}
	done() // opened to be checked: the job opens them again
	s.stats.cacheMisses.Add(1)
	if counts, err := s.db.CountByStatus(r.Context()); err == nil && counts[store.StatusQueued] >= s.guard.g.MaxQueuedAnalyses {
		tooManyRequests(w, fmt.Sprintf("%d analyses are already waiting (limit %d); try again when some have finished", counts[store.StatusQueued], s.guard.g.MaxQueuedAnalyses))
		return
	}
	a, err := s.db.CreateLabeled(r.Context(), req.storeRequest(), store.Labels{Name: req.Name, Tags: req.Tags})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.jobs.Wake()
	w.Header().Set("Location", "/api/analyses/"+a.ID)
	writeJSON(w, http.StatusAccepted, createAnalysisResponse{ID: a.ID, Status: a.Status})
}

// decodeAnalysisRequest reads and checks the body shared by create and preview,
// resolving relative paths against the roots. It answers the error itself.
func (s *Server) decodeAnalysisRequest(w http.ResponseWriter, r *http.Request) (createAnalysisRequest, bool) {
	var req createAnalysisRequest
	if !s.decodeJSON(w, r, &req) {
		return req, false
	}
	if len(req.Base) == 0 || len(req.VLA) == 0 {
		badRequest(w, `give at least one source in "base" and one in "vla"`)
		return req, false
	}
	for _, m := range req.Map {
		if _, err := arch.ParseMapRule(m); err != nil {
			badRequest(w, fmt.Sprintf("map rule %q: %v", m, err))
			return req, false
		}
	}
	if err := checkGeometry(req.Geometry); err != nil {
		badRequest(w, err.Error())
		return req, false
	}
	if len(s.cfg.Roots) == 0 {
		forbidden(w, "this server has no --root folders")
		return req, false
	}
	req.Base, req.VLA = s.resolveSpecs(req.Base), s.resolveSpecs(req.VLA)
	return req, true
}

// findCached looks the request's files up in the cache (jobs.FindCached).
func (s *Server) findCached(r *http.Request, req createAnalysisRequest) (*store.Analysis, bool) {
	return jobs.FindCached(r.Context(), s.db, s.openOptions(), req.storeRequest())
}

// openRequestSides opens both sides of a request (headers only), answering the
// error itself: 403 outside the roots, 400 for a malformed file, 429 when
// every preview slot stays taken. The request holds a preview slot from
// before the first header is read until done, which also closes the sides:
// the caller aligns and suggests in between, then calls done before writing
// a large answer, so a client that stops reading cannot keep the slot.
func (s *Server) openRequestSides(w http.ResponseWriter, r *http.Request, req createAnalysisRequest) (base, vla *checkpoint.Side, done func(), ok bool) {
	release, refusal := s.previewSlots.acquire(r.Context(), exportUser(r))
	if release == nil {
		tooManyRequests(w, refusal)
		return nil, nil, nil, false
	}
	opt := s.openOptions()
	opt.Context = r.Context() // remote sources: a client that leaves stops the header reads
	base, err := checkpoint.OpenSide(req.Base, opt)
	if err != nil {
		release()
		s.apiError(w, r, err)
		return nil, nil, nil, false
	}
	vla, err = checkpoint.OpenSide(req.VLA, opt)
	if err != nil {
		base.Close()
		release()
		s.apiError(w, r, err)
		return nil, nil, nil, false
	}
	return base, vla, func() { base.Close(); vla.Close(); release() }, true
}

// decodeJSON reads a bounded JSON body with no unknown fields into v.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	// A body that trickles in is cut off after BodyTimeout; the deadline is
	// lifted afterwards so it cannot touch a response that streams for long.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.guard.g.BodyTimeout))
	defer rc.SetReadDeadline(time.Time{})
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("request body larger than %d bytes (the server's --max-json-body)", tooBig.Limit)})
			return false
		}
		if isTimeout(err) {
			// The connection closes after it: bodyDeadline's "Connection:
			// close" stays, the body having never reached its end.
			writeJSON(w, http.StatusRequestTimeout, errorBody{fmt.Sprintf("the request body did not arrive within %v", s.guard.g.BodyTimeout)})
			return false
		}
		badRequest(w, "request body: "+err.Error())
		return false
	}
	return true
}

// resolveSpecs makes relative paths absolute against the first root that has
// them (or the first root), so the job finds them whatever its working folder.
func (s *Server) resolveSpecs(specs []string) []string {
	return checkpoint.MapSpecPaths(specs, func(p string) string {
		if filepath.IsAbs(p) || checkpoint.IsRemote(p) || len(s.cfg.Roots) == 0 {
			return p
		}
		for _, root := range s.cfg.Roots {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				return filepath.Join(root, p)
			}
		}
		return filepath.Join(s.cfg.Roots[0], p)
	})
}
