package web

import (
	"context"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// Shape prints [4096, 11008] as 4096×11008.
func Shape(s []int64) string {
	if len(s) == 0 {
		return "scalar"
	}
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return strings.Join(parts, "×")
}

// When prints a time for a table: UTC, to the minute, sortable.
func When(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Sources prints the sources of one side, shortened to their last two path
// elements (the full specs are on the analysis page).
func Sources(specs []string) string {
	short := make([]string, len(specs))
	for i, s := range specs {
		prefix, path := checkpoint.ParseSpec(s)
		p := lastParts(path)
		if prefix != "" {
			p = prefix + "=" + p
		}
		short[i] = p
	}
	return strings.Join(short, ", ")
}

// lastParts is a path's last two elements (a list's short form of it).
func lastParts(p string) string {
	parts := strings.Split(strings.TrimRight(p, "/"), "/")
	return strings.Join(parts[max(0, len(parts)-2):], "/")
}

// Percent prints a 0..1 fraction.
func Percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" }

// Breakable prints a long dotted or slashed name (a tensor, a path) with a
// line-break opportunity (<wbr>) after each dot and slash, so a narrow column
// breaks it between its parts instead of one letter per line. Written by hand
// rather than in templ, whose text nodes would add spaces between the parts.
func Breakable(s string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		for i, part := range breakParts(s) {
			if i > 0 {
				if _, err := io.WriteString(w, "<wbr>"); err != nil {
					return err
				}
			}
			if _, err := io.WriteString(w, templ.EscapeString(part)); err != nil {
				return err
			}
		}
		return nil
	})
}

// breakParts cuts s after each '.' and '/': the pieces
// Breakable separates with <wbr>. Pieces joined give s back.
func breakParts(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || s[i] == '/' {
			out = append(out, s[start:i+1])
			start = i + 1
		}
	}
	if start < len(s) || len(out) == 0 {
		out = append(out, s[start:])
	}
	return out
}
