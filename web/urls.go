// Package web holds the dashboard's pages: templ components, the view models
// they render, and the tables they show (which the CSV and JSON downloads
// reuse, so a download is always the table on screen).
package web

import (
	"maps"
	"net/url"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/store"
)

// Every URL a page shows or hands to JavaScript is made in this file: pages
// put them in href/action/data-* attributes, and the scripts in assets/ read
// them from there (they hold no path of their own; assets tests that).
// Handlers register the same patterns (handlers/routes.go).

// Page paths.
const (
	HomePath = "/"
	NewPath  = "/new"
	// LoginPath and LogoutPath are the sign-in page and the sign-out form's target.
	LoginPath  = "/login"
	LogoutPath = "/logout"
	// ComparePath is the side-by-side comparison of two analyses.
	ComparePath = "/compare"
	// SeriesListURL lists the series and holds the form that creates one.
	SeriesListURL = "/series"
	// RecipesComparePath is the comparison of two saved recipes (?a=RID&b=RID).
	RecipesComparePath = "/recipes/compare"
)

// API paths that take no id.
const (
	// MeAPIPath says who is signed in (the layout's whoami box).
	MeAPIPath = "/api/me"
	// AnalysesAPIPath creates an analysis (POST) and lists them (GET).
	AnalysesAPIPath = "/api/analyses"
	// PreviewAPIPath previews the alignment of a request.
	PreviewAPIPath = "/api/preview"
	// FilesAPIPath browses the server's --root folders.
	FilesAPIPath = "/api/files"
	// UploadsAPIPath is the tus endpoint uploads are created at; an upload's
	// own URL is this path, a slash and its id.
	UploadsAPIPath = "/api/uploads"
	// RecipesCompareAPIPath is the comparison of two saved recipes as JSON.
	RecipesCompareAPIPath = "/api/recipes/compare"
)

// ---------------------------------------------------------------- analyses

// AnalysisURL is the page of one analysis: the job page until it is done, then
// its overview. AnalysisURL("") is the prefix a script appends an id to.
func AnalysisURL(id string) string { return "/analyses/" + url.PathEscape(id) }

// AnalysisViewURL is the overview with a view state (tab, metric, ...).
func AnalysisViewURL(id string, q url.Values) string { return withQuery(AnalysisURL(id), q) }

// CancelURL is the no-JavaScript cancel form's target.
func CancelURL(id string) string { return AnalysisURL(id) + "/cancel" }

// TensorURL is the page of one tensor, by its VLA name. Names contain dots and
// may contain anything an uploaded file put there, so the name is one escaped
// path segment (a '/' in it becomes %2F); q carries the overview's state so the
// way back keeps it.
func TensorURL(id, name string, q url.Values) string {
	return withQuery(TensorsPrefix(id)+url.PathEscape(name), q)
}

// TensorsPrefix is what a chart appends an escaped tensor name to (a heatmap
// cell's link).
func TensorsPrefix(id string) string { return AnalysisURL(id) + "/tensors/" }

// NewAnalysisURL is the new-analysis form prefilled with a request's sources,
// rules and options, plus extraMap rules: one click re-runs an analysis with a
// suggested --map rule (new.js reads the query and fills the form).
func NewAnalysisURL(req store.AnalysisRequest, extraMap ...string) string {
	q := url.Values{}
	for _, b := range req.Base {
		q.Add("base", b)
	}
	for _, v := range req.VLA {
		q.Add("vla", v)
	}
	for _, m := range append(slices.Clone(req.Map), extraMap...) {
		q.Add("map", m)
	}
	if req.Exact {
		q.Set("exact", "1")
	}
	for _, c := range slices.Sorted(maps.Keys(req.Geometry)) {
		g := req.Geometry[c]
		kv := g.KVHeads
		if kv == 0 {
			kv = g.Heads
		}
		q.Add("heads", c+"="+strconv.Itoa(g.Heads)+":"+strconv.Itoa(kv))
	}
	return withQuery(NewPath, q)
}

