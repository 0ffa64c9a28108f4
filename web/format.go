package web

import (
	"strconv"
	"strings"
	"time"

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
		parts := strings.Split(strings.TrimRight(path, "/"), "/")
		p := strings.Join(parts[max(0, len(parts)-2):], "/")
		if prefix != "" {
			p = prefix + "=" + p
		}
		short[i] = p
	}
	return strings.Join(short, ", ")
}

// Percent prints a 0..1 fraction.
func Percent(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" }
