package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

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

func runInspect(_ context.Context, env Env, args []string) error {
	fs := newFlagSet("inspect", -1)
	asJSON := fs.Bool("json", "print one JSON object instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(fs.args) == 0 {
		return fmt.Errorf("inspect: give at least one SRC")
	}
	side, err := checkpoint.OpenSide(fs.args, checkpoint.Options{})
	if err != nil {
		return err
	}
	defer side.Close()
	rep := buildInspectReport(side)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeInspectTable(env.Stdout, rep)
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

func writeInspectTable(w io.Writer, rep inspectReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tSHAPE\tBYTES\tFILE")
	for _, t := range rep.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", t.Name, t.DType, shapeString(t.Shape), t.Bytes, t.File)
	}
	if err := tw.Flush(); err != nil {
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
		fmt.Fprintf(w, "source %s (%s, %d file(s))\n", s.Spec, s.Format, len(s.Files))
		keys := make([]string, 0, len(s.Metadata))
		for k := range s.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  metadata %s = %s\n", k, s.Metadata[k])
		}
		for _, e := range s.Entries {
			fmt.Fprintf(w, "  entry %s = %s\n", e.Name, e.Value)
		}
	}
	return nil
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
