package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
)

// access is who may call a route: anyone (public), or an account of at least
// a role. In auth=none mode every request acts as the local admin.
type access struct {
	public bool
	min    store.Role
}

var (
	public = access{public: true}
	viewer = access{min: store.RoleViewer} // reads, comments, resolving a recipe
	editor = access{min: store.RoleEditor} // anything that changes analyses, uploads, recipes, reviews
	admin  = access{min: store.RoleAdmin}  // accounts and their credentials
)

func (a access) String() string {
	if a.public {
		return "public"
	}
	return string(a.min)
}

// table registers routes. It is the only way a route is added, and it needs
// the route's access: a route cannot be added without saying who may call it
// (TestEveryRouteDeclaresAccess walks the router to hold that).
type table struct {
	r      chi.Router
	s      *Server
	prefix string
	// declared records each route's access by "METHOD /full/pattern".
	declared map[string]access
}

func (t *table) add(method, pattern string, a access, h http.Handler) {
	t.declared[method+" "+t.prefix+pattern] = a
	if !a.public {
		h = t.s.requireAccess(a.min)(h)
	}
	t.r.Method(method, pattern, h)
}

func (t *table) get(p string, a access, h http.HandlerFunc)    { t.add(http.MethodGet, p, a, h) }
func (t *table) post(p string, a access, h http.HandlerFunc)   { t.add(http.MethodPost, p, a, h) }
func (t *table) patch(p string, a access, h http.HandlerFunc)  { t.add(http.MethodPatch, p, a, h) }
func (t *table) put(p string, a access, h http.HandlerFunc)    { t.add(http.MethodPut, p, a, h) }
func (t *table) delete(p string, a access, h http.HandlerFunc) { t.add(http.MethodDelete, p, a, h) }
func (t *table) head(p string, a access, h http.HandlerFunc)   { t.add(http.MethodHead, p, a, h) }
func (t *table) options(p string, a access, h http.HandlerFunc) {
	t.add(http.MethodOptions, p, a, h)
}

// group registers routes under a path prefix (chi.Router.Route).
func (t *table) group(prefix string, f func(*table)) {
	t.r.Route(prefix, func(r chi.Router) {
		f(&table{r: r, s: t.s, prefix: t.prefix + prefix, declared: t.declared})
	})
}

// Routes is the one route table of the server: every route, grouped by what
// it serves, with who may call it beside it.
func (s *Server) Routes() http.Handler {
	h, _ := s.routes()
	return h
}

