package assets

import (
	"os"
	"path/filepath"
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

// sitePath is a quoted string that starts a path or a path segment ('/api/…',
// '/duplicate', '/export?kind='): the scripts take every URL from the page
// (data attributes and the composer's data script, filled from web/urls.go,
// patterns with {rid} and {kind} slots included), so a route change cannot
// miss one here. A bare '/' is a separator and '/s' a rate's unit.
var sitePath = regexp.MustCompile(`['"` + "`" + `]/([A-Za-z_{?][A-Za-z0-9_-]*)`)

// pathIn returns the first site path quoted in a line of script, or "".
func pathIn(line string) string {
	for _, m := range sitePath.FindAllStringSubmatch(line, -1) {
		if m[1] != "s" {
			return m[0]
		}
	}
	return ""
}

func TestScriptsHoldNoPaths(t *testing.T) {
	files, err := filepath.Glob("*.js")
	if err != nil || len(files) < 4 {
		t.Fatalf("scripts: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if m := pathIn(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d: hard-coded path %s: %s", f, i+1, m, strings.TrimSpace(line))
			}
		}
	}
	for _, s := range []string{`'/api/uploads'`, `"/analyses/"`, "`/api/x`", `'/duplicate'`, `+ '/export?kind=' +`} {
		if pathIn(s) == "" {
			t.Errorf("the check misses %s", s)
		}
	}
	for _, s := range []string{`base + '/' + id`, `fmtBytes(r) + '/s'`, `'/s · '`} {
		if m := pathIn(s); m != "" {
			t.Errorf("the check takes %s in %s for a path", m, s)
		}
	}
}

// Every script here is embedded and served: a page module that is not
// would be a 404 under the page.
func TestEveryScriptIsServed(t *testing.T) {
	files, _ := filepath.Glob("*.js")
	for _, f := range files {
		if u := URL(f); !strings.HasPrefix(u, Prefix) {
			t.Errorf("%s: %s", f, u)
		}
	}
}
