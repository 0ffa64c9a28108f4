package handlers

import "github.com/go-chi/chi/v5"

// pageRoutes registers the dashboard's pages and assets.
func (s *Server) pageRoutes(r chi.Router) {}
