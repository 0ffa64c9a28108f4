package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

type inspectTensor struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Bytes int64   `json:"bytes"`
	File  string  `json:"file"`
}

type dtypeTotal struct {
	Tensors int   `json:"tensors"`
	Params  int64 `json:"params"`
	Bytes   int64 `json:"bytes"`
}

type inspectSource struct {
	Spec     string                `json:"spec"`
	Format   checkpoint.Format     `json:"format"`
	Files    []checkpoint.FileInfo `json:"files"`
	Metadata map[string]string     `json:"metadata"`
	Entries  []checkpoint.Entry    `json:"entries,omitempty"`
	HasConf  bool                  `json:"has_config"`
}

type inspectReport struct {
	Sources []inspectSource       `json:"sources"`
	Tensors []inspectTensor       `json:"tensors"`
	Params  int64                 `json:"params"`
	Bytes   int64                 `json:"bytes"`
	ByDType map[string]dtypeTotal `json:"by_dtype"`
}

func runInspect(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("inspect", -1)
	asJSON := fs.Bool("json", "print one JSON object instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(fs.args) == 0 {
		return fmt.Errorf("inspect: give at least one SRC")
	}
	side, err := checkpoint.OpenSide(fs.args, checkpoint.Options{Context: ctx})
	if err != nil {
		return err
	}
	defer side.Close()
	rep := buildInspectReport(side)
	if *asJSON {
		return writeInspectJSON(env.Stdout, rep)
	}
	return writeInspectTable(env.Stdout, rep, outputColumns(env.Stdout))
}

