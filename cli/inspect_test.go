package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/deltascope/deltascope/internal/hostile"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// namedSafetensors writes a safetensors file of zero-size F32 tensors with the
// given names, whatever bytes they hold.
func namedSafetensors(t *testing.T, path string, names ...string) {
	t.Helper()
	h := map[string]any{}
	for _, n := range names {
		h[n] = map[string]any{"dtype": "F32", "shape": []int{0}, "data_offsets": []int{0, 0}}
	}
	js, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	hostile.WriteFile(t, path, append(binary.LittleEndian.AppendUint64(nil, uint64(len(js))), js...))
}

func runInspectCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runInspect(context.Background(), Env{Stdout: &out, Stderr: &errOut}, args)
	return out.String(), err
}

// TestInspectEscapesNames: tensor names holding terminal escapes, control
// characters or a bidirectional override are printed quoted, so nothing but
// newlines and printable text reaches the terminal; --json keeps them exact.
func TestInspectEscapesNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evil.safetensors")
	evil := "evil\x1b]0;pwned\x07\x1b[2J.weight"
	bidi := "\u202egnp.exe"
	namedSafetensors(t, path, evil, bidi, "plain.weight")
	out, err := runInspectCmd(t, path)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || r == '\u202e' {
			t.Fatalf("output holds %U at byte %d:\n%q", r, i, out)
		}
	}
	for _, want := range []string{`"evil\x1b]0;pwned\a\x1b[2J.weight"`, `"\u202egnp.exe"`, "\nplain.weight "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	js, err := runInspectCmd(t, "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	var rep inspectReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tn := range rep.Tensors {
		found = found || tn.Name == evil
	}
	if !found {
		t.Errorf("--json does not give the name exactly: %v", rep.Tensors)
	}
}

// TestInspectFitsTerminal: with $COLUMNS set (as a shell exports it), every
// row fits: the file column shows base names for one source, and long names
// are elided in the middle. Piped output (no $COLUMNS, not a terminal) keeps
// whole names. Before, π0.5's rows were ~150 columns and OpenVLA's ~230.
func TestInspectFitsTerminal(t *testing.T) {
	vla := testfixtures.Path("pi05", "vla", "model.safetensors")
	base := testfixtures.Path("pi05", "base")
	longest := "paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight"

	t.Setenv("COLUMNS", "")
	out, err := runInspectCmd(t, vla)
	if err != nil {
		t.Fatal(err)
	}
	table, _, _ := strings.Cut(out, "\n\n")
	if !strings.Contains(table, longest) || strings.Contains(table, "…") || strings.Contains(table, filepath.Dir(vla)) {
		t.Errorf("piped: want whole names and base file names:\n%s", head(out))
	}

	for _, cols := range []int{100, 80} {
		t.Setenv("COLUMNS", itoa(cols))
		for _, args := range [][]string{{vla}, {base}, {"b.=" + base, vla}} {
			out, err := runInspectCmd(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			table, _, _ := strings.Cut(out, "\n\n")
			for _, line := range strings.Split(table, "\n") {
				if n := utf8.RuneCountInString(line); n > cols {
					t.Fatalf("COLUMNS=%d %v: a %d-column row:\n%s", cols, args, n, line)
				}
			}
			if !strings.Contains(table, "…") {
				t.Errorf("COLUMNS=%d %v: no name was elided:\n%s", cols, args, head(table))
			}
			if len(args) == 1 && strings.Contains(table, string(filepath.Separator)+"model") {
				t.Errorf("COLUMNS=%d %v: one source, yet the file column shows paths:\n%s", cols, args, head(table))
			}
		}
	}
}

// TestInspectPickleBomb runs `deltascope inspect` on the review's pickle bomb
// in a child process: it exits non-zero with one line naming the file and the
// problem, its peak RSS under 300 MB. Before, the 8 M-None bomb was listed
// after reaching 584 MB RSS, and the 64 KB deflated one reached 3.2 GB in 37 s.
func TestInspectPickleBomb(t *testing.T) {
	dir := t.TempDir()
	for name, file := range map[string][]byte{
		"bomb.pt":          hostile.PickleBomb(8, 1<<20, false),
		"bomb-deflated.pt": hostile.PickleBomb(60, 1<<20, true),
	} {
		path := filepath.Join(dir, name)
		hostile.WriteFile(t, path, file)
		argv, _ := json.Marshal([]string{"inspect", path})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "DELTASCOPE_AS_MAIN="+string(argv))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10 // KB on Linux
		t.Logf("%s: peak RSS %d MB; %s", name, rss>>20, strings.TrimSpace(stderr.String()))
		if err == nil {
			t.Errorf("%s: inspect succeeded on a pickle bomb", name)
		}
		if msg := stderr.String(); !strings.HasPrefix(msg, "deltascope: "+path+": ") || strings.Count(msg, "\n") != 1 ||
			!strings.Contains(msg, "bomb") {
			t.Errorf("%s: stderr %q, want one line naming the file and the bomb", name, msg)
		}
		if rss > 300<<20 {
			t.Errorf("%s: inspect reached %d MB RSS", name, rss>>20)
		}
	}
}

