package handlers

import (
	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/assets"
)

// pageRoutes registers the dashboard's pages and assets. Every page is a GET
// whose query is its whole state (a permalink); tables on a page download with
// ?format=csv|json&table=ID.
func (s *Server) pageRoutes(r chi.Router) {
	r.Handle(assets.Prefix+"*", assets.Handler())
	r.Get("/", s.pageHome)
	r.Get("/new", s.pageNew)
	r.Get("/analyses/{id}", s.pageAnalysis)
	r.Post("/analyses/{id}/cancel", s.pageAnalysisCancel)
	// Tensor names contain dots and, from uploaded files, anything else: the
	// name is one escaped path segment (or ?name=), see web.TensorURL.
	r.Get("/analyses/{id}/tensors", s.pageTensor)
	r.Get("/analyses/{id}/tensors/*", s.pageTensor)
	r.Get("/analyses/{id}/spectrum", s.pageSpectrum)
	r.Get("/series", s.pageSeriesList)
	r.Post("/series", s.pageSeriesCreate)
	r.Get("/series/{id}", s.pageSeries)
	r.Post("/analyses/{id}/spectrum", s.pageSpectrumStart)
	r.Post("/analyses/{id}/spectrum/cancel", s.pageSpectrumCancel)
}
