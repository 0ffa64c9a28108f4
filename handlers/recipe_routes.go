package handlers

import "github.com/go-chi/chi/v5"

// recipeRoutes registers the pruning-recipe API; it is called inside the /api
// route group, so paths are relative to /api.
//
//	GET    /presets                                  built-in recipes and module families
//	POST   /analyses/{id}/resolve                    a recipe (or {"preset"}) → params, rules, warnings, pruned units
//	GET    /analyses/{id}/recipes                    saved recipes of an analysis
//	POST   /analyses/{id}/recipes                    save {"name", "note", "recipe"}
//	GET    /analyses/{id}/recipes/{rid}              one saved recipe
//	PATCH  /analyses/{id}/recipes/{rid}              edit name, note or recipe
//	DELETE /analyses/{id}/recipes/{rid}
//	POST   /analyses/{id}/recipes/{rid}/duplicate    copy, optionally {"name"}
//	GET    /analyses/{id}/recipes/{rid}/export?kind= download (recipe|indices|masks|masks-snippet|masked|sliced)
//	POST   /analyses/{id}/export?kind=               download of a recipe sent in the body
//	GET    /recipes/compare?a=RID&b=RID              parameter deltas and pruned-unit overlap
func (s *Server) recipeRoutes(r chi.Router) {
	r.Get("/presets", s.apiPresets)
	r.Post("/analyses/{id}/resolve", s.apiResolve)
	r.Get("/analyses/{id}/recipes", s.apiRecipeList)
	r.Post("/analyses/{id}/recipes", s.apiRecipeCreate)
	r.Get("/analyses/{id}/recipes/{rid}", s.apiRecipeGet)
	r.Patch("/analyses/{id}/recipes/{rid}", s.apiRecipeUpdate)
	r.Put("/analyses/{id}/recipes/{rid}", s.apiRecipeUpdate)
	r.Delete("/analyses/{id}/recipes/{rid}", s.apiRecipeDelete)
	r.Post("/analyses/{id}/recipes/{rid}/duplicate", s.apiRecipeDuplicate)
	r.Get("/analyses/{id}/recipes/{rid}/export", s.apiRecipeExport)
	r.Post("/analyses/{id}/export", s.apiInlineExport)
	r.Get("/recipes/compare", s.apiRecipeCompare)
}
