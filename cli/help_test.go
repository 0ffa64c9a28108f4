package cli

import (
	"io"
	"strings"
	"testing"
)

func TestHelpAndErrors(t *testing.T) {
	for _, cmd := range commands() {
		var out strings.Builder
		if code := Main([]string{cmd.name, "--help"}, Env{Stdout: &out, Stderr: io.Discard}); code != 0 {
			t.Errorf("%s --help: exit %d", cmd.name, code)
		}
		if !strings.Contains(out.String(), "usage: deltascope "+cmd.name) {
			t.Errorf("%s --help printed %q", cmd.name, out.String())
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `deltascope: unknown command "nope"`},
		{[]string{"inspect", "/no/such.safetensors"}, "deltascope: /no/such.safetensors: no such file or folder\n"},
		{[]string{"inspect", "--bogus"}, "deltascope: inspect: unknown flag --bogus\n"},
		{[]string{"analyze", "--base", "x"}, "deltascope: analyze: give at least one --base and one --vla"},
	} {
		var stderr strings.Builder
		if code := Main(c.args, Env{Stdout: io.Discard, Stderr: &stderr}); code == 0 {
			t.Errorf("%v: exit 0", c.args)
		}
		if !strings.HasPrefix(stderr.String(), c.want) || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line starting %q", c.args, stderr.String(), c.want)
		}
	}
}
