package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageTensor shows one tensor of a done analysis: its channels, heads and
// statistics. An analysis that is not done sends the user to its job page.
func (s *Server) pageTensor(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	name, ok := tensorName(r, id)
	if !ok {
		s.render(w, r, http.StatusNotFound, web.NotFoundPage("Which tensor? The address names none."))
		return
	}
	// Find the tensor's place cheaply, then read only its group with arrays.
	all, err := s.db.Tensors(ctx, id, store.TensorFilter{})
	if errors.Is(err, store.ErrConflict) {
		http.Redirect(w, r, web.AnalysisURL(id), http.StatusSeeOther)
		return
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	i := -1
	for j := range all {
		if all[j].VLA == name {
			i = j
			break
		}
	}
	if i < 0 {
		s.render(w, r, http.StatusNotFound, web.NotFoundPage("This analysis has no tensor named "+name+"."))
		return
	}
	layer := all[i].Layer
	group, err := s.db.Tensors(ctx, id, store.TensorFilter{Component: all[i].Component, Kind: all[i].Kind, Layer: &layer, WithArrays: true})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	t := &all[i]
	for j := range group {
		if group[j].VLA == name {
			t = &group[j]
		}
	}
	a, err := s.db.Get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := web.BuildTensor(a, t, r.URL.Query())
	p.Charts = append(p.Charts, s.tensorSpectrumCharts(r, id, name)...)
	if wantsTable(r) {
		writeTable(w, r, id+"-"+name, p.Tables())
		return
	}
	thread, err := s.commentThread(r, id, store.TargetTensor, name, "Comments on this tensor")
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Comments = &thread
	s.render(w, r, http.StatusOK, web.TensorView(p))
}

// tensorName reads the name from the escaped path (so %2F inside a name stays
// part of it) or from ?name=.
func tensorName(r *http.Request, id string) (string, bool) {
	prefix := web.TensorsPrefix(id)
	if p := r.URL.EscapedPath(); strings.HasPrefix(p, prefix) && len(p) > len(prefix) {
		name, err := url.PathUnescape(p[len(prefix):])
		return name, err == nil
	}
	name := r.URL.Query().Get("name")
	return name, name != ""
}