// writeInspectJSON writes rep as json.Encoder with a two-space indent would,
// but a tensor at a time: the encoder built the whole document, then an
// indented copy of it, before writing a byte (issue 14: 16 MB of names at the
// limits).
func writeInspectJSON(w io.Writer, rep inspectReport) error {
	bw := bufio.NewWriter(w)
	field := func(name string, v any, last bool) error {
		js, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "  %q: %s", name, js)
		if !last {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
		return nil
	}
	bw.WriteString("{\n")
	if err := field("sources", rep.Sources, false); err != nil {
		return err
	}
	if len(rep.Tensors) == 0 {
		bw.WriteString("  \"tensors\": [],\n")
	} else {
		bw.WriteString("  \"tensors\": [\n")
		for i, t := range rep.Tensors {
			js, err := json.MarshalIndent(t, "    ", "  ")
			if err != nil {
				return err
			}
			bw.WriteString("    ")
			bw.Write(js)
			if i < len(rep.Tensors)-1 {
				bw.WriteByte(',')
			}
			bw.WriteByte('\n')
		}
		bw.WriteString("  ],\n")
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"params", rep.Params}, {"bytes", rep.Bytes}} {
		if err := field(f.name, f.v, false); err != nil {
			return err
		}
	}
	if err := field("by_dtype", rep.ByDType, true); err != nil {
		return err
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

func buildInspectReport(side *checkpoint.Side) inspectReport {
	rep := inspectReport{ByDType: map[string]dtypeTotal{}, Tensors: []inspectTensor{}}
	for _, src := range side.Sources {
		rep.Sources = append(rep.Sources, inspectSource{Spec: src.Spec, Format: src.Format, Files: src.Files,
			Metadata: src.Metadata, Entries: src.Entries, HasConf: src.Config != nil})
	}
	for _, t := range side.Tensors {
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		rep.Tensors = append(rep.Tensors, inspectTensor{Name: t.Name, DType: t.DType.String(), Shape: shape, Bytes: t.Size, File: t.File})
		tot := rep.ByDType[t.DType.String()]
		tot.Tensors++
		tot.Params += t.Elements()
		tot.Bytes += t.Size
		rep.ByDType[t.DType.String()] = tot
		rep.Params += t.Elements()
		rep.Bytes += t.Size
	}
	return rep
}

// writeInspectTable prints the report for people. Everything that came from a
// file (names, paths, metadata) goes through display, so a hostile name cannot
// send escape sequences to the terminal. With columns > 0 (a terminal's width)
// rows are fitted to it: the file column shows base names when there is one
// source, and long names are elided in the middle, where the dotted path
// repeats the least. --json is the complete, unescaped form.
func writeInspectTable(w io.Writer, rep inspectReport, columns int) error {
	oneSource := len(rep.Sources) == 1
	common := commonDir(rep.Tensors)
	rows := make([][5]string, 0, len(rep.Tensors)+1)
	rows = append(rows, [5]string{"NAME", "DTYPE", "SHAPE", "BYTES", "FILE"})
	for _, t := range rep.Tensors {
		file := t.File
		if oneSource {
			file = filepath.Base(file)
		} else if rel, err := filepath.Rel(common, file); err == nil && common != "" {
			file = rel // the sources' files, told apart by what follows their common folder
		}
		rows = append(rows, [5]string{display(t.Name), t.DType, shapeString(t.Shape), strconv.FormatInt(t.Bytes, 10), display(file)})
	}
	fitColumns(rows, columns)
	if err := writeColumns(w, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d tensors, %s parameters, %s\n", len(rep.Tensors), groupDigits(rep.Params), humanBytes(rep.Bytes))
	dts := make([]string, 0, len(rep.ByDType))
	for d := range rep.ByDType {
		dts = append(dts, d)
	}
	sort.Strings(dts)
	for _, d := range dts {
		t := rep.ByDType[d]
		fmt.Fprintf(w, "  %-8s %6d tensors %18s parameters %12s\n", d, t.Tensors, groupDigits(t.Params), humanBytes(t.Bytes))
	}
	for _, s := range rep.Sources {
		fmt.Fprintf(w, "source %s (%s, %d file(s))\n", display(s.Spec), s.Format, len(s.Files))
		keys := make([]string, 0, len(s.Metadata))
		for k := range s.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  metadata %s = %s\n", display(k), display(s.Metadata[k]))
		}
		for _, e := range s.Entries {
			fmt.Fprintf(w, "  entry %s = %s\n", display(e.Name), display(e.Value))
		}
	}
	return nil
}

// writeColumns writes rows aligned as text/tabwriter would (each column but
// the last padded to its widest cell, in runes, plus columnGap), a row at a
// time: the tabwriter kept a copy of the whole table until its Flush, a
// second copy of every name (issue 14: a header at the limits holds 16 MB of
// names).
func writeColumns(w io.Writer, rows [][5]string) error {
	var width [4]int
	for _, r := range rows {
		for i := range width {
			width[i] = max(width[i], utf8.RuneCountInString(r[i]))
		}
	}
	bw := bufio.NewWriter(w)
	for _, r := range rows {
		for i := range width {
			bw.WriteString(r[i])
			for range width[i] - utf8.RuneCountInString(r[i]) + columnGap {
				bw.WriteByte(' ')
			}
		}
		bw.WriteString(r[4])
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// display returns s as is when every rune is printable, and otherwise quoted
// Go-style ("a\x1b[31m"), so control characters, terminal escapes and
// bidirectional overrides from a checkpoint never reach the terminal raw, and
// the quotes show that the name holds something unusual.
func display(s string) string {
	for _, r := range s {
		if !strconv.IsPrint(r) || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}

// commonDir is the folder every tensor's file lies under ("" when none).
func commonDir(ts []inspectTensor) string {
	if len(ts) == 0 {
		return ""
	}
	dir := filepath.Dir(ts[0].File)
	for _, t := range ts[1:] {
		for dir != "." && dir != string(filepath.Separator) && !strings.HasPrefix(t.File, dir+string(filepath.Separator)) {
			dir = filepath.Dir(dir)
		}
	}
	if dir == "." || dir == string(filepath.Separator) {
		return ""
	}
	return dir
}

// Column layout: two spaces between columns (the tabwriter's padding), and
// the widths names and files are shrunk to, in turn: names to a width that
// still reads well, then files, then names to the narrowest.
const (
	columnGap    = 2
	fairNameCols = 40
	minNameCols  = 24
	minFileCols  = 16
)

// fitColumns shrinks the name and file columns of rows (header first) so that
// a row fits in columns, file first, then name, eliding in the middle; the
// dtype, shape and byte columns are short and always kept whole. columns ≤ 0
// leaves rows as they are.
func fitColumns(rows [][5]string, columns int) {
	if columns <= 0 {
		return
	}
	var width [5]int
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	total := 4 * columnGap
	for _, w := range width {
		total += w
	}
	over := total - columns
	if over <= 0 {
		return
	}
	limit := width
	for _, step := range []struct{ col, floor int }{{0, fairNameCols}, {4, minFileCols}, {0, minNameCols}} {
		if cut := min(over, limit[step.col]-step.floor); cut > 0 {
			limit[step.col] -= cut
			over -= cut
		}
	}
	shared := sharedSuffix(rows[1:], 4)
	for i := range rows[1:] {
		rows[i+1][0] = elideMiddle(rows[i+1][0], limit[0])
		rows[i+1][4] = elideFile(rows[i+1][4], limit[4], shared)
	}
}

// sharedSuffix is how many runes at the end column col of every row has in
// common (a sharded checkpoint's "-of-00004.safetensors").
func sharedSuffix(rows [][5]string, col int) int {
	if len(rows) == 0 {
		return 0
	}
	first := []rune(rows[0][col])
	n := len(first)
	for _, r := range rows[1:] {
		other := []rune(r[col])
		k := 0
		for k < n && k < len(other) && first[len(first)-1-k] == other[len(other)-1-k] {
			k++
		}
		n = k
	}
	return n
}

// elideFile shortens a file column entry to n runes. Files that share their
// end differ before it (model-00002-of-00004.safetensors), so that shared end
// is cut first and what tells the files apart stays: "model-00002…sors".
// When the differing part alone is too long, its start goes instead.
func elideFile(s string, n, shared int) string {
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	distinct := len(r) - min(shared, len(r))
	if distinct == 0 {
		return elideStart(s, n)
	}
	if distinct+1 <= n {
		keep := n - 1 - distinct
		return string(r[:distinct]) + "…" + string(r[len(r)-keep:])
	}
	return elideStart(string(r[:distinct]), n)
}

// elideStart shortens a path to its last n runes behind "…", the end of a
// path being what tells files in different folders apart.
func elideStart(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 2 {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// elideMiddle shortens s to n runes by replacing its middle with "…", keeping
// a little more of the end, where a tensor name says what it is (…mlp.fc1.weight).
func elideMiddle(s string, n int) string {
	r := []rune(s)
	if len(r) <= n || n < 3 {
		return s
	}
	tail := (n - 1) * 3 / 5
	head := n - 1 - tail
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// outputColumns is the width to fit the table to: $COLUMNS when set, else the
// terminal's width when w is one, else 0 — piped output is never cut, so grep
// and awk see whole names.
func outputColumns(w io.Writer) int {
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return terminalColumns(w)
}

func shapeString(s []int64) string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// groupDigits writes 7541237184 as 7,541,237,184: parameter counts are read by people.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