// SpectrumURL is the spectrum tab of an analysis.
func SpectrumURL(id string, q url.Values) string { return withQuery(AnalysisURL(id)+"/spectrum", q) }

// SpectrumCancelURL is the no-JavaScript form that cancels a spectral job.
func SpectrumCancelURL(id string) string { return AnalysisURL(id) + "/spectrum/cancel" }

// ActivityURL is the review activity of an analysis.
func ActivityURL(id string) string { return AnalysisURL(id) + "/activity" }

// EvalsURL is the evaluation results page of an analysis.
func EvalsURL(id string) string { return AnalysisURL(id) + "/evals" }

// AnalysesCompareURL is the side-by-side comparison of two analyses (either may be "").
func AnalysesCompareURL(a, b string) string {
	q := url.Values{}
	if a != "" {
		q.Set("a", a)
	}
	if b != "" {
		q.Set("b", b)
	}
	return withQuery(ComparePath, q)
}

// SeriesURL is the page of one series.
func SeriesURL(id string, q url.Values) string { return withQuery("/series/"+url.PathEscape(id), q) }

// APIAnalysisURL is the JSON of one analysis.
func APIAnalysisURL(id string) string { return AnalysesAPIPrefix + url.PathEscape(id) }

// AnalysesAPIPrefix is what APIAnalysisURL appends an escaped id to.
const AnalysesAPIPrefix = AnalysesAPIPath + "/"

// AnalysisEventsAPIURL streams an analysis's progress (server-sent events).
func AnalysisEventsAPIURL(id string) string { return APIAnalysisURL(id) + "/events" }

// CommentsAPIURL is an analysis's comments in the API.
func CommentsAPIURL(analysisID string) string { return APIAnalysisURL(analysisID) + "/comments" }

// CommentAPIURL is one comment in the API.
func CommentAPIURL(id int64) string { return "/api/comments/" + strconv.FormatInt(id, 10) }

// EvalsAPIURL takes one evaluation result of an analysis (POST).
func EvalsAPIURL(id string) string { return APIAnalysisURL(id) + "/evals" }

// EvalsImportAPIURL takes a CSV of evaluation results.
func EvalsImportAPIURL(id string) string { return APIAnalysisURL(id) + "/evals.csv" }

// ---------------------------------------------------------------- recipes

// ComposeURL is the composer of an analysis, editing saved recipe rid when > 0.
func ComposeURL(id string, rid int64) string {
	if rid > 0 {
		return composeURL(id, strconv.FormatInt(rid, 10))
	}
	return composeURL(id, "")
}

// composeURL is the composer editing saved recipe rid (its id or
// RecipeIDSlot), or none when rid is "".
func composeURL(id, rid string) string {
	u := AnalysisURL(id) + "/compose"
	if rid != "" {
		u += "?recipe=" + rid
	}
	return u
}

// RecipeURL is a saved recipe's review page.
func RecipeURL(id string, rid int64) string {
	return AnalysisURL(id) + "/recipes/" + strconv.FormatInt(rid, 10)
}

// CompareURL is the comparison of two saved recipes.
func CompareURL(a, b int64) string {
	return RecipesComparePath + "?" + recipePair(a, b)
}

// RecipesCompareAPIURL is the comparison of two saved recipes as JSON.
func RecipesCompareAPIURL(a, b int64) string {
	return RecipesCompareAPIPath + "?" + recipePair(a, b)
}

func recipePair(a, b int64) string {
	return url.Values{"a": {strconv.FormatInt(a, 10)}, "b": {strconv.FormatInt(b, 10)}}.Encode()
}

// ResolveAPIURL resolves a posted recipe against an analysis (the composer's
// live counts).
func ResolveAPIURL(id string) string { return APIAnalysisURL(id) + "/resolve" }

// RecipesAPIURL lists and creates an analysis's saved recipes; one saved
// recipe is below it (SavedRecipeAPIPattern).
func RecipesAPIURL(id string) string { return APIAnalysisURL(id) + "/recipes" }

