package web

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/web/viz"
)

// Cell is one table cell: the text shown, the value downloads carry (a number
// stays a number in JSON), and an optional link.
type Cell struct {
	Text  string
	Value any
	Link  string
	Num   bool // right-aligned, tabular figures
	// Name marks a tensor name or path without a link: it keeps a name
	// column's minimum width, as a linked name does.
	Name bool
	// ID, when set, is shown short under the text with the whole id as its
	// tooltip (an analysis named by its name, as on the home page).
	ID string
}

// Text is a plain text cell.
func Text(s string) Cell { return Cell{Text: s, Value: s} }

// NameCell is a tensor name or path: text that breaks at its dots and keeps
// a name column's width.
func NameCell(s string) Cell { return Cell{Text: s, Value: s, Name: true} }

// LinkCell is a text cell that links somewhere.
func LinkCell(s, href string) Cell { return Cell{Text: s, Value: s, Link: href} }

// Num is a statistic, printed with four significant digits; NaN is null in JSON.
func Num(x float64) Cell {
	c := Cell{Text: viz.FormatValue(x), Value: x, Num: true}
	if x != x || x > 1e308 || x < -1e308 {
		c.Value = nil
	}
	return c
}

// Int is a count.
func Int(n int64) Cell { return Cell{Text: strconv.FormatInt(n, 10), Value: n, Num: true} }

// Table is a table shown on a page and downloadable as CSV or JSON.
type Table struct {
	ID      string // the ?table= value of its downloads
	Title   string
	Columns []string
	Rows    [][]Cell
	Empty   string // shown instead of an empty table
	// Base is the page URL (with its query) the download links extend.
	Base string
}

// DownloadURL is the table in format (csv or json).
func (t Table) DownloadURL(format string) string {
	u, err := url.Parse(t.Base)
	if err != nil {
		return "?format=" + format + "&table=" + url.QueryEscape(t.ID)
	}
	q := u.Query()
	q.Set("format", format)
	q.Set("table", t.ID)
	u.RawQuery = q.Encode()
	return u.String()
}

// WriteCSV writes the header and every row. Text that a spreadsheet would run
// as a formula (a tensor name from an uploaded file starting with '=') is
// prefixed with a quote.
func (t Table) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Columns); err != nil {
		return err
	}
	rec := make([]string, len(t.Columns))
	for _, row := range t.Rows {
		for i, c := range row {
			switch v := c.Value.(type) {
			case nil:
				rec[i] = ""
			case float64:
				rec[i] = strconv.FormatFloat(v, 'g', -1, 64)
			case float32:
				rec[i] = strconv.FormatFloat(float64(v), 'g', -1, 32)
			case int64:
				rec[i] = strconv.FormatInt(v, 10)
			case int:
				rec[i] = strconv.Itoa(v)
			case bool:
				rec[i] = strconv.FormatBool(v)
			default:
				rec[i] = defuseFormula(c.Text)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func defuseFormula(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteJSON writes the rows as a list of objects keyed by column.
func (t Table) WriteJSON(w io.Writer) error {
	rows := make([]map[string]any, len(t.Rows))
	for i, row := range t.Rows {
		m := make(map[string]any, len(row))
		for j, c := range row {
			m[t.Columns[j]] = c.Value
		}
		rows[i] = m
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(map[string]any{"table": t.ID, "columns": t.Columns, "rows": rows})
}
