// Command deltascope shows where a vision-language-action model moved away from
// the vision-language model it was fine-tuned from, and turns that map into
// structured pruning masks. See README.md.
package main

import (
	"os"

	"github.com/deltascope/deltascope/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Env{
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		StderrIsTTY: isTerminal(os.Stderr),
	}))
}

// isTerminal reports whether f is a character device, which is enough to decide
// whether to draw a progress bar.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
