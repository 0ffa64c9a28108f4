package web

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pathLiteral is a quoted string that starts a site path ("/new",
// "/api/...") or an attribute that is the home page (href="/"). A page or view
// model that writes one makes a URL outside urls.go, where a route change
// would miss it. (A bare "/" elsewhere is a separator.)
var pathLiteral = regexp.MustCompile(`=["']/["']|["'` + "`" + `]/[A-Za-z_{?]`)

// notURLs are the quoted slashes that are no path: a rate's unit.
var notURLs = map[string]bool{`"/s`: true}

// Every URL a page shows, links to or hands to JavaScript in a data-*
// attribute is made in urls.go: no template, view model or chart builder
// writes a path of its own.
func TestURLsAreMadeInURLsGo(t *testing.T) {
	var files []string
	for _, pat := range []string{"*.templ", "*.go", "viz/*.go"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	checked := 0
	for _, f := range files {
		if f == "urls.go" || strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, "_templ.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, m := range pathLiteral.FindAllString(line, -1) {
				if !notURLs[m] {
					t.Errorf("%s:%d: a path outside urls.go: %s", f, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d files; the globs missed the templates", checked)
	}
}

// The regexp above finds what it must (so the test cannot pass vacuously).
func TestPathLiteralFindsPaths(t *testing.T) {
	for _, s := range []string{`href="/"`, `"/api/me"`, `action="/recipes/compare"`, "`/analyses/`", `'/new?x'`} {
		if !pathLiteral.MatchString(s) {
			t.Errorf("%s: not found", s)
		}
	}
	for _, s := range []string{`<input value=""/>`, `"a/b"`, `<br/>`} {
		if m := pathLiteral.FindString(s); m != "" {
			t.Errorf("%s: found %q", s, m)
		}
	}
}