// routes builds the router and returns, beside it, each route's declared
// access by "METHOD /pattern" (for the tests that hold the table to the
// policy).
func (s *Server) routes() (http.Handler, map[string]access) {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, s.bodyDeadline, s.logRequests, s.recoverPanics)
	// Security headers first so refusals carry them too; then CSRF, then who
	// the request is from. What it may do is each route's access below.
	r.Use(s.securityHeaders, s.crossOriginProtection, s.authenticate)
	t := &table{r: r, s: s, declared: map[string]access{}}

	// Health checks, polled by supervisors and load balancers without a login.
	t.get("/healthz", public, s.healthz)
	t.get("/readyz", public, s.readyz)
	t.get("/metrics", viewer, s.metrics)

	// Signing in (auth_login.go). In auth=none mode these send the browser home.
	t.get("/login", public, s.loginPage)
	t.post("/login", public, s.loginSubmit)
	t.post("/logout", public, s.logout) // harmless, and it must work with an expired session

	// Assets at checksum URLs. The login page's style sheet is public, so the
	// page is styled before sign-in; everything else needs an account.
	t.get(assets.URL(assets.LoginCSS), public, assets.Handler().ServeHTTP)
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		t.add(m, assets.Prefix+"*", viewer, assets.Handler())
	}

	// Pages. Every page is a GET whose query is its whole state (a permalink);
	// tables on a page download with ?format=csv|json&table=ID.
	t.get("/", viewer, s.pageHome)
	t.get("/new", viewer, s.pageNew)
	t.get("/analyses/{id}", viewer, s.pageAnalysis)
	t.post("/analyses/{id}/cancel", editor, s.pageAnalysisCancel)
	// Tensor names contain dots and, from uploaded files, anything else: the
	// name is one escaped path segment (or ?name=), see web.TensorURL.
	t.get("/analyses/{id}/tensors", viewer, s.pageTensor)
	t.get("/analyses/{id}/tensors/*", viewer, s.pageTensor)
	t.get("/analyses/{id}/spectrum", viewer, s.pageSpectrum)
	t.post("/analyses/{id}/spectrum", editor, s.pageSpectrumStart)
	t.post("/analyses/{id}/spectrum/cancel", editor, s.pageSpectrumCancel)
	t.get("/analyses/{id}/compose", viewer, s.pageCompose) // ?recipe=RID edits a saved one
	t.get("/analyses/{id}/activity", viewer, s.pageActivity)
	t.get("/analyses/{id}/evals", viewer, s.pageEvals)
	t.get("/analyses/{id}/recipes/{rid}", viewer, s.pageRecipeReview)
	t.get("/recipes/compare", viewer, s.pageRecipeCompare) // ?a=RID&b=RID
	t.get("/compare", viewer, s.pageCompare)               // ?a=ID&b=ID&component=&metric=&scale=&clip=&palette=&k=
	t.get("/series", viewer, s.pageSeriesList)
	t.post("/series", editor, s.pageSeriesCreate)
	t.get("/series/{id}", viewer, s.pageSeries)
	// The admin's page of accounts and API tokens (the same as `user token
	// NAME --list|--revoke|--all` and `user unlock`).
	t.get("/admin/users", admin, s.pageAdminUsers)
	t.post("/admin/users/{name}/tokens", admin, s.pageAdminTokenCreate)
	t.post("/admin/users/{name}/tokens/revoke", admin, s.pageAdminTokensRevokeAll)
	t.post("/admin/users/{name}/tokens/{tid}/revoke", admin, s.pageAdminTokenRevoke)
	t.post("/admin/users/{name}/unlock", admin, s.pageAdminUnlock)

	t.group("/api", func(t *table) {
		// Analyses.
		t.get("/analyses", viewer, s.apiAnalysisList)
		t.post("/analyses", editor, s.apiAnalysisCreate)
		t.get("/analyses/{id}", viewer, s.apiAnalysisGet)
		t.patch("/analyses/{id}", editor, s.apiAnalysisLabels) // {"name", "tags"}
		t.delete("/analyses/{id}", editor, s.apiAnalysisCancel)
		t.post("/analyses/{id}/cancel", editor, s.apiAnalysisCancel)
		t.get("/analyses/{id}/tensors", viewer, s.apiAnalysisTensors)
		t.get("/analyses/{id}/units", viewer, s.apiAnalysisUnits)
		t.get("/analyses/{id}/events", viewer, s.apiAnalysisEvents) // server-sent progress
		t.post("/preview", editor, s.apiPreview)
		t.get("/files", viewer, s.apiFiles)

		// Spectra of ΔW and training-run series.
		t.get("/analyses/{id}/spectrum", viewer, s.apiSpectrumGet) // ?rank=K
		t.post("/analyses/{id}/spectrum", editor, s.apiSpectrumCreate)
		t.post("/analyses/{id}/spectrum/cancel", editor, s.apiSpectrumCancel)
		t.get("/series", viewer, s.apiSeriesList)
		t.post("/series", editor, s.apiSeriesCreate)
		t.get("/series/{id}", viewer, s.apiSeriesGet)

		// Uploads: tus 1.0 served by tusd (api_uploads_tus.go); GET answers
		// JSON to the upload's owner, and nobody else sees it.
		t.post("/uploads", editor, s.apiUploadCreate)
		t.options("/uploads", viewer, s.apiUploadCreate)
		t.get("/uploads", viewer, s.apiUploadList)
		t.get("/uploads/{id}", viewer, s.apiUploadGet)
		t.head("/uploads/{id}", viewer, s.apiUploadResource)
		t.patch("/uploads/{id}", editor, s.apiUploadResource)
		t.delete("/uploads/{id}", editor, s.apiUploadResource)
		t.options("/uploads/{id}", viewer, s.apiUploadResource)

		// Pruning recipes. Resolving a recipe, or downloading the export of
		// one not saved, changes nothing: a viewer may (it is a POST only
		// because a recipe is too big for a query string).
		t.get("/presets", viewer, s.apiPresets)                       // built-in recipes and module families
		t.post("/analyses/{id}/resolve", viewer, s.apiResolve)        // a recipe or {"preset"} → params, rules, warnings, units
		t.post("/analyses/{id}/export", viewer, s.apiInlineExport)    // ?kind=: download of a recipe sent in the body
		t.get("/analyses/{id}/recipes", viewer, s.apiRecipeList)      // saved recipes of an analysis
		t.post("/analyses/{id}/recipes", editor, s.apiRecipeCreate)   // {"name", "note", "recipe"}
		t.get("/analyses/{id}/recipes/{rid}", viewer, s.apiRecipeGet) // one saved recipe
		t.patch("/analyses/{id}/recipes/{rid}", editor, s.apiRecipeUpdate)
		t.put("/analyses/{id}/recipes/{rid}", editor, s.apiRecipeUpdate)
		t.delete("/analyses/{id}/recipes/{rid}", editor, s.apiRecipeDelete) // someone else's needs an admin (the handler)
		t.post("/analyses/{id}/recipes/{rid}/duplicate", editor, s.apiRecipeDuplicate)
		t.get("/analyses/{id}/recipes/{rid}/export", viewer, s.apiRecipeExport) // ?kind=recipe|indices|masks|masks-snippet|masked|sliced
		t.get("/recipes/compare", viewer, s.apiRecipeCompare)                   // ?a=RID&b=RID: parameter deltas, pruned-unit overlap

		// Reviews. Viewers comment; the handlers let only a comment's author
		// edit it, and its author or an admin delete it. Review decisions and
		// evaluation results need an editor, and not the recipe's author.
		t.get("/analyses/{id}/comments", viewer, s.apiCommentList) // ?target=&key=: a thread, or every comment
		t.post("/analyses/{id}/comments", viewer, s.apiCommentCreate)
		t.patch("/comments/{cid}", viewer, s.apiCommentUpdate)
		t.delete("/comments/{cid}", viewer, s.apiCommentDelete)
		t.get("/analyses/{id}/activity", viewer, s.apiActivity) // ?limit=: newest first
		t.get("/recipes/{rid}/review", viewer, s.apiReviewGet)  // status, history, allowed moves
		t.post("/recipes/{rid}/review", editor, s.apiReviewSet) // {"status", "note"}
		t.get("/recipes/{rid}/evals", viewer, s.apiRecipeEvalList)
		t.post("/recipes/{rid}/evals", editor, s.apiRecipeEvalCreate) // {"benchmark", "success_rate", "episodes", "notes"}
		t.get("/analyses/{id}/evals", viewer, s.apiEvalList)          // the baseline included
		t.post("/analyses/{id}/evals", editor, s.apiEvalCreate)       // as above plus "recipe": id, name or "baseline"
		t.post("/analyses/{id}/evals.csv", editor, s.apiEvalImport)   // recipe,benchmark,success_rate,episodes,notes; all rows or none

		// Accounts: who am I (any account), user management (admins).
		t.get("/me", viewer, s.apiMe)
		t.get("/users", admin, s.apiUserList)
		t.post("/users", admin, s.apiUserCreate)
		t.get("/users/{name}", admin, s.apiUserGet)
		t.patch("/users/{name}", admin, s.apiUserUpdate)
		t.delete("/users/{name}", admin, s.apiUserDelete)
		t.post("/users/{name}/unlock", admin, s.apiUserUnlock) // lift a login lock-out
		t.get("/users/{name}/tokens", admin, s.apiTokenList)   // with last use and expiry
		t.post("/users/{name}/tokens", admin, s.apiTokenCreate)
		t.delete("/users/{name}/tokens", admin, s.apiTokenRevokeAll)
		t.delete("/users/{name}/tokens/{tid}", admin, s.apiTokenRevoke)

		t.r.NotFound(func(w http.ResponseWriter, r *http.Request) { notFound(w, "no such API route") })
	})
	return r, t.declared
}

// requireAccess guards one route with a minimum role. Anonymous browsers
// asking for a page are sent to the login page; anything else anonymous gets
// 401, and an account whose role is too low 403.
func (s *Server) requireAccess(min store.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.allow(w, r, min) {
				next.ServeHTTP(w, r)
			}
		})
	}
}
