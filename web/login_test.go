package web

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/assets"
)

// The login page is a templ page like every other: it escapes what the user
// typed, links only its own sheet (a stranger cannot load app.css or any
// script) and posts to LoginPath.
func TestLoginPage(t *testing.T) {
	var buf bytes.Buffer
	v := LoginView{Name: `"><script>x</script>`, Next: "/analyses/a?b=1", Message: "Wrong user name or password.", Warning: "cookies"}
	if err := LoginPage(v).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{
		`<link rel="stylesheet" href="` + assets.URL(assets.LoginCSS) + `">`,
		`<form method="post" action="` + LoginPath + `">`,
		`value="/analyses/a?b=1"`, `value="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`,
		`data-testid="cookie-warning">cookies</p>`, `role="alert">Wrong user name or password.</p>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("missing %s in\n%s", want, html)
		}
	}
	if strings.Contains(html, "<script") || strings.Contains(html, assets.URL(assets.AppCSS)) || strings.Contains(html, "style=") {
		t.Errorf("the login page loads a script, app.css or an inline style:\n%s", html)
	}
}
