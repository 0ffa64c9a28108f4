package handlers

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/a-h/templ"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// render writes a page. It renders into a buffer first, so a failure is a
// clean 500 instead of half a page. The Content-Security-Policy comes from
// securityHeaders: pages carry no inline script, handler or style attribute,
// and chart data travels in application/json scripts.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		s.log.Error("render failed", "path", logPath(r.URL.Path), "err", err, "request_id", requestID(r))
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // pages show live state
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// pageError answers a failed page request: 404 for an unknown id, 500 (with
// the details only in the log) for anything else.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.render(w, r, http.StatusNotFound, web.NotFoundPage("There is no such analysis or tensor."))
		return
	}
	s.log.Error("page failed", "path", logPath(r.URL.Path), "err", err, "request_id", requestID(r))
	s.render(w, r, http.StatusInternalServerError, web.ErrorPage("Something went wrong", "The server could not show this page; the details are in its log."))
}

// wantsTable reports whether the request asks for a table download.
func wantsTable(r *http.Request) bool {
	f := r.URL.Query().Get("format")
	return f == "csv" || f == "json"
}

// writeTable answers ?format=csv|json&table=ID from the page's tables.
func writeTable(w http.ResponseWriter, r *http.Request, filePrefix string, tables []web.Table) {
	q := r.URL.Query()
	id := q.Get("table")
	for _, t := range tables {
		if t.ID != id || id == "" {
			continue
		}
		format := q.Get("format")
		name := safeFileName(filePrefix + "-" + t.ID + "." + format)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			t.WriteCSV(w)
		} else {
			w.Header().Set("Content-Type", "application/json")
			t.WriteJSON(w)
		}
		return
	}
	ids := make([]string, 0, len(tables))
	for _, t := range tables {
		if t.ID != "" {
			ids = append(ids, t.ID)
		}
	}
	notFound(w, "no table "+`"`+id+`"`+" on this page; tables: "+strings.Join(ids, ", "))
}

func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return r
		}
		return '_'
	}, s)
}
