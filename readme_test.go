package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/cli"
)

// The README's first-run facts follow the code: where `serve` keeps its data
// (the --data default), the composer's button label (the one the pages show),
// what --map rules do (analysis/arch/maprule.go, align.go's userStage), and
// what loads a masked or sliced export (the key prune writes into config.json).
func TestReadmeMatchesTheProgram(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)

	// The data folder: a command run with no --data makes ./deltascope-data.
	t.Chdir(t.TempDir())
	var out, errOut bytes.Buffer
	if code := cli.Main([]string{"user", "list"}, cli.Env{Stdout: &out, Stderr: &errOut}); code != 0 {
		t.Fatalf("user list: exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat("deltascope-data/deltascope.db"); err != nil {
		t.Errorf("the default data folder is not ./deltascope-data: %v", err)
	}
	for _, want := range []string{
		"`./deltascope-data`",                            // where the data goes
		"**Compose a pruning mask**",                     // the button on the home page and the overview
		"/analyses/{id}/compose",                         // where it leads
		"rewrite **base** names",                         // which side a --map rule rewrites
		"**first rule whose result is a VLA name wins**", // the order
		"must be a **full VLA tensor name**",             // what the result must be
		"The first `go run` compiles",                    // how long the first start takes
		"`--secure-cookies` marks the login cookie Secure, which browsers keep only over **HTTPS**",
		// what loads each checkpoint export, and the key the sliced config.json carries
		"**masked checkpoint** keeps every shape",
		"under `" + prune.SlicedConfigKey + "`",
		"beyond stock `from_pretrained`",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q", want)
		}
	}
}
