package assets

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

var rootBlock = regexp.MustCompile(`(?s):root\s*\{(.*?)\}`)

// customProperties are the --name: value pairs of a sheet's :root block.
func customProperties(t *testing.T, file string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := rootBlock.FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s: no :root block", file)
	}
	out := map[string]string{}
	for _, decl := range strings.Split(string(m[1]), ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(decl), ":")
		if ok && strings.HasPrefix(name, "--") {
			out[name] = strings.TrimSpace(value)
		}
	}
	return out
}

// The login page may load only login.css (app.css needs a login), so that
// sheet repeats app.css's palette: the same custom properties, the same
// values, one accent colour across the site.
func TestLoginSheetSharesPalette(t *testing.T) {
	app, login := customProperties(t, AppCSS), customProperties(t, LoginCSS)
	if len(app) < 5 || app["--accent"] == "" {
		t.Fatalf("app.css palette not found: %v", app)
	}
	for name, v := range app {
		if login[name] != v {
			t.Errorf("login.css %s = %q, app.css has %q", name, login[name], v)
		}
	}
	data, _ := os.ReadFile(LoginCSS)
	for _, hex := range regexp.MustCompile(`#[0-9a-fA-F]{3,6}\b`).FindAllString(rootBlock.ReplaceAllString(string(data), ""), -1) {
		if hex != "#fff" && hex != "#f59e0b" { // white text on the accent; app.css's focus ring
			t.Errorf("login.css uses %s outside the palette", hex)
		}
	}
}
