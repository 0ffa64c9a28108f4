// Package web holds the dashboard's pages: templ components, the view models
// they render, and the tables they show (which the CSV and JSON downloads
// reuse, so a download is always the table on screen).
package web

import (
	"net/url"
)

// Page paths. Handlers register the same patterns (handlers/pages.go).
const (
	HomePath = "/"
	NewPath  = "/new"
)

// AnalysisURL is the page of one analysis: the job page until it is done, then
// its overview.
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
	return withQuery(AnalysisURL(id)+"/tensors/"+url.PathEscape(name), q)
}

// APIAnalysisURL is the JSON of one analysis.
func APIAnalysisURL(id string) string { return "/api/analyses/" + url.PathEscape(id) }

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