// SavedExportURL downloads an export of a saved recipe.
func SavedExportURL(id string, rid int64, kind string) string {
	return savedExportURL(id, strconv.FormatInt(rid, 10), url.QueryEscape(kind))
}

// savedExportURL is a saved recipe's export; rid and kind are its id and the
// escaped kind, or RecipeIDSlot and KindSlot.
func savedExportURL(id, rid, kind string) string {
	return savedRecipeAPIURL(id, rid) + "/export?kind=" + kind
}

// RecipeIDSlot and KindSlot stand for a saved recipe's id and an export kind
// in the URL patterns handed to the composer's script (ComposeAPI, ComposeData),
// which puts the id it saved and the kind there: the script makes no path.
const (
	RecipeIDSlot = "{rid}"
	KindSlot     = "{kind}"
)

// savedRecipeAPIURL is one saved recipe in the API (GET, PATCH, PUT, DELETE);
// rid is its id or RecipeIDSlot.
func savedRecipeAPIURL(id, rid string) string { return RecipesAPIURL(id) + "/" + rid }

// SavedRecipeAPIPattern is one saved recipe of an analysis in the API, with
// RecipeIDSlot for its id (the composer's save of a recipe it saved before).
func SavedRecipeAPIPattern(id string) string { return savedRecipeAPIURL(id, RecipeIDSlot) }

// DuplicateRecipeAPIPattern copies a saved recipe (POST), RecipeIDSlot for its id.
func DuplicateRecipeAPIPattern(id string) string { return SavedRecipeAPIPattern(id) + "/duplicate" }

// SavedExportPattern is SavedExportURL with RecipeIDSlot and KindSlot.
func SavedExportPattern(id string) string { return savedExportURL(id, RecipeIDSlot, KindSlot) }

// ComposeEditPattern is ComposeURL editing the saved recipe RecipeIDSlot.
func ComposeEditPattern(id string) string { return composeURL(id, RecipeIDSlot) }

// InlineExportAPIURL exports the recipe posted in a form (?kind=KIND).
func InlineExportAPIURL(id string) string { return APIAnalysisURL(id) + "/export" }

// InlineExportURL downloads an export of the recipe posted in a form.
func InlineExportURL(id, kind string) string {
	return InlineExportAPIURL(id) + "?kind=" + url.QueryEscape(kind)
}

// ReviewAPIURL is where a recipe's review decisions are posted.
func ReviewAPIURL(rid int64) string { return "/api/recipes/" + strconv.FormatInt(rid, 10) + "/review" }

// RecipeEvalsAPIURL is a recipe's evaluation results in the API.
func RecipeEvalsAPIURL(rid int64) string {
	return "/api/recipes/" + strconv.FormatInt(rid, 10) + "/evals"
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// with returns a copy of q with key set to value (deleted when value is "").
func with(q url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			out.Del(kv[i])
		} else {
			out.Set(kv[i], kv[i+1])
		}
	}
	return out
}

// AdminUsersURL is the admin's page of accounts and API tokens.
func AdminUsersURL() string { return "/admin/users" }

// AdminUnlockURL lifts an account's login lock-out (POST).
func AdminUnlockURL(name string) string { return adminUserURL(name) + "/unlock" }

// AdminTokensURL creates a token for an account (POST).
func AdminTokensURL(name string) string { return adminUserURL(name) + "/tokens" }

// AdminRevokeAllURL revokes all of an account's tokens (POST).
func AdminRevokeAllURL(name string) string { return adminUserURL(name) + "/tokens/revoke" }

// AdminRevokeURL revokes one token (POST).
func AdminRevokeURL(name string, id int64) string {
	return adminUserURL(name) + "/tokens/" + strconv.FormatInt(id, 10) + "/revoke"
}

func adminUserURL(name string) string { return "/admin/users/" + url.PathEscape(name) }