func head(s string) string {
	lines := strings.SplitN(s, "\n", 6)
	return strings.Join(lines[:min(5, len(lines))], "\n")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestInspectKeepsShardNumbers: shard file names share their end
// ("-of-00003.safetensors"), so fitting 80 columns cuts that end and keeps the
// shard number; cutting the start left "…003.safetensors" on every row.
func TestInspectKeepsShardNumbers(t *testing.T) {
	dir := t.TempDir()
	long := "language_model.model.layers.%d.self_attn.q_proj.weight"
	weightMap := map[string]string{}
	for i := 1; i <= 3; i++ {
		shard := "model-0000" + itoa(i) + "-of-00003.safetensors"
		name := strings.Replace(long, "%d", itoa(i), 1)
		namedSafetensors(t, filepath.Join(dir, shard), name)
		weightMap[name] = shard
	}
	index, _ := json.Marshal(map[string]any{"weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COLUMNS", "80")
	out, err := runInspectCmd(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	table, _, _ := strings.Cut(out, "\n\n")
	rows := strings.Split(table, "\n")[1:]
	if len(rows) != 3 {
		t.Fatalf("want 3 rows:\n%s", table)
	}
	for i, row := range rows {
		file := row[strings.LastIndex(row, " ")+1:]
		if utf8.RuneCountInString(row) > 80 || !strings.HasPrefix(file, "model-0000"+itoa(i+1)) || !strings.Contains(file, "…") {
			t.Errorf("row %d: file column %q is not its shard, shortened (row %q)", i+1, file, row)
		}
	}
}

// countingWriter counts what inspect writes without keeping it.
type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// TestInspectLongNames: long tensor names (issue 14 follow-up). The review's
// 65,536 names of 1,400 bytes (a 91 MB header; `inspect` reached 533 MB RSS)
// are refused by the 16 MiB header limit before the header is read. The most
// the limits let through, 15,500 names of 1,024 bytes (a 16 MB header), is
// listed with a peak live heap under four times the names, as a table and
// as JSON, both written a row at a time (text/tabwriter kept a copy of the
// table, json.Encoder two of the document: 123 and 151 MB RSS in all).
func TestInspectLongNames(t *testing.T) {
	dir := t.TempDir()
	refused := filepath.Join(dir, "long-names.safetensors")
	const hdrLen = 95_158_280 // sparse: the attack's size and length prefix
	hostile.WriteFile(t, refused, binary.LittleEndian.AppendUint64(nil, hdrLen))
	if err := os.Truncate(refused, 8+hdrLen); err != nil {
		t.Fatal(err)
	}
	allowed := filepath.Join(dir, "long-allowed.safetensors")
	data := hostile.ManyTensorsSafetensors(15_500, 1024)
	hostile.WriteFile(t, allowed, data)
	for _, tc := range []struct {
		flag, path, want string
		maxPeak          uint64
	}{
		{"", refused, "exceeds the limit of 16777216 bytes", 1 << 20},
		{"", allowed, "", 4 * uint64(len(data))},
		{"--json", allowed, "", 4 * uint64(len(data))},
	} {
		var out countingWriter
		var errb bytes.Buffer
		var code int
		args := []string{"inspect", tc.path}
		if tc.flag != "" {
			args = []string{"inspect", tc.flag, tc.path}
		}
		use := hostile.Measure(func() { code = Main(args, Env{Stdout: &out, Stderr: &errb}) })
		t.Logf("%v: exit %d, %v, %d bytes out; %s", args[1:], code, use, out.n, strings.TrimSpace(errb.String()))
		if tc.want != "" && (code == 0 || !strings.HasPrefix(errb.String(), "deltascope: "+tc.path+": ") || !strings.Contains(errb.String(), tc.want)) {
			t.Errorf("%s: exit %d, stderr %q, want an error saying %q", tc.path, code, errb.String(), tc.want)
		}
		if tc.want == "" && (code != 0 || out.n < 15_500*1024) {
			t.Errorf("%s: exit %d, %d bytes out, stderr %q", tc.path, code, out.n, errb.String())
		}
		if use.Peak > tc.maxPeak {
			t.Errorf("%v: peak live heap +%d MB, want under %d MB", args[1:], use.Peak>>20, tc.maxPeak>>20)
		}
	}
}
