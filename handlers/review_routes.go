package handlers

import "github.com/go-chi/chi/v5"

// reviewRoutes registers the reviewing API (inside /api, so paths are
// relative to it). Viewers may comment (auth.go: viewerWriteRoutes); review
// decisions and evaluation results need an editor.
//
//	GET    /analyses/{id}/comments?target=&key=   a thread, or every comment
//	POST   /analyses/{id}/comments                {"target", "key", "body", "view"}
//	PATCH  /comments/{cid}                        {"body"}: the author only
//	DELETE /comments/{cid}                        the author or an admin
//	GET    /analyses/{id}/activity?limit=         comments, review decisions, results; newest first
//	GET    /recipes/{rid}/review                  status, history, allowed moves
//	POST   /recipes/{rid}/review                  {"status", "note"}
//	GET    /recipes/{rid}/evals                   a recipe's evaluation results
//	POST   /recipes/{rid}/evals                   {"benchmark", "success_rate", "episodes", "notes"}
//	GET    /analyses/{id}/evals                   every result of the analysis, baseline included
//	POST   /analyses/{id}/evals                   as above plus "recipe": id, name or "baseline"
//	POST   /analyses/{id}/evals.csv               recipe,benchmark,success_rate,episodes,notes; all rows or none
func (s *Server) reviewRoutes(r chi.Router) {
	r.Get("/analyses/{id}/comments", s.apiCommentList)
	r.Post("/analyses/{id}/comments", s.apiCommentCreate)
	r.Patch("/comments/{cid}", s.apiCommentUpdate)
	r.Delete("/comments/{cid}", s.apiCommentDelete)
	r.Get("/analyses/{id}/activity", s.apiActivity)
	r.Get("/recipes/{rid}/review", s.apiReviewGet)
	r.Post("/recipes/{rid}/review", s.apiReviewSet)
	r.Get("/recipes/{rid}/evals", s.apiRecipeEvalList)
	r.Post("/recipes/{rid}/evals", s.apiRecipeEvalCreate)
	r.Get("/analyses/{id}/evals", s.apiEvalList)
	r.Post("/analyses/{id}/evals", s.apiEvalCreate)
	r.Post("/analyses/{id}/evals.csv", s.apiEvalImport)
}

// reviewPageRoutes registers the reviewing pages (top level).
//
//	GET /compare?a=ID&b=ID&component=&metric=&scale=&clip=&palette=&k=
//	GET /analyses/{id}/activity
//	GET /analyses/{id}/evals
//	GET /analyses/{id}/recipes/{rid}
func (s *Server) reviewPageRoutes(r chi.Router) {
	r.Get("/compare", s.pageCompare)
	r.Get("/analyses/{id}/activity", s.pageActivity)
	r.Get("/analyses/{id}/evals", s.pageEvals)
	r.Get("/analyses/{id}/recipes/{rid}", s.pageRecipeReview)
}
