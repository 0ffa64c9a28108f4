package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Routes is the one route table of the server.
func (s *Server) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.bodyDeadline, s.logRequests, s.recoverPanics)
	// Security headers first so refusals carry them too; then CSRF, then who
	// the request is from and what it may do (auth.go: requiredRole is the
	// policy of every route, public ones included).
	r.Use(s.securityHeaders, s.crossOriginProtection, s.authenticate, s.authorize)

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/metrics", s.metrics)

	s.authRoutes(r)
	s.pageRoutes(r)
	s.composeRoutes(r)
	s.reviewPageRoutes(r)
	s.adminRoutes(r) // page_admin.go: accounts and API tokens

	r.Route("/api", func(r chi.Router) {
		r.Get("/analyses", s.apiAnalysisList)
		r.Post("/analyses", s.apiAnalysisCreate)
		r.Get("/analyses/{id}", s.apiAnalysisGet)
		r.Patch("/analyses/{id}", s.apiAnalysisLabels)
		r.Delete("/analyses/{id}", s.apiAnalysisCancel)
		r.Post("/analyses/{id}/cancel", s.apiAnalysisCancel)
		r.Get("/analyses/{id}/tensors", s.apiAnalysisTensors)
		r.Get("/analyses/{id}/units", s.apiAnalysisUnits)
		r.Get("/analyses/{id}/events", s.apiAnalysisEvents)
		r.Get("/analyses/{id}/spectrum", s.apiSpectrumGet)
		r.Post("/analyses/{id}/spectrum", s.apiSpectrumCreate)
		r.Post("/analyses/{id}/spectrum/cancel", s.apiSpectrumCancel)
		r.Get("/series", s.apiSeriesList)
		r.Post("/series", s.apiSeriesCreate)
		r.Get("/series/{id}", s.apiSeriesGet)
		r.Post("/preview", s.apiPreview)
		r.Get("/files", s.apiFiles)
		// tus 1.0 (api_uploads_tus.go); GET answers JSON for the owner.
		r.Post("/uploads", s.apiUploadCreate)
		r.Options("/uploads", s.apiUploadCreate)
		r.Get("/uploads", s.apiUploadList)
		r.Get("/uploads/{id}", s.apiUploadGet)
		r.Head("/uploads/{id}", s.apiUploadResource)
		r.Patch("/uploads/{id}", s.apiUploadResource)
		r.Delete("/uploads/{id}", s.apiUploadResource)
		r.Options("/uploads/{id}", s.apiUploadResource)
		s.userRoutes(r)
		s.recipeRoutes(r)
		s.reviewRoutes(r)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) { notFound(w, "no such API route") })
	})
	return r
}
